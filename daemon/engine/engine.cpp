// `imgbatch run`: wires the DB thread, the writer pool, the provider lanes and the control
// loops (planner, lease renewal, idle check, progress, signals) on one io_context.
#include "daemon/engine/engine.hpp"
#include "daemon/logfmt.hpp"

#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <random>
#include <set>
#include <thread>

#include "daemon/engine/batch_runner.hpp"
#include "daemon/engine/budget_dispatch.hpp"
#include "daemon/engine/dispatcher.hpp"
#include "daemon/engine/metrics.hpp"
#include "daemon/engine/notify.hpp"
#include "daemon/engine/owner_lock.hpp"
#include "daemon/engine/supervise.hpp"
#include "jobs/planner.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::daemon {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::string host_name() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) return "host";
    return host;
}

// "<hostname>:<pid>:<random hex>": unique per boot of a daemon, readable in logs.
std::string make_owner() {
    std::random_device rd;
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rd()));
    return host_name() + ":" + std::to_string(::getpid()) + ":" + hex;
}

std::string format_time(double unix_s) {
    std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
    return buf;
}

// Requests leased by a daemon that is provably gone go back to the queue at once: its lock
// file is there and free (the process ended, whatever PID namespace it ran in), or its row
// says it stopped. Any other owner (alive, or on another machine) keeps its leases until they
// expire.
int requeue_dead_owners(jobs::Store& store, const std::string& self, const std::string& lock_dir,
                        double now) {
    int requeued = 0;
    for (const auto& owner : store.lease_owners()) {
        if (owner == self) continue;
        Liveness l = OwnerLock::probe(lock_dir, owner);
        bool gone = l == Liveness::gone;
        if (l == Liveness::unknown) {
            auto row = store.daemon(owner);
            gone = row && row->stopped_at > 0;
        }
        if (!gone) continue;
        store.daemon_stopped(owner, now);
        int n = store.requeue_owner(owner, now);
        if (n > 0)
            spdlog::warn("event=owner_gone owner={} requeued={} note={}", q(owner), n,
                         q("its lock is free: its requests go back to the queue at once"));
        requeued += n;
    }
    return requeued;
}

// How often the daemon writes its heartbeat, and how old one may be before a daemon without
// a lock file (on another machine) is no longer counted as running.
constexpr double kHeartbeatS = 5;
constexpr double kHeartbeatStaleS = jobs::kHeartbeatFreshS;
// Threads that write and fsync staged images (bench/throughput.sh).
constexpr int kWriterThreads = 16;
// How often the database's counts are read for the metrics (only with metrics_listen).
constexpr double kStatsS = 5;

Clock::duration secs(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct Engine {
    Engine(const Config& c, const RunOptions& o, std::string own, DbWorker& d, OutputWriter& w,
           asio::thread_pool& decode_pool, asio::thread_pool& writer_pool, std::string locks)
        : config(c),
          options(o),
          lock_dir(std::move(locks)),
          shared(io.get_executor(), std::move(own), c.retry, d, w, decode_pool, writer_pool),
          tick(io) {}

    asio::io_context io{1};
    const Config& config;
    const RunOptions& options;
    std::string lock_dir;  // OwnerLock files of the daemons on this database
    EngineShared shared;
    asio::steady_timer tick;
    bool shutting_down = false;
    bool skip_grace = false;
    // The last attempt in flight was recorded: the control loop runs its steps (the idle
    // check) at once instead of at the next tick.
    bool idle_check_due = false;
    Clock::time_point started = Clock::now();
    std::uint64_t images_at_last_progress = 0;
    Clock::time_point last_progress = Clock::now();
};

std::uint64_t images_written(const EngineShared& shared) {
    std::uint64_t n = 0;
    for (const auto& p : shared.providers) n += p->counters.images;
    return n;
}

std::uint64_t images_total(Engine* e) {
    return images_written(e->shared);
}

// Validates and plans pending rows (inserted by SQL) on the DB thread, and rejects rows that
// bypassed 'pending' (queued or running without requests). Planning is per row: a row that
// cannot be read, validated or planned is rejected with the reason, and the others go on.
// Returns how many rows were planned or rejected.
std::size_t plan_pending(jobs::Store& store, const Config* config) {
    constexpr int kBatch = 1000;
    constexpr int kUnplannedPerPass = 50000;  // rows checked per pass: bounded work per poll
    auto infos = config->provider_infos();
    const std::string today = jobs::today_utc();
    // A model's lifecycle warning is logged once per model (this thread plans every row).
    thread_local std::set<std::string> warned;
    std::size_t total = 0;
    for (const auto& r : store.reject_unplanned(kUnplannedPerPass)) {
        spdlog::warn("event=job_rejected job={} reason={}", r.job_id, q(r.reason));
        ++total;
    }
    for (;;) {
        auto rows = store.pending_jobs(kBatch);
        if (rows.empty()) break;
        std::vector<jobs::PlanDecision> plans;
        plans.reserve(rows.size());
        for (auto& row : rows) {
            jobs::PlanDecision d;
            d.job_id = row.id;
            try {
                if (!row.parse_error.empty()) {
                    d.error = row.parse_error;
                } else {
                    auto v = jobs::validate_job(row.spec, config->catalog, infos, today);
                    if (!v.ok) {
                        d.error = v.error;
                    } else {
                        if (!v.warning.empty() && warned.insert(v.warning).second)
                            spdlog::warn("event=model_lifecycle job={} model={} message={}", row.id,
                                         q(row.spec.model), q(v.warning));
                        d.provider = v.ok->provider;
                        d.plan = jobs::plan_requests(row.spec.n, v.ok->per_request);
                    }
                }
            } catch (const std::exception& ex) {
                d = jobs::PlanDecision{};
                d.job_id = row.id;
                d.error = std::string("could not be planned: ") + ex.what();
            }
            if (!d.error.empty())
                spdlog::warn("event=job_rejected job={} reason={}", row.id, q(d.error));
            plans.push_back(std::move(d));
        }
        store.apply_plans(plans);
        total += rows.size();
        if (rows.size() < static_cast<std::size_t>(kBatch)) break;
    }
    return total;
}

asio::awaitable<void> shutdown(Engine* e, std::string reason);

// Syncs lanes with provider_state (user pause/resume, pauses from another instance).
asio::awaitable<void> sync_pauses(Engine* e) {
    std::vector<std::uint64_t> versions;
    for (auto& p : e->shared.providers) versions.push_back(p->pause_version);
    auto read = [](jobs::Store& st) { return st.provider_states(); };
    auto states = co_await e->shared.db.call<std::vector<jobs::ProviderState>>(std::move(read));
    for (std::size_t i = 0; i < e->shared.providers.size(); ++i) {
        auto* p = e->shared.providers[i].get();
        if (p->pause_version != versions[i]) continue;  // changed here since the read
        const jobs::ProviderState* st = nullptr;
        for (auto& s : states)
            if (s.name == p->config.name) st = &s;
        bool paused = st && st->paused;
        if (paused && !p->lane.paused()) {
            p->lane.pause(st->reason, st->probe_at);
            spdlog::warn("event=provider_paused provider={} reason={}", q(p->config.name),
                         q(st->reason));
        } else if (!paused && p->lane.paused() && !p->lane.probing()) {
            p->lane.unpause();
            spdlog::info("event=provider_resumed provider={}", q(p->config.name));
            p->wake();
        }
    }
}

// A paused lane whose probe is due or running may resume: not idle yet.
bool probe_due(const Lane& lane) {
    return lane.probing() || (lane.probe_at() > 0 && lane.probe_at() <= jobs::unix_now());
}

// --until-idle: stop once nothing is in flight and nothing can run (requests of paused or
// unconfigured providers do not count).
asio::awaitable<bool> check_idle(Engine* e) {
    if (!e->shared.in_flight.empty()) co_return false;
    // Open requests, and of them those of batches held by their batch budget.
    using Work = std::pair<jobs::OpenWork, std::map<std::string, std::int64_t>>;
    auto read = [held_batches = e->shared.budget.held_batches()](jobs::Store& st) {
        Work w{st.open_work(), {}};
        for (const auto& [provider, count] : w.first.requests_by_provider)
            for (const auto& b : held_batches) {
                jobs::SpendFilter f;
                f.batch = b;
                f.provider = provider;
                w.second[provider] += st.queued_cost(f, nullptr).requests;
            }
        return w;
    };
    auto [work, batch_held] = co_await e->shared.db.call<Work>(std::move(read));
    if (work.pending > 0 || !e->shared.in_flight.empty()) co_return false;
    // A vendor batch still open is followed to its end (its lines are paid for).
    auto read_open = [](jobs::Store& st) { return st.open_vendor_batches(); };
    const auto vendor_batches =
        co_await e->shared.db.call<std::vector<jobs::VendorBatchRow>>(std::move(read_open));
    std::string held;
    for (auto& [name, count] : work.requests_by_provider) {
        auto* p = e->shared.provider(name);
        if (p && p->config.mode == "batch" &&
            std::any_of(vendor_batches.begin(), vendor_batches.end(),
                        [&](const jobs::VendorBatchRow& vb) { return vb.provider == name; }))
            co_return false;
        // Requests a budget holds cannot run either (until SIGHUP raises it or a new day).
        const bool budget = p && (e->shared.budget.global_hold() || batch_held[name] >= count);
        if (p && !budget && (!p->lane.paused() || probe_due(p->lane))) co_return false;
        held += (held.empty() ? "" : ",") + name + "(" + std::to_string(count) +
                (budget ? ",budget" : "") + ")";
    }
    if (!held.empty())
        spdlog::warn(
            "event=idle_with_held_work providers={} note=\"paused or unconfigured "
            "providers, or budgets, hold queued requests\"",
            held);
    co_return true;
}

// Every 10 s while there is work: an idle daemon (nothing in flight, no image since the last
// line) stays silent.
void log_progress(Engine* e) {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - e->last_progress).count();
    std::uint64_t images = images_total(e);
    if (e->shared.in_flight.empty() && images == e->images_at_last_progress) {
        e->last_progress = now;
        return;
    }
    double rate = dt > 0 ? double(images - e->images_at_last_progress) / dt : 0;
    std::string lanes;
    for (auto& p : e->shared.providers) {
        lanes += " " + p->config.name + "=" + std::to_string(p->lane.in_flight());
        if (p->lane.paused()) lanes += "(paused)";
    }
    spdlog::info("event=progress in_flight={} images={} images_per_s={:.1f} lanes:{}",
                 e->shared.in_flight.size(), images, rate, lanes);
    e->images_at_last_progress = images;
    e->last_progress = now;
}

// Renews the leases of the attempts the engine still tracks (a request it lost track of goes
// back to the queue when its lease expires), and requeues expired leases and the requests of
// daemons that are gone.
asio::awaitable<void> renew_leases(Engine* e, double lease_s) {
    std::vector<jobs::LeasedAttempt> tracked;
    tracked.reserve(e->shared.in_flight.size());
    for (const auto& [id, f] : e->shared.in_flight) tracked.push_back({id, f.attempt_no});
    auto renew = [owner = e->shared.owner, lock_dir = e->lock_dir, lease_s,
                  tracked = std::move(tracked)](jobs::Store& st) {
        double now = jobs::unix_now();
        st.renew_leases(owner, tracked, now + lease_s);
        return st.requeue_expired(now) + requeue_dead_owners(st, owner, lock_dir, now);
    };
    int expired = co_await e->shared.db.call<int>(std::move(renew));
    if (expired > 0) {
        e->shared.leases_expired += static_cast<std::uint64_t>(expired);
        spdlog::warn("event=leases_expired requeued={}", expired);
        e->shared.wake_all();
    }
}

// Writes the heartbeat; beside other daemons, also counts the ones running to split the
// providers' rates between them.
asio::awaitable<void> heartbeat(Engine* e) {
    // The calls each lane has sent whose answer is not in (`imgbatch status`'s IN_FLIGHT; its
    // claimed requests include the prefetch).
    std::map<std::string, std::int64_t> calls;
    for (const auto& p : e->shared.providers) calls[p->config.name] += p->lane.in_flight();
    auto beat = [owner = e->shared.owner, pause = e->shared.local_pause,
                 count = e->shared.shared_limits, calls = std::move(calls)](jobs::Store& st) {
        double now = jobs::unix_now();
        st.heartbeat(owner, now, pause, &calls);
        if (!count) return 1;
        int running = 0;
        for (const auto& d : st.running_daemons())
            if (d.heartbeat_at > now - kHeartbeatStaleS) ++running;
        return std::max(running, 1);
    };
    int daemons = co_await e->shared.db.call<int>(std::move(beat));
    for (auto& p : e->shared.providers) {
        if (p->sharing != daemons)
            spdlog::info("event=limits_shared provider={} daemons={}", q(p->config.name), daemons);
        p->share_with(daemons);
    }
}

// One line for each batch that had completions recorded and has nothing left to do (no job
// pending, queued or running): how its jobs ended and the images they have.
asio::awaitable<void> report_batches(Engine* e) {
    if (e->shared.batches_touched.empty()) co_return;
    std::set<std::string> touched;
    touched.swap(e->shared.batches_touched);
    auto read = [touched](jobs::Store& st) {
        std::vector<std::pair<std::string, jobs::Stats>> done;
        for (const auto& b : touched)
            if (auto stats = st.finished_batch(b)) done.emplace_back(b, std::move(*stats));
        return done;
    };
    auto done = co_await e->shared.db.call<std::vector<std::pair<std::string, jobs::Stats>>>(
        std::move(read));
    for (auto& [batch, st] : done) {
        auto& by = st.jobs_by_state;
        auto level = by["failed"] + by["blocked"] > 0 ? spdlog::level::warn : spdlog::level::info;
        spdlog::log(level,
                    "event=batch_done batch={} jobs={} succeeded={} failed={} blocked={} "
                    "cancelled={} rejected={} images={} images_wanted={}",
                    q(batch), st.jobs, by["succeeded"], by["failed"], by["blocked"],
                    by["cancelled"], by["rejected"], st.images_done, st.images_wanted);
    }
}

// The database's counts for the metrics (jobs by state, open requests by provider).
asio::awaitable<void> read_db_stats(Engine* e) {
    auto read = [](jobs::Store& st) { return st.stats(std::nullopt, jobs::unix_now()); };
    e->shared.db_stats = co_await e->shared.db.call<jobs::Stats>(std::move(read));
    e->shared.db_stats_read = true;
}

asio::awaitable<void> plan(Engine* e) {
    auto plan = [cfg = &e->config](jobs::Store& st) { return plan_pending(st, cfg); };
    std::size_t planned = co_await e->shared.db.call<std::size_t>(std::move(plan));
    if (planned > 0) {
        spdlog::info("event=planned jobs={}", planned);
        e->shared.wake_all();
    }
}

// Lease renewal, heartbeat, planner, pause sync, idle check and progress, every poll
// interval. Each step runs whether the others fail or not, leases first.
asio::awaitable<void> control_loop(Engine* e) {
    // The renewal interval stays below a third of the shortest lease granted in this run
    // (SIGHUP may shorten the leases; those granted before keep their length).
    double min_lease = 1e9;
    auto last_renew = Clock::now();
    auto last_heartbeat = Clock::time_point{};  // at once: the rates' share is known early
    auto last_stats = Clock::time_point{};      // metrics: at once, then every kStatsS
    auto step = [](const char* op, const std::exception& ex) {
        spdlog::error("event=db_error op={} error={}", op, q(ex.what()));
    };
    while (!e->shutting_down) {
        double max_lease = 0;
        for (auto& p : e->shared.providers) {
            min_lease = std::min(min_lease, p->lease_s);
            max_lease = std::max(max_lease, p->lease_s);
        }
        if (Clock::now() - last_renew >= secs(min_lease / 3)) {
            try {
                co_await renew_leases(e, max_lease);
                last_renew = Clock::now();
            } catch (const std::exception& ex) {
                step("renew", ex);
            }
        }
        if (Clock::now() - last_heartbeat >= secs(kHeartbeatS)) {
            try {
                co_await heartbeat(e);
                last_heartbeat = Clock::now();
            } catch (const std::exception& ex) {
                step("heartbeat", ex);
            }
        }
        try {
            co_await plan(e);
        } catch (const std::exception& ex) {
            step("plan", ex);
        }
        try {
            co_await sync_pauses(e);
        } catch (const std::exception& ex) {
            step("sync_pauses", ex);
        }
        if (!e->config.metrics_listen.empty() && Clock::now() - last_stats >= secs(kStatsS)) {
            try {
                co_await read_db_stats(e);
                last_stats = Clock::now();
            } catch (const std::exception& ex) {
                step("stats", ex);
            }
        }
        try {
            // Spend by other daemons, a new day: holds may end.
            co_await budget_refresh(&e->shared);
        } catch (const std::exception& ex) {
            step("budget", ex);
        }
        try {
            co_await report_batches(e);
        } catch (const std::exception& ex) {
            step("report_batches", ex);
        }
        try {
            // No co_await inside && or ||: GCC 12 may evaluate it before the left operands.
            if (e->options.until_idle && !e->shutting_down) {
                if (co_await check_idle(e)) {
                    asio::co_spawn(e->io, shutdown(e, "idle"), asio::detached);
                    co_return;
                }
            }
        } catch (const std::exception& ex) {
            step("idle_check", ex);
        }
        if (Clock::now() - e->last_progress >= std::chrono::seconds(10)) log_progress(e);
        e->tick.expires_after(secs(e->config.poll_interval_s));
        if (!e->idle_check_due) co_await e->tick.async_wait(asio::as_tuple(asio::use_awaitable));
        e->idle_check_due = false;
    }
}

// While a stop waits for calls and commits, systemd is asked again and again to wait a little
// longer (EXTEND_TIMEOUT_USEC), so that the unit's TimeoutStopSec need not cover the longest
// call, and a daemon that hangs is still killed soon.
constexpr auto kExtendEvery = std::chrono::seconds(5);
constexpr auto kExtendBy = std::chrono::seconds(15);

asio::awaitable<void> extend_stop_timeout(Engine* e) {
    asio::steady_timer t(e->io);
    while (!e->io.stopped()) {
        notify_extend_timeout(kExtendBy);
        notify_status("stopping: " + std::to_string(e->shared.in_flight.size()) +
                      " calls in flight");
        t.expires_after(kExtendEvery);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

// shutdown_grace_s, or for "auto" the longest call the providers (as reloaded) may take.
double grace_s(Engine* e) {
    if (e->config.shutdown_grace_s) return *e->config.shutdown_grace_s;
    std::vector<ProviderConfig> live;
    for (auto& p : e->shared.providers) live.push_back(p->config);
    return auto_shutdown_grace_s(live);
}

asio::awaitable<void> shutdown(Engine* e, std::string reason) {
    auto& s = e->shared;
    if (e->shutting_down) {
        if (e->skip_grace) co_return;
        e->skip_grace = true;
        spdlog::warn("event=stop_now reason={} in_flight={}", q(reason), s.in_flight.size());
        notify_status("stopping now: returning the calls in flight to the queue");
        s.attempt_ended.cancel();
        co_return;
    }
    e->shutting_down = true;
    s.stopping = true;
    s.wake_all();
    e->tick.cancel();
    notify_stopping();
    const double grace = grace_s(e);
    spdlog::info("event=stopping reason={} in_flight={} grace_s={}", q(reason), s.in_flight.size(),
                 grace);
    asio::co_spawn(e->io, extend_stop_timeout(e), asio::detached);
    // Calls in flight, and claims on their way (what they claim is given back at once).
    auto busy = [&s] { return !s.in_flight.empty() || s.claims_pending > 0; };
    auto deadline = Clock::now() + secs(std::min(grace, 30 * 86400.0));
    while (busy() && !e->skip_grace && Clock::now() < deadline) {
        s.attempt_ended.expires_at(deadline);
        co_await s.attempt_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // The rest go back to the queue without using an attempt.
    std::vector<std::int64_t> give;
    for (auto& [id, f] : s.in_flight)
        if (f.state == AttemptState::running) give.push_back(id);
    if (!give.empty()) spdlog::warn("event=returning requests={}", give.size());
    for (auto id : give) asio::co_spawn(e->io, give_back(&s, id), asio::detached);
    // Completions under way and the give-backs (each retried for up to 30 s) are committed
    // before the exit: no request of this daemon is left `running`.
    auto drain_deadline = Clock::now() + std::chrono::seconds(40);
    while (busy() && Clock::now() < drain_deadline) {
        s.attempt_ended.expires_after(std::chrono::milliseconds(100));
        co_await s.attempt_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (busy())
        spdlog::error("event=stop_unfinished in_flight={} claims={}", s.in_flight.size(),
                      s.claims_pending);
    budget_clear(&s);
    for (auto& p : s.providers) {
        p->client->close_idle();
        p->download->close_idle();
    }
    spdlog::info("event=stopped images={} uptime_s={:.1f}", images_total(e),
                 std::chrono::duration<double>(Clock::now() - e->started).count());
    e->io.stop();
}

// A provider paused by auth or quota errors (it has a probe time; a user's pause has none)
// is probed at once: at start and on SIGHUP, where the key may have been fixed.
void probe_now(ProviderRuntime* p, const char* why) {
    if (!p->lane.paused() || p->lane.probe_at() <= 0 || p->lane.probing()) return;
    p->lane.pause(p->lane.pause_reason(), jobs::unix_now());
    spdlog::info("event=probe_scheduled provider={} reason={}", q(p->config.name), q(why));
    p->wake();
}

void reload(Engine* e) {
    if (e->options.config_path.empty()) {
        spdlog::warn("event=reload_skipped reason=\"no config file\"");
        return;
    }
    notify_reloading();
    try {
        Config fresh = load_config(e->options.config_path);
        for (auto& p : e->shared.providers) {
            const ProviderConfig* pc = fresh.provider(p->config.name);
            if (!pc) continue;
            p->apply_limits(*pc);
            spdlog::info("event=reloaded provider={} max_concurrency={} rpm={} ipm={} timeout_s={}",
                         q(p->config.name), pc->max_concurrency, pc->requests_per_minute,
                         pc->images_per_minute, pc->timeout_s);
            // Keys are read again (api_key_env, api_key_file, credentials directory), or
            // api_key_command runs again (off this thread).
            try {
                p->keys.reconfigure(*pc, resolve_api_key(*pc));
            } catch (const std::exception& ex) {
                spdlog::error("event=reload_key_failed provider={} error={} note=\"old key kept\"",
                              q(p->config.name), q(ex.what()));
            }
            probe_now(p.get(), "reload");
        }
        budget_reconfigure(&e->shared, fresh.budget);
    } catch (const std::exception& ex) {
        spdlog::error("event=reload_failed error={} note=\"old limits kept\"", q(ex.what()));
    }
    notify_ready();
}

asio::awaitable<void> signal_loop(Engine* e) {
    asio::signal_set signals(e->io, SIGINT, SIGTERM, SIGHUP);
    for (;;) {
        auto [ec, sig] = co_await signals.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        if (sig == SIGHUP) {
            reload(e);
            continue;
        }
        asio::co_spawn(e->io, shutdown(e, sig == SIGINT ? "SIGINT" : "SIGTERM"), asio::detached);
    }
}

asio::awaitable<void> stop_after(Engine* e, double seconds) {
    asio::steady_timer t(e->io, secs(seconds));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    asio::co_spawn(e->io, shutdown(e, "max_seconds"), asio::detached);
}

}  // namespace

int run_daemon(const Config& config, const RunOptions& options) {
    const double process_start = jobs::unix_now();
    // An address that cannot be bound is a configuration error, found before anything starts.
    std::unique_ptr<MetricsSocket> metrics_socket;
    if (!config.metrics_listen.empty())
        metrics_socket = std::make_unique<MetricsSocket>(config.metrics_listen);
    std::string owner = make_owner();
    std::vector<std::string> keys;
    for (const auto& p : config.providers) {
        if (!find_provider_api(p.api)) {
            spdlog::error("event=config_error provider={} error=\"unknown api '{}'\"", q(p.name),
                          p.api);
            return kExitConfig;
        }
        try {
            keys.push_back(initial_api_key(p));
        } catch (const std::exception& ex) {
            spdlog::error("event=config_error provider={} error={}", q(p.name), q(ex.what()));
            return kExitConfig;
        }
    }
    // This daemon's proof of life, then its row in the database: a second daemon is refused
    // before it touches any file or request.
    const std::string lock_dir = OwnerLock::dir_for(config.database);
    std::unique_ptr<OwnerLock> lock;
    try {
        lock = std::make_unique<OwnerLock>(lock_dir, owner);
    } catch (const std::exception& ex) {
        spdlog::error("event=start_error error={}", q(ex.what()));
        return 2;
    }
    // The output directory must be writable before any call. Starting the writer takes this
    // daemon's temporary directory (flock) and removes only those of daemons that are gone.
    OutputWriter writer(config.output_dir, OutputWriter::tag_for(owner),
                        OutputOptions{config.output_name, config.sidecar});
    if (auto err = writer.start()) {
        spdlog::error("event=config_error output_dir={} error={}", q(config.output_dir), q(*err));
        return kExitConfig;
    }
    if (writer.stale_removed() > 0)
        spdlog::info("event=temp_files_removed count={}", writer.stale_removed());
    // Decoding is CPU work: a thread per core. Writing a staged image is mostly waiting for its
    // fsync: many writers keep the disk's queue full (the journal commits them together).
    asio::thread_pool decode_pool(std::max(2U, std::thread::hardware_concurrency()));
    asio::thread_pool writer_pool(kWriterThreads);
    DbWorker::FileHooks hooks{[&writer](jobs::Completion& c) { writer.place(c); },
                              [&writer] { writer.sync_dirs(); },
                              [&writer](const jobs::Completion& c) { writer.unplace(c); },
                              [&writer](const jobs::Completion& c) { writer.discard(c); }};
    std::unique_ptr<DbWorker> db;
    std::vector<jobs::ProviderState> states;
    int requeued = 0;
    try {
        db = std::make_unique<DbWorker>(config.database, hooks);
        auto refused = db->call_sync([&](jobs::Store& st) {
            double now = jobs::unix_now();
            jobs::DaemonRow self{
                owner, host_name(), ::getpid(), now, now, 0, options.allow_multiple, ""};
            return st.register_daemon(self, options.allow_multiple,
                                      [&lock_dir, now](const jobs::DaemonRow& d) {
                                          Liveness l = OwnerLock::probe(lock_dir, d.owner);
                                          if (l != Liveness::unknown) return l == Liveness::alive;
                                          return d.heartbeat_at > now - kHeartbeatStaleS;
                                      });
        });
        if (!refused.empty()) {
            const auto& d = refused.front();
            spdlog::error(
                "event=start_refused database={} running_host={} running_pid={} "
                "running_since={} running_owner={} note={}",
                q(config.database), q(d.host), d.pid, q(format_time(d.started_at)), q(d.owner),
                q("another imgbatch daemon runs on this database: stop it first, or start every "
                  "daemon with `run --allow-multiple` (the providers' limits are then shared)"));
            std::fprintf(stderr,
                         "imgbatch: another daemon is running on %s (host %s, pid %lld, since "
                         "%s); stop it first, or start every daemon with run --allow-multiple\n",
                         config.database.c_str(), d.host.c_str(), static_cast<long long>(d.pid),
                         format_time(d.started_at).c_str());
            return 2;
        }
        // The daemon's connection touches the tails of outputs and attempts and a few index
        // pages per claim: a small page cache is enough, and memory stays flat over the night
        // (the store's 32 MiB, meant for big enqueues, filled at about 0.5 KiB per image).
        db->call_sync([](jobs::Store& st) {
            st.db().exec("PRAGMA cache_size = -2048");
            return 0;
        });
        requeued = db->call_sync([&owner, &lock_dir](jobs::Store& st) {
            double now = jobs::unix_now();
            return st.requeue_expired(now) + requeue_dead_owners(st, owner, lock_dir, now);
        });
        // Files a crash left between rename and commit (only when no other daemon is live).
        if (int n = db->call_sync([&writer](jobs::Store& st) { return writer.remove_orphans(st); });
            n > 0)
            spdlog::info("event=orphan_files_removed count={}", n);
        states = db->call_sync([](jobs::Store& st) { return st.provider_states(); });
    } catch (const std::exception& ex) {
        spdlog::error("event=db_error op=open path={} error={}", q(config.database), q(ex.what()));
        return 2;
    }
    int code = 0;
    {
        Engine e(config, options, owner, *db, writer, decode_pool, writer_pool, lock_dir);
        e.shared.poll_interval_s = config.poll_interval_s > 0 ? config.poll_interval_s : 1.0;
        e.shared.shared_limits = options.allow_multiple;
        e.shared.catalog = &config.catalog;
        e.shared.budget.config = &config;
        e.shared.budget.ledger.configure(config.budget);
        e.shared.started_at = process_start;
        e.shared.leases_expired = static_cast<std::uint64_t>(requeued);
        if (options.until_idle)
            e.shared.drained = [&e] {
                e.idle_check_due = true;
                e.tick.cancel();
            };
        for (std::size_t i = 0; i < config.providers.size(); ++i) {
            const auto& pc = config.providers[i];
            auto rt = std::make_unique<ProviderRuntime>(e.io.get_executor(), pc,
                                                        find_provider_api(pc.api), keys[i]);
            for (const auto& st : states)
                if (st.name == pc.name && st.paused) rt->lane.pause(st.reason, st.probe_at);
            probe_now(rt.get(), "start");
            spdlog::info(
                "event=provider name={} api={} base_url={} max_concurrency={} rpm={} ipm={} "
                "timeout_s={}{}",
                q(pc.name), q(pc.api), q(pc.base_url), pc.max_concurrency, pc.requests_per_minute,
                pc.images_per_minute, pc.timeout_s,
                rt->lane.paused() ? " paused=\"" + rt->lane.pause_reason() + "\"" : "");
            e.shared.providers.push_back(std::move(rt));
        }
        spdlog::info(
            "event=start owner={} database={} output_dir={} providers={} requeued={} "
            "until_idle={} max_seconds={}",
            q(owner), q(config.database), q(config.output_dir), config.providers.size(), requeued,
            options.until_idle, options.max_seconds);
        asio::co_spawn(e.io, signal_loop(&e), asio::detached);
        asio::co_spawn(e.io, control_loop(&e), asio::detached);
        for (auto& p : e.shared.providers) {
            asio::co_spawn(e.io,
                           p->config.mode == "batch" ? batch_loop(&e.shared, p.get())
                                                     : dispatch_loop(&e.shared, p.get()),
                           asio::detached);
            if (p->keys.refreshable()) asio::co_spawn(e.io, p->keys.refresh_loop(), asio::detached);
        }
        if (options.max_seconds > 0)
            asio::co_spawn(e.io, stop_after(&e, options.max_seconds), asio::detached);
        if (metrics_socket)
            asio::co_spawn(e.io, serve_metrics(&e.shared, metrics_socket.get()),
                           [](std::exception_ptr ep) {
                               if (!ep) return;
                               try {
                                   std::rethrow_exception(ep);
                               } catch (const std::exception& ex) {
                                   spdlog::error("event=metrics_error error={}", q(ex.what()));
                               }
                           });
        // STATUS= from the start (queue, in flight, images, paused providers), and the
        // watchdog when the unit asks for one (WatchdogSec=).
        asio::co_spawn(e.io, status_loop(&e.shared, std::chrono::seconds(5), images_written),
                       asio::detached);
        if (auto interval = watchdog_interval())
            asio::co_spawn(e.io, watchdog_loop(&e.shared, *interval), asio::detached);
        notify_ready();
        try {
            e.io.run();
        } catch (const std::exception& ex) {
            spdlog::critical("event=engine_error error={}", q(ex.what()));
            code = 1;
        }
        try {
            db->call_sync([&owner](jobs::Store& st) {
                st.daemon_stopped(owner, jobs::unix_now());
                return 0;
            });
        } catch (const std::exception& ex) {
            spdlog::error("event=db_error op=stopped error={}", q(ex.what()));
        }
        // Handlers may still be posted to the (stopped) io_context until these are done.
        db->stop();
        decode_pool.join();
        writer_pool.join();
    }
    return code;
}

}  // namespace imgbatch::daemon
