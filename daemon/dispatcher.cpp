#include "daemon/dispatcher.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include "daemon/attempt.hpp"

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
      api_key(std::move(key)),
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

void ProviderRuntime::wake() {
    wake_pending = true;
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
                           DbWorker& d, OutputWriter& w, asio::thread_pool& pool)
    : executor(ex),
      owner(std::move(own)),
      retry(r),
      db(d),
      writer(w),
      writer_pool(pool),
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
            "event=local_pause error=\"{}\" note=\"{}\"", reason,
            "dispatching is held; the images received are kept in memory and written as soon "
            "as a write succeeds");
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
                "event=complete_failed request={} error=\"{}\" note=\"left running until its "
                "lease expires\"",
                request_id, error);
            break;
        }
        spdlog::warn("event=give_back_retry request={} in_ms={} error=\"{}\"", request_id,
                     delay.count(), error);
        asio::steady_timer wait(s->executor, delay);
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    spdlog::info("event=attempt job={} request={} provider={} attempt={} outcome=returned", job,
                 request_id, provider, attempt);
    if (auto* p = s->provider(provider)) {
        p->lane.on_finish();
        ++p->counters.attempts["returned"];
    }
    s->in_flight.erase(request_id);
    s->attempt_ended.cancel();
}

asio::awaitable<void> dispatch_loop(EngineShared* s, ProviderRuntime* p) {
    p->loop_running = true;
    const std::string name = p->config.name;
    while (!s->stopping) {
        if (!s->local_pause.empty()) {
            // Images already paid for wait for the disk: ask for no more.
            co_await sleep_until_woken(p, s->poll_interval_s);
            continue;
        }
        double now = jobs::unix_now();
        int want = p->lane.claimable(now);
        if (want <= 0) {
            double at = p->lane.next_start_at(now);
            double wait = at > 0 ? std::min(at - now, s->poll_interval_s) : s->poll_interval_s;
            co_await sleep_until_woken(p, std::max(wait, 0.0));
            continue;
        }
        std::vector<jobs::ClaimedRequest> claimed;
        bool failed = false;
        ++s->claims_pending;
        try {
            // Beside other daemons the provider's concurrency is enforced in the database.
            int cap = s->shared_limits ? p->config.max_concurrency : 0;
            auto claim = [name, owner = s->owner, want, now, lease = p->lease_s,
                          cap](jobs::Store& st) {
                return st.claim(name, owner, want, now, lease, cap);
            };
            claimed = co_await s->db.call<std::vector<jobs::ClaimedRequest>>(std::move(claim));
        } catch (const std::exception& e) {
            spdlog::error("event=db_error op=claim provider={} error=\"{}\"", name, e.what());
            failed = true;
        }
        --s->claims_pending;
        if (s->stopping) s->attempt_ended.cancel();  // the stop waits for claims too
        if (failed) {
            co_await sleep_until_woken(p, s->poll_interval_s);
            continue;
        }
        if (claimed.empty()) {
            if (s->stopping) break;
            std::optional<double> next;
            try {
                auto ready = [name, now](jobs::Store& st) { return st.next_ready(name, now); };
                next = co_await s->db.call<std::optional<double>>(std::move(ready));
            } catch (const std::exception& e) {
                spdlog::error("event=db_error op=next_ready provider={} error=\"{}\"", name,
                              e.what());
            }
            double wait = s->poll_interval_s;
            if (next) wait = std::clamp(*next - jobs::unix_now(), 0.001, wait);
            co_await sleep_until_woken(p, wait);
            continue;
        }
        double started = jobs::unix_now();
        for (auto& req : claimed) {
            // Spacing counts from the slot the claim was made for (`now`), not from when the
            // claim's commit returned: otherwise every request would lose that latency and a
            // rate-limited lane would never reach its allowed rate.
            // A start on a paused lane is its probe: only that request's outcome resumes it.
            const bool probe = p->lane.paused();
            p->lane.on_start(now, req.n - req.images_done);
            s->in_flight[req.request_id] =
                InFlight{req.job_id, req.attempt_no, started, name, AttemptState::running, probe};
            if (s->stopping) {
                // Claimed while a stop began: give it back at once.
                asio::co_spawn(s->executor, give_back(s, req.request_id), asio::detached);
                continue;
            }
            asio::co_spawn(s->executor, run_attempt(s, p, std::move(req)), asio::detached);
        }
    }
    p->loop_running = false;
}

}  // namespace imgbatch::daemon
