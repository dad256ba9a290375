#pragma once
// The per-provider dispatch loop and the state the engine's coroutines share. Everything
// here lives on the one network thread (io_context); the DB thread and the writer pool are
// reached through DbWorker and post().
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/engine/budget_gate.hpp"
#include "daemon/engine/credentials.hpp"
#include "daemon/engine/db_worker.hpp"
#include "daemon/engine/histogram.hpp"
#include "daemon/engine/lane.hpp"
#include "daemon/engine/output_writer.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

// Counters for progress lines and metrics.
struct ProviderCounters {
    std::uint64_t images = 0;  // images written and recorded
    std::uint64_t bytes = 0;   // their bytes
    // Attempts ended, by outcome (ok, partial, error, returned, abandoned) and error class
    // ("" for none).
    std::map<std::pair<std::string, std::string>, std::uint64_t> attempts;
    void count_attempt(const std::string& outcome, const std::string& cls) {
        ++attempts[{outcome, cls}];
    }
    // Seconds from sending a request to its answer being decoded and written.
    Histogram duration{duration_buckets()};
    static std::vector<double> duration_buckets() {
        return {0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};
    }
    // Tokens the provider reported in its usage objects: input, output, total.
    std::map<std::string, std::uint64_t> tokens;
    // USD the provider billed (attempts of known cost), by model.
    std::map<std::string, double> spend_usd;
    void add_spend(const std::string& model, const jobs::Completion& c) {
        if (c.billed == true && c.cost_usd) spend_usd[model] += *c.cost_usd;
    }
};

// The prefetch scale after a claim came back (see ProviderRuntime::prefetch_target):
// claim_was_full (the queue may have more), ready (requests still held ahead when it came
// back), free (slots the lane could start now), concurrency (the lane's max_concurrency),
// target (the prefetch target at this scale).
int next_prefetch_scale(int scale, bool claim_was_full, int ready, int free, int concurrency,
                        int target);
constexpr int kMaxPrefetchScale = 8;

struct ProviderRuntime {
    ProviderRuntime(boost::asio::any_io_executor ex, const ProviderConfig& cfg,
                    const ProviderApi* api, std::string key);

    ProviderConfig config;
    const ProviderApi* api = nullptr;
    KeySource keys;  // the key or token (never logged), refreshed by api_key_command
    Lane lane;
    std::unique_ptr<HttpClient> client;    // the provider's API calls
    std::unique_ptr<HttpClient> download;  // image URLs of its answers
    double lease_s = 0;
    ProviderCounters counters;
    // Bumped whenever the lane's pause state changes here, so that a provider_state read
    // issued before the change does not undo it.
    std::uint64_t pause_version = 0;

    // Wakes the dispatch loop (a completion freed a slot, new work was planned, stop).
    void wake();
    boost::asio::steady_timer wake_timer;
    bool wake_pending = false;
    bool loop_running = false;

    // Applies new limits (SIGHUP): concurrency, rates, timeouts (new connections).
    void apply_limits(const ProviderConfig& cfg);
    // Daemons running beside each other (--allow-multiple) split the provider's rates equally.
    void share_with(int daemons);
    int sharing = 1;

    // Claims taken ahead (prefetched): a slot that frees starts one of these at once, without
    // a round trip through the DB thread. Not while limits are shared with other daemons (the
    // claim enforces the concurrency over all of them) nor while the lane is paused.
    std::deque<jobs::ClaimedRequest> ready;
    bool claiming = false;        // a claim is on its way to the DB thread
    double claim_not_before = 0;  // the queue was found empty: claim again then (or on wake)
    // How many claims to hold ahead: the concurrency (at most 128) times prefetch_scale,
    // which adapt_prefetch doubles (up to kMaxPrefetchScale) when a claim comes back to a
    // drained lane with free slots, and halves when claims run ahead of the lane. One claim
    // takes at most kMaxClaim requests.
    int prefetch_target() const;
    void adapt_prefetch(bool claim_was_full, double now);
    int prefetch_scale = 1;
    static constexpr int kMaxClaim = 1024;
    // Attempts whose slot was freed when their answer came in and whose images are still
    // being decoded and written: at most max_concurrency, so that a disk slower than the
    // provider holds the lane back instead of piling answers up in memory.
    int answers_writing = 0;
};

// A lane slot taken by one attempt (on_start): released exactly once (on_finish), by the
// attempt when its answer is in, or by whoever ends it (give-back at a stop).
struct LaneSlot {
    explicit LaneSlot(Lane* l) : lane(l) {}
    Lane* lane;
    bool held = true;
    bool early = false;  // released by answer_received(), counted in answers_writing
    // Returns true when this call released it.
    bool release();
};

// claimed: taken ahead, waiting in ProviderRuntime::ready (no lane slot yet).
enum class AttemptState { claimed, running, completing, returned };

struct InFlight {
    std::int64_t job_id = 0;
    int attempt_no = 0;
    double started_at = 0;
    std::string provider;
    AttemptState state = AttemptState::running;
    std::shared_ptr<LaneSlot> slot;  // null while claimed
    bool probe = false;              // the one request let through a paused lane
    std::string batch, key;          // for the log lines of a give-back
};

struct EngineShared {
    EngineShared(boost::asio::any_io_executor ex, std::string owner, jobs::RetryConfig retry,
                 DbWorker& db, OutputWriter& writer, boost::asio::thread_pool& decode_pool,
                 boost::asio::thread_pool& writer_pool);

    boost::asio::any_io_executor executor;
    std::string owner;
    jobs::RetryConfig retry;
    DbWorker& db;
    OutputWriter& writer;
    // Answers are decoded (gzip, JSON, base64: CPU) on decode_pool and their images written and
    // fsynced (waiting on the disk) on writer_pool, so that a decode never waits behind fsyncs.
    boost::asio::thread_pool& decode_pool;
    boost::asio::thread_pool& writer_pool;
    std::vector<std::unique_ptr<ProviderRuntime>> providers;
    std::unordered_map<std::int64_t, InFlight> in_flight;  // by request id
    bool stopping = false;                                 // no more claims
    // Claims on their way to or back from the DB thread. A stop waits for them: what they
    // claimed is given back before the daemon exits, never left `running`.
    int claims_pending = 0;
    std::mt19937_64 rng;
    double poll_interval_s = 1.0;
    // Why dispatching is held on this machine (output directory not writable, disk full):
    // no claims while it is set; "" when not held.
    std::string local_pause;
    int local_failing = 0;  // attempts whose images wait in memory for a write to succeed
    // Attempts call these around a write that fails and then succeeds: the first failure
    // holds dispatching (logged once, written to the daemons table at once), the last
    // recovery releases it.
    void local_failed(const std::string& reason);
    void local_recovered();
    // Started with --allow-multiple: the providers' concurrency is enforced in the claim (over
    // every daemon) and their rates are split between the daemons running.
    bool shared_limits = false;
    // The config's catalog: names the replacement when a provider says a model is gone.
    const jobs::Catalog* catalog = nullptr;
    // Batches whose jobs had a completion recorded since the control loop last looked: it
    // logs a summary of each that has nothing left to do.
    std::set<std::string> batches_touched;
    // For metrics: requests whose lease expired (requeued by this daemon), when the daemon
    // started (Unix seconds), and the database's counts as last read by the control loop.
    std::uint64_t leases_expired = 0;
    double started_at = 0;
    jobs::Stats db_stats;
    bool db_stats_read = false;
    // The budgets: spend, calls in flight at their worst case, holds (budget_dispatch.hpp).
    BudgetGate budget;
    // Signalled (cancelled) whenever an attempt ends: shutdown waits on it.
    boost::asio::steady_timer attempt_ended;

    // Called when the last tracked attempt is recorded (in_flight became empty): lets
    // `--until-idle` check at once instead of at the next poll tick.
    std::function<void()> drained;
    // Removes the entry of request_id if it still belongs to attempt_no; calls drained() when
    // nothing is left.
    void forget(std::int64_t request_id, int attempt_no);

    double jitter();  // uniform [0, 1)
    ProviderRuntime* provider(std::string_view name);
    void wake_all();
};

// Claims and starts attempts for one provider until shared.stopping.
boost::asio::awaitable<void> dispatch_loop(EngineShared* shared, ProviderRuntime* provider);

// Gives a claimed request back without using an attempt (shutdown): Completion returned.
// A database error is retried (with backoff, for up to 30 s) before the request is left to
// its lease.
boost::asio::awaitable<void> give_back(EngineShared* shared, std::int64_t request_id);

// The answer of req is in (received and, for URL answers, downloaded): frees its lane slot
// before the files and the records are done. Harmless when already freed.
void answer_received(EngineShared* shared, const jobs::ClaimedRequest& req);

// Waits until the timer expires, is cancelled, or the provider was woken. Returns at once
// when a wake-up is pending.
boost::asio::awaitable<void> sleep_until_woken(ProviderRuntime* provider, double seconds);

}  // namespace imgbatch::daemon
