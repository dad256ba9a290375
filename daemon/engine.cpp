// `imgbatch run`: wires the DB thread, the writer pool, the provider lanes and the control
// loops (planner, lease renewal, idle check, progress, signals) on one io_context.
#include "daemon/engine.hpp"

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

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <random>

#include "daemon/dispatcher.hpp"
#include "daemon/metrics.hpp"
#include "daemon/notify.hpp"
#include "jobs/planner.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::daemon {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::string make_owner() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
    std::random_device rd;
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rd()));
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" + hex;
}

// Owner ids are "<hostname>:<pid>:<hex>". A daemon on this host whose process is gone can
// never complete its requests: they are taken back at once instead of after their leases
// expire (owners on other hosts, or whose pid is alive, keep theirs until expiry).
bool owner_dead_here(const std::string& owner, const std::string& self) {
    auto host_end = owner.find(':');
    auto pid_end = owner.find(':', host_end + 1);
    if (host_end == std::string::npos || pid_end == std::string::npos || owner == self ||
        owner.compare(0, host_end, self, 0, self.find(':')) != 0)
        return false;
    char* end = nullptr;
    long pid = std::strtol(owner.c_str() + host_end + 1, &end, 10);
    if (end != owner.c_str() + pid_end || pid <= 0) return false;
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

int requeue_dead_owners(jobs::Store& store, const std::string& self, double now) {
    int requeued = 0;
    for (const auto& owner : store.lease_owners())
        if (owner_dead_here(owner, self)) requeued += store.requeue_owner(owner, now);
    return requeued;
}

Clock::duration secs(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct Engine {
    Engine(const Config& c, const RunOptions& o, std::string own, DbWorker& d, OutputWriter& w,
           asio::thread_pool& pool)
        : config(c),
          options(o),
          shared(io.get_executor(), std::move(own), c.retry, d, w, pool),
          tick(io) {}

    asio::io_context io{1};
    const Config& config;
    const RunOptions& options;
    EngineShared shared;
    asio::steady_timer tick;
    bool shutting_down = false;
    bool skip_grace = false;
    Clock::time_point started = Clock::now();
    std::uint64_t images_at_last_progress = 0;
    Clock::time_point last_progress = Clock::now();
};

std::uint64_t images_total(Engine* e) {
    std::uint64_t n = 0;
    for (auto& p : e->shared.providers) n += p->counters.images;
    return n;
}

// Validates and plans pending rows (inserted by SQL) on the DB thread, and rejects rows that
// bypassed 'pending' (queued or running without requests). Planning is per row: a row that
// cannot be read, validated or planned is rejected with the reason, and the others go on.
// Returns how many rows were planned or rejected.
std::size_t plan_pending(jobs::Store& store, const Config* config) {
    constexpr int kBatch = 1000;
    constexpr int kUnplannedPerPass = 50000;  // rows checked per pass: bounded work per poll
    auto infos = config->provider_infos();
    std::size_t total = 0;
    for (const auto& r : store.reject_unplanned(kUnplannedPerPass)) {
        spdlog::warn("event=job_rejected job={} reason=\"{}\"", r.job_id, r.reason);
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
                    auto v = jobs::validate_job(row.spec, config->catalog, infos);
                    if (!v.ok) {
                        d.error = v.error;
                    } else {
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
                spdlog::warn("event=job_rejected job={} reason=\"{}\"", row.id, d.error);
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
            spdlog::warn("event=provider_paused provider={} reason=\"{}\"", p->config.name,
                         st->reason);
        } else if (!paused && p->lane.paused() && !p->lane.probing()) {
            p->lane.unpause();
            spdlog::info("event=provider_resumed provider={}", p->config.name);
            p->wake();
        }
    }
}

// --until-idle: stop once nothing is in flight and nothing can run (requests of paused or
// unconfigured providers do not count).
asio::awaitable<bool> check_idle(Engine* e) {
    if (!e->shared.in_flight.empty()) co_return false;
    auto read = [](jobs::Store& st) { return st.open_work(); };
    auto work = co_await e->shared.db.call<jobs::OpenWork>(std::move(read));
    if (work.pending > 0 || !e->shared.in_flight.empty()) co_return false;
    std::string held;
    for (auto& [name, count] : work.requests_by_provider) {
        auto* p = e->shared.provider(name);
        if (p && !p->lane.paused()) co_return false;
        held += (held.empty() ? "" : ",") + name + "(" + std::to_string(count) + ")";
    }
    if (!held.empty())
        spdlog::warn(
            "event=idle_with_held_work providers={} note=\"paused or unconfigured "
            "providers hold queued requests\"",
            held);
    co_return true;
}

void log_progress(Engine* e) {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - e->last_progress).count();
    std::uint64_t images = images_total(e);
    double rate = dt > 0 ? double(images - e->images_at_last_progress) / dt : 0;
    std::string lanes;
    for (auto& p : e->shared.providers) {
        lanes += " " + p->config.name + "=" + std::to_string(p->lane.in_flight());
        if (p->lane.paused()) lanes += "(paused)";
    }
    spdlog::info("event=progress in_flight={} images={} images_per_s={:.1f} lanes:{}",
                 e->shared.in_flight.size(), images, rate, lanes);
    notify_status("in flight " + std::to_string(e->shared.in_flight.size()) + ", " +
                  std::to_string(images) + " images written");
    e->images_at_last_progress = images;
    e->last_progress = now;
}

// Planner, pause sync, lease renewal, idle check and progress, every poll interval.
asio::awaitable<void> control_loop(Engine* e) {
    double min_lease = 1e9, max_lease = 0;
    for (auto& p : e->shared.providers) {
        min_lease = std::min(min_lease, p->lease_s);
        max_lease = std::max(max_lease, p->lease_s);
    }
    auto last_renew = Clock::now();
    while (!e->shutting_down) {
        try {
            auto plan = [cfg = &e->config](jobs::Store& st) { return plan_pending(st, cfg); };
            std::size_t planned = co_await e->shared.db.call<std::size_t>(std::move(plan));
            if (planned > 0) {
                spdlog::info("event=planned jobs={}", planned);
                e->shared.wake_all();
            }
            co_await sync_pauses(e);
            if (Clock::now() - last_renew >= secs(min_lease / 3)) {
                last_renew = Clock::now();
                for (auto& p : e->shared.providers) max_lease = std::max(max_lease, p->lease_s);
                std::string owner = e->shared.owner;
                auto renew = [owner, max_lease](jobs::Store& st) {
                    double now = jobs::unix_now();
                    st.renew_leases(owner, now + max_lease);
                    return st.requeue_expired(now) + requeue_dead_owners(st, owner, now);
                };
                int expired = co_await e->shared.db.call<int>(std::move(renew));
                if (expired > 0) {
                    spdlog::warn("event=leases_expired requeued={}", expired);
                    e->shared.wake_all();
                }
            }
            if (e->options.until_idle && !e->shutting_down && co_await check_idle(e)) {
                asio::co_spawn(e->io, shutdown(e, "idle"), asio::detached);
                co_return;
            }
        } catch (const std::exception& ex) {
            spdlog::error("event=db_error op=control error=\"{}\"", ex.what());
        }
        if (Clock::now() - e->last_progress >= std::chrono::seconds(10)) log_progress(e);
        e->tick.expires_after(secs(e->config.poll_interval_s));
        co_await e->tick.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> shutdown(Engine* e, std::string reason) {
    auto& s = e->shared;
    if (e->shutting_down) {
        e->skip_grace = true;
        spdlog::warn("event=stop_now reason={} in_flight={}", reason, s.in_flight.size());
        s.attempt_ended.cancel();
        co_return;
    }
    e->shutting_down = true;
    s.stopping = true;
    s.wake_all();
    e->tick.cancel();
    spdlog::info("event=stopping reason={} in_flight={} grace_s={}", reason, s.in_flight.size(),
                 e->config.shutdown_grace_s);
    auto deadline = Clock::now() + secs(e->config.shutdown_grace_s);
    while (!s.in_flight.empty() && !e->skip_grace && Clock::now() < deadline) {
        s.attempt_ended.expires_at(deadline);
        co_await s.attempt_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // The rest go back to the queue without using an attempt.
    std::vector<std::int64_t> give;
    for (auto& [id, f] : s.in_flight)
        if (f.state == AttemptState::running) give.push_back(id);
    if (!give.empty()) spdlog::warn("event=returning requests={}", give.size());
    for (auto id : give) asio::co_spawn(e->io, give_back(&s, id), asio::detached);
    // Completions under way (and the give-backs) are applied by the DB thread shortly.
    auto drain_deadline = Clock::now() + std::chrono::seconds(30);
    while (!s.in_flight.empty() && Clock::now() < drain_deadline) {
        s.attempt_ended.expires_after(std::chrono::milliseconds(100));
        co_await s.attempt_ended.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    for (auto& p : s.providers) {
        p->client->close_idle();
        p->download->close_idle();
    }
    spdlog::info("event=stopped images={} uptime_s={:.1f}", images_total(e),
                 std::chrono::duration<double>(Clock::now() - e->started).count());
    e->io.stop();
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
                         p->config.name, pc->max_concurrency, pc->requests_per_minute,
                         pc->images_per_minute, pc->timeout_s);
        }
    } catch (const std::exception& ex) {
        spdlog::error("event=reload_failed error=\"{}\" note=\"old limits kept\"", ex.what());
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
    std::string owner = make_owner();
    std::vector<std::string> keys;
    for (const auto& p : config.providers) {
        if (!find_provider_api(p.api)) {
            spdlog::error("event=config_error provider={} error=\"unknown api '{}'\"", p.name,
                          p.api);
            return 2;
        }
        try {
            keys.push_back(resolve_api_key(p));
        } catch (const std::exception& ex) {
            spdlog::error("event=config_error provider={} error=\"{}\"", p.name, ex.what());
            return 2;
        }
    }
    OutputWriter writer(config.output_dir, OutputWriter::tag_for(owner));
    if (int removed = writer.cleanup_stale(); removed > 0)
        spdlog::info("event=temp_files_removed count={}", removed);
    asio::thread_pool pool(4);
    double retry_delay = config.retry.base_delay_s;
    DbWorker::FileHooks hooks{
        [&writer, retry_delay](jobs::Completion& c) { return writer.place(c, retry_delay); },
        [&writer] { writer.sync_dirs(); },
        [&writer](const jobs::Completion& c) { writer.discard(c); }};
    std::unique_ptr<DbWorker> db;
    std::vector<jobs::ProviderState> states;
    int requeued = 0;
    try {
        db = std::make_unique<DbWorker>(config.database, hooks);
        requeued = db->call_sync([&owner](jobs::Store& st) {
            double now = jobs::unix_now();
            return st.requeue_expired(now) + requeue_dead_owners(st, owner, now);
        });
        states = db->call_sync([](jobs::Store& st) { return st.provider_states(); });
    } catch (const std::exception& ex) {
        spdlog::error("event=db_error op=open path={} error=\"{}\"", config.database, ex.what());
        return 2;
    }
    int code = 0;
    {
        Engine e(config, options, owner, *db, writer, pool);
        e.shared.poll_interval_s = config.poll_interval_s > 0 ? config.poll_interval_s : 1.0;
        for (std::size_t i = 0; i < config.providers.size(); ++i) {
            const auto& pc = config.providers[i];
            auto rt = std::make_unique<ProviderRuntime>(e.io.get_executor(), pc,
                                                        find_provider_api(pc.api), keys[i]);
            for (const auto& st : states)
                if (st.name == pc.name && st.paused) rt->lane.pause(st.reason, st.probe_at);
            spdlog::info(
                "event=provider name={} api={} base_url={} max_concurrency={} rpm={} ipm={} "
                "timeout_s={}{}",
                pc.name, pc.api, pc.base_url, pc.max_concurrency, pc.requests_per_minute,
                pc.images_per_minute, pc.timeout_s,
                rt->lane.paused() ? " paused=\"" + rt->lane.pause_reason() + "\"" : "");
            e.shared.providers.push_back(std::move(rt));
        }
        spdlog::info(
            "event=start owner={} database={} output_dir={} providers={} requeued={} "
            "until_idle={} max_seconds={}",
            owner, config.database, config.output_dir, config.providers.size(), requeued,
            options.until_idle, options.max_seconds);
        asio::co_spawn(e.io, signal_loop(&e), asio::detached);
        asio::co_spawn(e.io, control_loop(&e), asio::detached);
        for (auto& p : e.shared.providers)
            asio::co_spawn(e.io, dispatch_loop(&e.shared, p.get()), asio::detached);
        if (options.max_seconds > 0)
            asio::co_spawn(e.io, stop_after(&e, options.max_seconds), asio::detached);
        if (!config.metrics_listen.empty())
            asio::co_spawn(e.io, serve_metrics(&e.shared, config.metrics_listen),
                           [](std::exception_ptr ep) {
                               if (!ep) return;
                               try {
                                   std::rethrow_exception(ep);
                               } catch (const std::exception& ex) {
                                   spdlog::error("event=metrics_error error=\"{}\"", ex.what());
                               }
                           });
        notify_ready();
        try {
            e.io.run();
        } catch (const std::exception& ex) {
            spdlog::critical("event=engine_error error=\"{}\"", ex.what());
            code = 1;
        }
        // Handlers may still be posted to the (stopped) io_context until these are done.
        db->stop();
        pool.join();
    }
    notify_stopping();
    return code;
}

}  // namespace imgbatch::daemon
