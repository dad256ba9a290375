#include "daemon/engine/dispatcher.hpp"
#include "daemon/logfmt.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include "daemon/engine/attempt.hpp"
#include "daemon/engine/budget_dispatch.hpp"

namespace imgbatch::daemon {
namespace asio = boost::asio;

namespace {

HttpClientOptions client_options(const ProviderConfig& cfg) {
    HttpClientOptions o;
    o.connect_timeout =
        std::chrono::milliseconds(static_cast<long long>(cfg.connect_timeout_s * 1000));
    o.response_timeout = std::chrono::milliseconds(static_cast<long long>(cfg.timeout_s * 1000));
    o.max_response_bytes = cfg.max_response_bytes;
    // Keep enough idle connections for the whole lane.
    o.max_idle_connections = static_cast<std::size_t>(std::max(cfg.max_concurrency, 16));
    return o;
}

// daemons: how many daemons share the provider's rates (each takes an equal part).
LaneLimits lane_limits(const ProviderConfig& cfg, int daemons = 1) {
    double share = std::max(daemons, 1);
    return LaneLimits{cfg.max_concurrency, cfg.requests_per_minute / share,
                      cfg.images_per_minute / share};
}

double lease_for(const ProviderConfig& cfg) {
    return cfg.connect_timeout_s + cfg.timeout_s + 60;
}

}  // namespace

ProviderRuntime::ProviderRuntime(asio::any_io_executor ex, const ProviderConfig& cfg,
                                 const ProviderApi* a, std::string key)
    : config(cfg),
      api(a),
      keys(ex, cfg, std::move(key)),
      lane(cfg.name, lane_limits(cfg)),
      client(std::make_unique<HttpClient>(ex, client_options(cfg))),
      download(std::make_unique<HttpClient>(ex, client_options(cfg))),
      lease_s(lease_for(cfg)),
      wake_timer(ex) {}

void ProviderRuntime::share_with(int daemons) {
    if (daemons == sharing) return;
    sharing = daemons;
    lane.set_limits(lane_limits(config, sharing));
    wake();
}

int ProviderRuntime::prefetch_target() const {
    return std::clamp(config.max_concurrency, 1, 128) * prefetch_scale;
}

int next_prefetch_scale(int scale, bool claim_was_full, int ready, int free, int concurrency,
                        int target) {
    if (claim_was_full && ready == 0 && free >= std::max(2, concurrency / 2)) {
        // The slots drained everything held ahead while the claim was on its way, and the
        // queue has more: claim more at a time (fast answers at high concurrency). A lane
        // spaced by a rate never has more than one start free: it keeps scale 1.
        return std::min(scale * 2, kMaxPrefetchScale);
    }
    // Half of what was held ahead was still waiting: the claims are ahead of the lane.
    if (scale > 1 && ready * 2 >= target) return scale / 2;
    return scale;
}

void ProviderRuntime::adapt_prefetch(bool claim_was_full, double now) {
    prefetch_scale =
        next_prefetch_scale(prefetch_scale, claim_was_full, static_cast<int>(ready.size()),
                            lane.claimable(now), lane.limits().max_concurrency, prefetch_target());
}

bool LaneSlot::release() {
    if (!held) return false;
    held = false;
    lane->on_finish();
    return true;
}

void ProviderRuntime::wake() {
    wake_pending = true;
    claim_not_before = 0;
    wake_timer.cancel();
}

void ProviderRuntime::apply_limits(const ProviderConfig& cfg) {
    bool timeouts_changed = cfg.timeout_s != config.timeout_s ||
                            cfg.connect_timeout_s != config.connect_timeout_s ||
                            cfg.max_response_bytes != config.max_response_bytes;
    config.max_concurrency = cfg.max_concurrency;
    config.requests_per_minute = cfg.requests_per_minute;
    config.images_per_minute = cfg.images_per_minute;
    config.timeout_s = cfg.timeout_s;
    config.connect_timeout_s = cfg.connect_timeout_s;
    config.max_response_bytes = cfg.max_response_bytes;
    lane.set_limits(lane_limits(config, sharing));
    lease_s = lease_for(config);
    if (timeouts_changed) {
        // Attempts in flight keep the old clients alive until they end (the client's state
        // is shared with its calls); new calls use the new options.
        auto ex = wake_timer.get_executor();
        client = std::make_unique<HttpClient>(ex, client_options(config));
        download = std::make_unique<HttpClient>(ex, client_options(config));
    }
    wake();
}

EngineShared::EngineShared(asio::any_io_executor ex, std::string own, jobs::RetryConfig r,
                           DbWorker& d, OutputWriter& w, asio::thread_pool& decode,
                           asio::thread_pool& write)
    : executor(ex),
      owner(std::move(own)),
      retry(r),
      db(d),
      writer(w),
      decode_pool(decode),
      writer_pool(write),
      rng(std::random_device{}()),
      attempt_ended(ex) {}

double EngineShared::jitter() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

ProviderRuntime* EngineShared::provider(std::string_view name) {
    for (auto& p : providers)
        if (p->config.name == name) return p.get();
    return nullptr;
}

void EngineShared::local_failed(const std::string& reason) {
    ++local_failing;
    if (local_pause.empty()) {
        spdlog::error(
            "event=local_pause error={} note={}", q(reason),
            q("dispatching is held; the images received are kept in memory and written as soon "
              "as a write succeeds"));
        db.post([owner = owner, reason](jobs::Store& st) {
            st.heartbeat(owner, jobs::unix_now(), reason);
        });
    }
    local_pause = reason;
}

void EngineShared::local_recovered() {
    if (local_failing > 0) --local_failing;
    if (local_failing > 0 || local_pause.empty()) return;
    spdlog::info("event=local_resumed note=\"the output directory takes writes again\"");
    local_pause.clear();
    db.post([owner = owner](jobs::Store& st) { st.heartbeat(owner, jobs::unix_now(), ""); });
    wake_all();
}

void EngineShared::wake_all() {
    for (auto& p : providers) p->wake();
}

void EngineShared::forget(std::int64_t request_id, int attempt_no) {
    auto it = in_flight.find(request_id);
    if (it == in_flight.end() || it->second.attempt_no != attempt_no) return;
    in_flight.erase(it);
    if (in_flight.empty() && drained) drained();
}

void answer_received(EngineShared* s, const jobs::ClaimedRequest& req) {
    auto it = s->in_flight.find(req.request_id);
    if (it == s->in_flight.end() || it->second.attempt_no != req.attempt_no || !it->second.slot)
        return;
    auto* p = s->provider(it->second.provider);
    auto& slot = *it->second.slot;
    if (!p || !slot.held || p->answers_writing >= std::max(p->config.max_concurrency, 1)) return;
    slot.release();
    slot.early = true;
    ++p->answers_writing;
    p->wake();  // a slot is free
}

asio::awaitable<void> sleep_until_woken(ProviderRuntime* p, double seconds) {
    if (!p->wake_pending && seconds > 0) {
        p->wake_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(seconds)));
        co_await p->wake_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    p->wake_pending = false;
}

asio::awaitable<void> give_back(EngineShared* s, std::int64_t request_id) {
    auto it = s->in_flight.find(request_id);
    if (it == s->in_flight.end()) co_return;
    it->second.state = AttemptState::returned;
    jobs::Completion c;
    c.request_id = request_id;
    c.attempt_no = it->second.attempt_no;
    c.owner = s->owner;
    c.started_at = it->second.started_at;
    c.finished_at = jobs::unix_now();
    c.next = jobs::Next::returned;
    std::string provider = it->second.provider;
    std::int64_t job = it->second.job_id;
    std::string batch = it->second.batch, key = it->second.key;
    auto slot = it->second.slot;
    int attempt = c.attempt_no;
    // The stop waits for this commit: a request left `running` would wait for its lease.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto delay = std::chrono::milliseconds(250);
    for (;;) {
        std::string error;
        try {
            jobs::Completion attempt_copy = c;
            co_await s->db.complete(std::move(attempt_copy));
            break;
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (std::chrono::steady_clock::now() + delay > give_up) {
            spdlog::error(
                "event=complete_failed request={} error={} note=\"left running until its "
                "lease expires\"",
                request_id, q(error));
            break;
        }
        spdlog::warn("event=give_back_retry request={} in_ms={} error={}", request_id,
                     delay.count(), q(error));
        asio::steady_timer wait(s->executor, delay);
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    spdlog::info(
        "event=attempt job={} batch={} key={} request={} provider={} attempt={} outcome=returned",
        job, q(batch), q(key), request_id, q(provider), attempt);
    if (auto* p = s->provider(provider)) {
        if (slot) slot->release();
        p->counters.count_attempt("returned", "");
        p->wake();
    }
    budget_release(s, request_id);
    s->forget(request_id, attempt);
    s->attempt_ended.cancel();
}

namespace {

void start_attempt(EngineShared* s, ProviderRuntime* p, jobs::ClaimedRequest req, double now) {
    // A start on a paused lane is its probe: only that request's outcome resumes it.
    const bool probe = p->lane.paused();
    p->lane.on_start(now, req.n - req.images_done);
    auto slot = std::make_shared<LaneSlot>(&p->lane);
    s->in_flight[req.request_id] = InFlight{
        req.job_id, req.attempt_no, jobs::unix_now(), p->config.name, AttemptState::running,
        slot,       probe,          req.batch,        req.key};
    asio::co_spawn(s->executor, run_attempt(s, p, std::move(req), std::move(slot)), asio::detached);
}

// Claims taken ahead that will not start (a stop, a paused provider) go back to the queue as
// if never claimed. If the database cannot be reached they are given back like calls in
// flight at a stop (retried, then left to their leases).
asio::awaitable<void> unclaim(EngineShared* s, std::vector<jobs::ClaimedRequest> reqs) {
    if (reqs.empty()) co_return;
    ++s->claims_pending;
    std::vector<jobs::LeasedAttempt> list;
    for (const auto& r : reqs) list.push_back({r.request_id, r.attempt_no});
    bool ok = true;
    try {
        auto back = [owner = s->owner, list](jobs::Store& st) {
            return st.unclaim(owner, list, jobs::unix_now());
        };
        int n = co_await s->db.call<int>(std::move(back));
        spdlog::info("event=unclaimed provider={} requests={}", q(reqs.front().provider), n);
    } catch (const std::exception& e) {
        spdlog::error("event=db_error op=unclaim error={}", q(e.what()));
        ok = false;
    }
    --s->claims_pending;
    for (const auto& r : reqs) {
        if (ok)
            s->forget(r.request_id, r.attempt_no);
        else
            asio::co_spawn(s->executor, give_back(s, r.request_id), asio::detached);
    }
    s->attempt_ended.cancel();  // a stop waits for these
}

void unclaim_ready(EngineShared* s, ProviderRuntime* p) {
    if (p->ready.empty()) return;
    std::vector<jobs::ClaimedRequest> reqs(std::make_move_iterator(p->ready.begin()),
                                           std::make_move_iterator(p->ready.end()));
    p->ready.clear();
    asio::co_spawn(s->executor, unclaim(s, std::move(reqs)), asio::detached);
}

// Claims taken ahead that a budget holds (every one under a day or run budget, those of a held
// batch under its batch budget) go back to the queue.
void unclaim_budget_held(EngineShared* s, ProviderRuntime* p) {
    if (s->budget.global_hold()) {
        unclaim_ready(s, p);
        return;
    }
    const auto held = s->budget.held_batches();
    if (held.empty() || p->ready.empty()) return;
    std::vector<jobs::ClaimedRequest> back;
    std::deque<jobs::ClaimedRequest> keep;
    for (auto& r : p->ready) {
        if (std::find(held.begin(), held.end(), r.batch) != held.end())
            back.push_back(std::move(r));
        else
            keep.push_back(std::move(r));
    }
    p->ready.swap(keep);
    if (!back.empty()) asio::co_spawn(s->executor, unclaim(s, std::move(back)), asio::detached);
}

// One claim of up to `want` requests, off the dispatch loop: what it gets joins p->ready.
asio::awaitable<void> claim_more(EngineShared* s, ProviderRuntime* p, int want) {
    const std::string name = p->config.name;
    p->claiming = true;
    ++s->claims_pending;
    double now = jobs::unix_now();
    std::vector<jobs::ClaimedRequest> claimed;
    bool failed = false;
    try {
        // Beside other daemons the provider's concurrency is enforced in the database.
        int cap = s->shared_limits ? p->config.max_concurrency : 0;
        // Requests of batches held by their budget stay queued.
        auto claim = [name, owner = s->owner, want, now, lease = p->lease_s, cap,
                      skip = s->budget.held_batches()](jobs::Store& st) {
            return st.claim_except(name, owner, want, now, lease, cap, skip);
        };
        // Ahead of the completions waiting for their group commit: free slots wait for it.
        claimed = co_await s->db.call_first<std::vector<jobs::ClaimedRequest>>(std::move(claim));
    } catch (const std::exception& e) {
        spdlog::error("event=db_error op=claim provider={} error={}", q(name), q(e.what()));
        failed = true;
    }
    --s->claims_pending;
    if (!failed) p->adapt_prefetch(static_cast<int>(claimed.size()) == want, jobs::unix_now());
    for (auto& req : claimed) {
        s->in_flight[req.request_id] =
            InFlight{req.job_id, req.attempt_no, now,       name,   AttemptState::claimed,
                     nullptr,    false,          req.batch, req.key};
        p->ready.push_back(std::move(req));
    }
    if (s->stopping || !p->loop_running) {
        // Claimed while a stop began: back at once.
        unclaim_ready(s, p);
        p->claiming = false;
        s->attempt_ended.cancel();
        co_return;
    }
    if (failed) {
        p->claim_not_before = jobs::unix_now() + s->poll_interval_s;
    } else if (claimed.empty()) {
        std::optional<double> next;
        try {
            auto ready = [name, now](jobs::Store& st) { return st.next_ready(name, now); };
            next = co_await s->db.call<std::optional<double>>(std::move(ready));
        } catch (const std::exception& e) {
            spdlog::error("event=db_error op=next_ready provider={} error={}", q(name),
                          q(e.what()));
        }
        double wait = s->poll_interval_s;
        if (next) wait = std::clamp(*next - jobs::unix_now(), 0.001, wait);
        p->claim_not_before = jobs::unix_now() + wait;
        p->claiming = false;
        // Not a wake-up: that would clear claim_not_before.
        p->wake_pending = true;
        p->wake_timer.cancel();
        co_return;
    }
    p->claiming = false;
    p->wake();
}

}  // namespace

asio::awaitable<void> dispatch_loop(EngineShared* s, ProviderRuntime* p) {
    p->loop_running = true;
    while (!s->stopping) {
        if (!s->local_pause.empty()) {
            // Images already paid for wait for the disk: ask for no more.
            co_await sleep_until_woken(p, s->poll_interval_s);
            continue;
        }
        if (s->budget.global_hold()) {
            // A day or run budget holds: nothing starts until it lets calls through again.
            unclaim_ready(s, p);
            co_await sleep_until_woken(p, s->poll_interval_s);
            continue;
        }
        double now = jobs::unix_now();
        int can = p->lane.claimable(now);
        if (!p->ready.empty()) {
            if (can > 0) {
                // Spacing counts from now, the slot the request starts in.
                int started = 0;
                Admit admit = Admit::go;
                while (started < can && !p->ready.empty()) {
                    admit = budget_admit(s, p, p->ready.front(), now);
                    if (admit == Admit::wait) break;
                    if (admit == Admit::hold) {
                        unclaim_budget_held(s, p);
                        break;
                    }
                    jobs::ClaimedRequest req = std::move(p->ready.front());
                    p->ready.pop_front();
                    start_attempt(s, p, std::move(req), now);
                    ++started;
                }
                if (started > 0) continue;  // claimable changed
                if (admit == Admit::hold) continue;
            }
            // A paused provider does not hold claims for requests it will not send.
            if (p->lane.paused()) unclaim_ready(s, p);
        }
        int target = s->shared_limits || p->lane.paused() ? 0 : p->prefetch_target();
        int buffered = static_cast<int>(p->ready.size());
        int want = std::max(can, 0) + target - buffered;
        bool need = can > 0 || buffered * 2 < target;
        if (!p->claiming && want > 0 && need && now >= p->claim_not_before)
            asio::co_spawn(s->executor,
                           claim_more(s, p, std::min(want, ProviderRuntime::kMaxClaim)),
                           asio::detached);
        double wait = s->poll_interval_s;
        if (can <= 0) {
            double at = p->lane.next_start_at(now);
            if (at > 0) wait = std::min(at - now, wait);
        }
        if (!p->claiming && p->claim_not_before > now)
            wait = std::min(wait, p->claim_not_before - now);
        co_await sleep_until_woken(p, std::max(wait, 0.0));
    }
    p->loop_running = false;
    unclaim_ready(s, p);
}

}  // namespace imgbatch::daemon
