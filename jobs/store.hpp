#pragma once
// The SQLite job store: enqueue, plan pending rows, claim with leases, complete, requeue,
// cancel/retry, stats and queries. One Store per thread (SQLite connections are not shared);
// every write is one BEGIN IMMEDIATE transaction; statements are prepared once and reused.
#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/error.hpp"
#include "jobs/job_spec.hpp"
#include "jobs/planner.hpp"
#include "jobs/pricing.hpp"
#include "jobs/state.hpp"
#include "jobs/vendor_batch.hpp"

namespace imgbatch::jobs {

// Seconds since the Unix epoch, as a double (the schema's time unit).
double unix_now();

// The claim statement (parameters: owner, lease_until, provider, now, limit), exposed so that
// tests and benchmarks can check its query plan.
std::string_view claim_sql();

// stats()' statement of the images recorded since a time, by provider (parameters: since, and
// with by_batch the batch id), exposed so that tests and benchmarks can check its query plan.
std::string_view recent_images_by_provider_sql(bool by_batch);
// stats()' statement of the number of images recorded since a time (the rate), likewise.
std::string_view recent_images_sql(bool by_batch);
// When the window's first image was asked for (parameters: since[, batch id]).
std::string_view first_recent_start_sql(bool by_batch);

// ---- enqueue ----
struct EnqueueItem {
    JobSpec spec;                      // validated
    std::string provider;              // resolved provider
    std::vector<PlannedRequest> plan;  // from plan_requests
};
struct Duplicate {
    std::size_t item = 0;  // index into the items given
    std::int64_t existing_job = 0;
};
struct EnqueueResult {
    std::int64_t batch_id = 0;
    std::string batch;
    std::vector<std::int64_t> job_ids;  // one per inserted item, in order
    std::vector<Duplicate> duplicates;  // items whose key was already in the database
};

// ---- pending rows (inserted by SQL) ----
struct PendingJob {
    std::int64_t id = 0;
    JobSpec spec;             // read from the row (params/metadata parsed)
    std::string parse_error;  // non-empty: the row itself is malformed (e.g. params not JSON)
};
// A row rejected by the store itself (see Store::reject_unplanned).
struct Rejection {
    std::int64_t job_id = 0;
    std::string reason;
};
struct PlanDecision {
    std::int64_t job_id = 0;
    std::string error;     // non-empty: reject the job with this message
    std::string provider;  // else: queue it with these requests
    std::vector<PlannedRequest> plan;
};

// ---- claim / complete ----
struct ClaimedRequest {
    std::int64_t request_id = 0;
    std::int64_t job_id = 0;
    int seq = 0;
    int first_index = 0;
    int n = 0;            // images the request must produce in all
    int images_done = 0;  // already produced (top-ups ask for n - images_done)
    int attempt_no = 0;   // this attempt's number; a completion must carry it
    int attempts = 0;     // counters before this attempt
    int rate_limited = 0;
    int moderation = 0;
    int timeouts = 0;           // timeouts that may have been billed
    int provider_failures = 0;  // failures blamed on the provider's run of failures
    std::string provider;
    std::string model;
    std::string prompt;
    std::string params_json;  // the job's params object as JSON text
    std::string key;          // job key, or empty
    std::string batch;        // batch name
    double created_at = 0;    // when the job was enqueued
};

// A request the daemon has claimed, at the attempt it claimed it for.
struct LeasedAttempt {
    std::int64_t request_id = 0;
    int attempt_no = 0;
};

struct OutputRecord {
    int idx = 0;  // image index within the job
    std::string path;
    std::int64_t bytes = 0;
    std::string sha256;
    std::string mime;
    int width = 0;
    int height = 0;
    std::string revised_prompt;
};

enum class Next {
    done,      // request finished: succeeded if images_done reaches n, else failed
    retry,     // back to queued, claimable from not_before
    fail,      // request failed (keeps its images)
    block,     // request blocked by moderation (keeps its images)
    returned,  // given back at shutdown: queued again, no attempt used
};

struct Completion {
    std::int64_t request_id = 0;
    int attempt_no = 0;
    std::string owner;
    double started_at = 0;
    double finished_at = 0;
    std::vector<OutputRecord> outputs;  // new images, in idx order
    std::optional<Error> error;         // the attempt's error, if any (partial included)
    std::string usage_json;             // provider's usage object, if any
    Next next = Next::done;
    double not_before = 0;       // with retry
    bool count_attempt = false;  // increment requests.attempts
    bool count_rate_limit = false;
    bool count_moderation = false;
    bool count_timeout = false;           // increment requests.timeouts
    bool count_provider_failure = false;  // increment requests.provider_failures

    // What the attempt cost (schema 006): billed by the provider (unset: not known), its
    // cost in USD (unset: unknown), how it was computed, and the usage in one vocabulary
    // (columns left NULL unless usage.reported).
    std::optional<bool> billed;
    std::optional<double> cost_usd;
    CostBasis cost_basis = CostBasis::unknown;
    bool cost_estimated = false;  // a worst case stood in for usage (stored as 'worst_case')
    Usage usage;
    // With retry: the provider whose queue the request goes back to (a line of a vendor batch
    // retried as a direct call); empty: its own.
    std::string requeue_provider;
};

// ---- provider state ----
struct ProviderState {
    std::string name;
    bool paused = false;
    std::string reason;
    double paused_at = 0;
    double probe_at = 0;  // 0: no automatic probe (paused by the user)
};

// ---- queries ----
struct JobFilter {
    std::optional<std::string> batch;
    std::optional<JobState> state;
    std::vector<std::int64_t> ids;
    int limit = 0;  // 0: no limit
};

struct ProviderStats {
    std::int64_t queued = 0;     // requests waiting
    std::int64_t claimed = 0;    // requests running under a live lease (prefetch included)
    std::int64_t in_flight = 0;  // calls sent, answer not in (live daemons' heartbeats); for
                                 // one batch: at most this many (its claimed requests at most)
    std::int64_t images_last_min = 0;
};
struct Stats {
    std::map<std::string, std::int64_t> jobs_by_state;  // every state, 0 included
    std::int64_t jobs = 0;
    std::int64_t images_done = 0;    // over the same jobs as images_wanted
    std::int64_t images_wanted = 0;  // over jobs not rejected/cancelled
    double images_per_min = 0;       // over the last 5 minutes, or since the first of
                                     // their images was asked for when later
    double rate_window_s = 300;      // the span images_per_min is over
    // Images still missing from unfinished (pending/queued/running) jobs / rate, when there is
    // a rate (failed jobs will not produce theirs, so they do not count).
    std::optional<double> eta_s;
    std::map<std::string, ProviderStats> providers;
};

// Progress of one batch (status --watch, wait).
struct BatchProgress {
    std::string name;
    double created_at = 0;
    std::map<std::string, std::int64_t> jobs_by_state;  // every state, 0 included
    std::int64_t jobs = 0;
    std::int64_t images_done = 0, images_wanted = 0;  // as in Stats
    std::int64_t images_remaining = 0;  // still missing from pending/queued/running jobs
    std::int64_t retrying = 0;          // queued requests that already used an attempt
    // No job pending, queued or running (a batch without jobs is final).
    bool final() const;
    std::int64_t count(JobState s) const;
};
// When a batch's work started and ended.
struct BatchTimes {
    double started_at = 0;   // the first attempt's start; 0 before any
    double finished_at = 0;  // the latest finished_at of its jobs (the end, once it is final)
};
// What a provider's lane has to do, over every batch.
struct LaneLoad {
    std::string provider;
    std::int64_t queued = 0;     // requests queued
    std::int64_t due = 0;        // of them, claimable now (not_before <= now)
    double next_due = 0;         // earliest not_before of the queued ones (0: none)
    std::int64_t claimed = 0;    // running under a live lease (prefetch included)
    std::int64_t in_flight = 0;  // calls sent, answer not in (live daemons' heartbeats)
};

struct JobRow {
    std::int64_t id = 0;
    std::string key, batch, state, prompt, model, provider, params_json, metadata_json, error;
    int n = 0, priority = 0, images_done = 0;
    double created_at = 0, updated_at = 0, finished_at = 0;
    // Attempts that used the provider (attempts returned at shutdown are not counted).
    int attempts = 0;
    // Rejected: the reason (class invalid_request, code "rejected"); else, unless succeeded,
    // the most recent failed attempt's error.
    std::optional<Error> last_error;
};
struct RequestRow {
    std::int64_t id = 0;
    int seq = 0, first_index = 0, n = 0, images_done = 0, attempts = 0, rate_limited = 0,
        moderation = 0;
    std::string state, provider;
    double not_before = 0;
};
struct AttemptRow {
    std::int64_t id = 0, request_id = 0;
    int attempt_no = 0, images = 0, http_status = 0;
    std::string provider, outcome, error_class, error_code, message, usage_json;
    double started_at = 0, finished_at = 0;
    std::int64_t duration_ms = 0;
    std::optional<bool> billed;
    std::optional<double> cost_usd;
    std::string cost_basis;  // tokens, per_image, per_call, worst_case; "" when unknown
};
struct JobDetail {
    JobRow job;
    std::vector<RequestRow> requests;
    std::vector<AttemptRow> attempts;
    std::vector<OutputRecord> outputs;
};
// One export record (SPEC: job id, key, batch, state, prompt, model, provider, n, images,
// attempts, last error or null).
struct ExportRecord {
    JobRow job;
    std::vector<OutputRecord> images;
    int attempts = 0;
    std::optional<Error> last_error;
    // The providers' usage objects of the job's attempts, summed field by field (tokens: what
    // the job cost); empty when no provider reported usage.
    boost::json::object usage;
    // What the job cost: the sum of its billed attempts' costs (0 when none was billed);
    // unset when no billed attempt has a known cost and some attempt's cost or billing is
    // unknown. unpriced: billed attempts of unknown cost (not in cost_usd).
    std::optional<double> cost_usd;
    std::int64_t unpriced = 0;
};

// One exported image (`export --per-image`, the report): the job, the output, and the
// attempt that produced it.
struct ImageRecord {
    JobRow job;
    OutputRecord image;
    std::string provider;          // provider of the producing attempt (else the job's)
    double recorded_at = 0;        // outputs.created_at: when the image was recorded
    double started_at = 0;         // the producing attempt's start (0: unknown)
    std::int64_t duration_ms = 0;  // the producing attempt's call time
    int attempt_no = 0;
    // The image's share of the producing attempt's cost (its cost over its images); unset
    // when unknown.
    std::optional<double> cost_usd;
};

// Adds every number of `more` to the same field of `total`, recursing into objects (usage
// objects such as {"total_tokens": 10, "input_tokens_details": {"text_tokens": 4}}).
void add_usage(boost::json::object& total, const boost::json::object& more);

// ---- spend (store_spend.cpp) ----
// Which attempts (spend) or requests (projections) to count; unset fields do not filter.
struct SpendFilter {
    std::optional<std::string> batch;     // the job's batch name
    std::optional<double> since;          // attempts finished at or after this time
    std::optional<std::string> owner;     // attempts of one run (daemons.owner)
    std::optional<std::string> provider;  // attempts or requests of one provider
};
struct Spend {
    double usd = 0;  // sum of cost_usd over billed attempts
    std::int64_t billed_attempts = 0;
    std::int64_t unpriced = 0;   // billed attempts whose cost is unknown (not in usd)
    std::int64_t estimated = 0;  // billed attempts priced at their worst case
};
// Spend of one batch, provider and model.
struct SpendRow {
    std::string batch, provider, model;
    Spend spend;
};
// Queued requests that share what sets their price: provider, model, params and images still
// wanted per request; `requests` of them, whose prompts are prompt_bytes long on average
// (costs are linear in the prompt's size).
struct QueuedGroup {
    std::string provider, model, params_json;
    int n = 0;
    std::int64_t prompt_bytes = 0;
    std::int64_t requests = 0;
};
// What one request of a group would cost (worst and typical; unset: no price).
using QueuedPricer = std::function<Projection(const QueuedGroup&)>;
struct QueuedCost {
    double worst_usd = 0, typical_usd = 0;  // over the priced requests
    std::int64_t requests = 0;
    std::int64_t unpriced = 0;  // requests without a price (not in the sums)
};

// ---- budget holds (store_budget.cpp, schema 007) ----
// A budget holding a daemon's next call to a provider (table budget_holds).
struct BudgetHoldRow {
    std::string owner, provider;
    std::string budget;  // batch, day, run
    std::string batch;   // for a batch budget
    double limit_usd = 0, spent_usd = 0;
    std::optional<double> need_usd;  // unset: the call has no price
    double since = 0;
};
// Spend that budgets count (billed attempts): of the day from day_start, of one run (owner),
// and of each batch asked for (absent batches spent 0).
// With the batches' own budgets (schema 008): those of the batches asked for and of every
// batch with open work (pending, queued or running jobs) that has one, whose spend is in
// batch_usd too; open_batches: which batches of batch_usd have open work.
struct BudgetSpend {
    double day_usd = 0, run_usd = 0;
    std::map<std::string, double> batch_usd;
    std::map<std::string, double> batch_max_usd;
    std::set<std::string> open_batches;
};
// What a budget read sums; what is not asked for reads as 0 (the config sets no such budget).
// Without batches, a batch asked for reads its spend only when it has a budget of its own.
struct BudgetRead {
    bool day = true, run = true, batches = true;
};
// What setting a batch's own budget changed.
struct BatchBudgetChange {
    bool existed = false;          // the batch was there before
    std::optional<double> before;  // its own budget before (unset: none)
};

// What is left to do (for `run --until-idle`): pending rows, and open (queued or running)
// requests per provider. All zero and empty when the store is idle.
struct OpenWork {
    std::int64_t pending = 0;
    std::map<std::string, std::int64_t> requests_by_provider;
};

// A daemon counts as alive while its heartbeat (written every 5 s) is fresher than this: the
// daemons' own count of each other, status, wait and the calls in flight all read it so.
inline constexpr double kHeartbeatFreshS = 30;

// A daemon that runs (or ran) on the database (table daemons).
struct DaemonRow {
    std::string owner, host;
    std::int64_t pid = 0;
    double started_at = 0, heartbeat_at = 0;
    double stopped_at = 0;  // 0: not stopped
    bool multiple = false;  // started with --allow-multiple
    std::string local_pause;
};

class Store {
  public:
    // Opens (creating if needed) and migrates the database: WAL, busy_timeout, foreign keys,
    // migrations applied in order and tracked by PRAGMA user_version. Throws
    // std::runtime_error with the path on failure, or if the database is newer than this
    // program.
    explicit Store(const std::string& path);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    SQLite::Database& db();
    int schema_version();

    // Inserts every item in one transaction into batch `batch` (created if new), state queued,
    // with its requests. Items whose key is already stored (or repeated earlier in items) are
    // not inserted and are reported in duplicates. Called inside a transaction the caller
    // holds on db() (enqueue --strict: all or nothing across many calls), it writes into that
    // one (as a savepoint, undone alone if the call fails) instead of committing.
    EnqueueResult enqueue(std::string_view batch, const std::vector<EnqueueItem>& items);
    // The job holding key, if any.
    std::optional<std::int64_t> find_job_by_key(std::string_view key);

    // Pending rows (oldest first), and their planning: queued with requests, or rejected.
    // Rows with no batch go to the batch named "sql".
    std::vector<PendingJob> pending_jobs(int limit);
    void apply_plans(const std::vector<PlanDecision>& plans);
    // Rows inserted by SQL as 'queued' or 'running' without any request would never run:
    // rejects them (reason in jobs.error). Reads at most `limit` jobs a call, in id order,
    // from where the previous call stopped (a new Store starts at the first job), so that a
    // daemon checks every row once and then only new ones. Returns the rejected rows.
    std::vector<Rejection> reject_unplanned(int limit);

    // Claims up to `limit` queued requests of `provider` whose not_before <= now, highest
    // priority first then oldest, in one UPDATE ... RETURNING statement: state running,
    // lease (owner, now + lease_s), attempt_no + 1. Their jobs become running.
    // provider_cap > 0: at most that many requests of the provider run at once over every
    // daemon sharing the database (running requests of all owners count).
    std::vector<ClaimedRequest> claim(std::string_view provider, std::string_view owner, int limit,
                                      double now, double lease_s, int provider_cap = 0);
    // The same, leaving the requests of the batches named in skip_batches queued (batches held
    // by their budget).
    std::vector<ClaimedRequest> claim_except(std::string_view provider, std::string_view owner,
                                             int limit, double now, double lease_s,
                                             int provider_cap,
                                             const std::vector<std::string>& skip_batches);
    // Extends the leases of the given attempts (those the daemon still tracks) to until, where
    // owner still holds them at that attempt_no. A request of owner that is not listed keeps
    // its lease as it is, and goes back to the queue when it expires. Returns how many.
    int renew_leases(std::string_view owner, const std::vector<LeasedAttempt>& attempts,
                     double until);
    // Claims the daemon took ahead and did not start (a stop, a paused provider): back to
    // queued as if never claimed (attempt_no restored, no attempt recorded; a cancelled job's
    // request becomes cancelled), where owner still holds them at that attempt_no. Returns how
    // many.
    int unclaim(std::string_view owner, const std::vector<LeasedAttempt>& attempts, double now);
    // Running requests whose lease expired (a daemon died): back to queued; the lost attempt
    // is recorded (outcome 'error', code 'lease_expired') and counted. Returns how many.
    int requeue_expired(double now);
    // Running requests of a daemon known to be dead (same host, its process gone) go back at
    // once, recorded like requeue_expired, without waiting for their leases. Returns how many.
    int requeue_owner(std::string_view owner, double now);
    // Owners holding leases on running requests.
    std::vector<std::string> lease_owners();

    // Applies completions in one transaction (group commit). A completion whose request is
    // no longer leased by its owner at its attempt_no is stale: skipped, result false. For a
    // valid one, place_files(c) runs inside the transaction before its rows are written (the
    // output writer renames temporary files into place there). Any exception (from SQLite or
    // from place_files) rolls the whole group back and propagates: nothing is recorded, and
    // the caller still holds every completion (see DbWorker, which retries them).
    // before_commit runs last, inside the transaction (the output writer makes the renames
    // durable there); it may throw too.
    std::vector<bool> apply(std::vector<Completion>& completions,
                            const std::function<void(Completion&)>& place_files = {},
                            const std::function<void()>& before_commit = {});

    // Earliest not_before among queued requests of provider that is > now (for sleeping).
    std::optional<double> next_ready(std::string_view provider, double now);
    // Whether anything is left to do: pending jobs, queued or running requests.
    bool idle();
    OpenWork open_work();

    // ---- daemons ----
    // Registers self (owner, host, pid, started_at) in one transaction, unless another daemon
    // is running: a row not stopped for which alive(row) is true. Rows for which it is false
    // are marked stopped. Returns the running daemons that refuse self (nothing is
    // registered then): any, or, with allow_multiple, those not started with it too.
    std::vector<DaemonRow> register_daemon(const DaemonRow& self, bool allow_multiple,
                                           const std::function<bool(const DaemonRow&)>& alive);
    // A sign of life, with the daemon's local pause reason ("" when none).
    // calls: the calls in flight per provider (daemons.calls); nullptr keeps what is there.
    void heartbeat(std::string_view owner, double now, std::string_view local_pause,
                   const std::map<std::string, std::int64_t>* calls = nullptr);
    // The calls in flight per provider, summed over the daemons alive (a heartbeat within
    // stale_s): as each reported at its last heartbeat, or, for one that does not report
    // them, the requests running under its lease.
    std::map<std::string, std::int64_t> calls_in_flight(double now,
                                                        double stale_s = kHeartbeatFreshS);
    // A clean stop (or a daemon found gone).
    void daemon_stopped(std::string_view owner, double now);
    std::vector<DaemonRow> running_daemons();  // not stopped, oldest first
    std::optional<DaemonRow> daemon(std::string_view owner);

    // ---- user operations ----
    // Cancels the matching jobs that are not final: queued requests cancelled; a job with no
    // running request becomes cancelled at once, else when its running requests end.
    // Returns the number of jobs cancelled.
    int cancel(const JobFilter& filter);
    // Retries the matching failed/blocked/cancelled jobs: their unfinished requests go back
    // to queued with fresh counters, the job to queued. Returns how many jobs.
    int retry(const JobFilter& filter);

    // ---- provider state ----
    // by_daemon: a change made by the daemon (auth/quota pause, a probe that succeeded),
    // which leaves a pause by the user (paused, no probe time) as it is.
    void set_provider_paused(std::string_view provider, bool paused, std::string_view reason,
                             double probe_at, bool by_daemon = false);
    std::vector<ProviderState> provider_states();

    // ---- queries ----
    Stats stats(const std::optional<std::string>& batch, double now);
    // A batch's job counts (states, images) once none of its jobs is pending, queued or
    // running; nullopt while it has work left or does not exist. Reads only the
    // jobs_batch_state index: cheap enough to ask after every completion.
    std::optional<Stats> finished_batch(const std::string& batch);
    std::vector<JobRow> list_jobs(const JobFilter& filter);
    std::optional<JobDetail> job_detail(std::int64_t job_id);
    // Streams one record per job, in job id order.
    void export_jobs(const std::optional<std::string>& batch,
                     const std::function<void(const ExportRecord&)>& sink);
    // Streams one record per recorded image, in (job id, idx) order.
    void export_images(const std::optional<std::string>& batch,
                       const std::function<void(const ImageRecord&)>& sink);
    std::vector<std::string> batch_names();
    // Every batch (oldest first), or the one named (none if unknown). Reads the indexes only,
    // plus the queued requests for `retrying`.
    std::vector<BatchProgress> batch_progress(const std::optional<std::string>& batch);
    BatchTimes batch_times(std::string_view batch);
    // Every provider with queued or running requests, by name.
    std::vector<LaneLoad> lane_loads(double now);

    // ---- spend (store_spend.cpp) ----
    // Sum of cost_usd over the billed attempts that match (filter.batch: of that batch's jobs).
    Spend spend(const SpendFilter& filter);
    double spend_usd(const SpendFilter& filter) { return spend(filter).usd; }
    // The same per batch, provider and model (ordered by them); since, owner and provider
    // filter as in spend.
    std::vector<SpendRow> spend_by(const SpendFilter& filter);
    // The projected cost of the requests still queued (and, with running, those in flight)
    // that match filter.batch and filter.provider (since and owner do not apply), each
    // request priced by price (called once per group of alike requests).
    QueuedCost queued_cost(const SpendFilter& filter, const QueuedPricer& price,
                           bool running = false);
    double queued_worst_case_usd(const SpendFilter& filter, const QueuedPricer& price,
                                 bool running = false) {
        return queued_cost(filter, price, running).worst_usd;
    }

    // ---- budgets (store_budget.cpp) ----
    // Replaces every budget hold of owner with holds (empty: none).
    void set_budget_holds(std::string_view owner, const std::vector<BudgetHoldRow>& holds);
    // The holds of daemons not stopped, by provider.
    std::vector<BudgetHoldRow> budget_holds();
    // What the budgets of a daemon (owner) count, in one read.
    BudgetSpend budget_spend(std::string_view owner, double day_start,
                             const std::vector<std::string>& batches, BudgetRead what = {});
    // Sets (max_usd) or clears (unset) the batch's own budget (batches.max_usd, schema 008).
    // A new batch is created when create is set; else an unknown batch is left alone (nullopt).
    // Inside a transaction the caller holds on db() it writes into that one.
    std::optional<BatchBudgetChange> set_batch_budget(std::string_view batch,
                                                      std::optional<double> max_usd,
                                                      bool create = true);
    // The batch's own budget (unset: none, or no such batch).
    std::optional<double> batch_budget(std::string_view batch);
    // Lines of vendor batch id, still preparing, that a budget does not admit: back to queued
    // as if never claimed (no attempt used), unmapped, the row's request count lowered, in one
    // transaction. A row left without a line is deleted (nothing was sent for it). Returns
    // the lines given back.
    int return_vendor_batch_lines(std::int64_t id, const std::vector<LeasedAttempt>& lines,
                                  double now);

    // ---- vendor batches (store_batches.cpp) ----
    // This database's instance id (database_instance.id).
    std::string database_instance();
    // Records a new vendor batch of provider (state preparing, chunk "<instance>-<id>") and
    // claims into it, in the same transaction, up to limit queued requests of provider whose
    // not_before <= now (claim order): running, leased by vendor_batch_owner(id) until
    // now + lease_s, attempt_no + 1, mapped in vendor_batch_requests. nullopt (nothing
    // recorded) when no request is ready. Requests of the batches named in skip_batches (held
    // by their budget) stay queued.
    struct OpenedVendorBatch {
        VendorBatchRow batch;
        std::vector<ClaimedRequest> requests;
    };
    std::optional<OpenedVendorBatch> open_vendor_batch(
        std::string_view provider, int limit, double now, double lease_s,
        const std::vector<std::string>& skip_batches = {});
    // Takes requests out of a vendor batch that is still preparing (over its byte limit): back
    // to queued as if never claimed, unmapped, the row's request count lowered.
    void drop_from_vendor_batch(std::int64_t id, const std::vector<LeasedAttempt>& attempts,
                                double now);
    // Writes state, vendor_id, vendor_status, counts, bytes, file ids and message of row
    // (updated_at now; finished_at when done or abandoned).
    void update_vendor_batch(const VendorBatchRow& row);
    std::optional<VendorBatchRow> vendor_batch(std::int64_t id);
    // Vendor batches not done nor abandoned, of provider (every provider when empty), oldest
    // first.
    std::vector<VendorBatchRow> open_vendor_batches(std::string_view provider = {});
    // The lines of vendor batch id whose request still runs under the batch at the mapped
    // attempt (those not recorded yet), request id > after, in request id order, at most
    // limit; with the job's prompt, model, params, key and batch as a claim has them.
    std::vector<ClaimedRequest> vendor_batch_lines(std::int64_t id, std::int64_t after, int limit);
    // The same for the given request ids only (the lines of one group of results).
    std::vector<ClaimedRequest> vendor_batch_lines(std::int64_t id,
                                                   const std::vector<std::int64_t>& request_ids);
    // True when vendor batch id has lines not recorded yet and every one of them belongs to a
    // cancelled job.
    bool vendor_batch_cancelled(std::int64_t id);
    // The vendor batches of a job's attempts.
    std::vector<AttemptVendorBatch> job_vendor_batches(std::int64_t job_id);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imgbatch::jobs
