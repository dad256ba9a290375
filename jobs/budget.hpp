#pragma once
// Budgets (README "Budgets"): the config's max_usd per batch, per day and per run, and the
// decision taken before each call: spend so far (billed attempts, read from the database)
// plus the worst case of the calls in flight plus the worst case of this call must stay
// within every budget. Pure logic: every time is passed in (Unix seconds).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgbatch::jobs {

enum class BudgetKind { batch, day, run };
std::string_view to_string(BudgetKind k);
inline constexpr BudgetKind kBudgetKinds[] = {BudgetKind::batch, BudgetKind::day, BudgetKind::run};

// The config's "budget" object.
struct BudgetConfig {
    std::optional<double> max_usd_per_batch;  // every batch, each on its own
    std::optional<double> max_usd_per_day;    // all batches, from day_starts to day_starts
    std::optional<double> max_usd_per_run;    // this daemon process (one `imgbatch run`)
    int day_starts_min = 0;                   // minutes after midnight ("HH:MM")
    bool day_utc = true;                      // the day in UTC, else in the local time zone

    std::optional<double> limit(BudgetKind k) const;
    bool any() const { return max_usd_per_batch || max_usd_per_day || max_usd_per_run; }
};

// The start of the budget day that contains now (Unix seconds).
double budget_day_start(const BudgetConfig& c, double now);

// Why a call may not start.
struct BudgetHold {
    BudgetKind kind = BudgetKind::day;
    std::string batch;        // the batch, for a batch budget ("" otherwise)
    double limit_usd = 0;     // the budget
    double spent_usd = 0;     // billed so far (database + recorded since)
    double reserved_usd = 0;  // worst case of the calls in flight
    double need_usd = 0;      // worst case of the call held (0 when unpriced)
    bool unpriced = false;    // the call has no price: no worst case can be bounded
    // "day" or "batch:NAME": one hold per key.
    std::string key() const;
};

// A line of a vendor batch about to be submitted (README "Budgets", vendor batches).
struct BudgetLine {
    std::int64_t request_id = 0;
    std::string batch;
    std::optional<double> worst_usd;  // worst case at the batch price; unset: no price
};

// Spend, reservations and the decision. The daemon feeds it:
//  - snapshot(): spend read from the database (billed attempts of the day, of this run, of
//    the batches asked for), which includes every attempt recorded before it was read;
//  - reserve() when a call starts (its worst case), recorded() when its attempt is
//    committed (the reservation becomes the attempt's real cost until the next snapshot),
//    release() when it ends unrecorded.
class BudgetLedger {
  public:
    void configure(const BudgetConfig& c) { config_ = c; }
    const BudgetConfig& config() const { return config_; }
    // Any budget: of the config, or a batch's own (read at the last snapshot).
    bool any() const { return config_.any() || !batch_max_usd_.empty(); }
    // The budget k that applies to batch: for a batch budget the batch's own (batches.max_usd)
    // when it has one, else the config's max_usd_per_batch.
    std::optional<double> limit(BudgetKind k, const std::string& batch) const;
    // The batches' own budgets of the last snapshot.
    const std::map<std::string, double>& batch_budgets() const { return batch_max_usd_; }

    // Database spend at one moment. day_start: the day the day_usd is for. batch_max_usd: the
    // batches' own budgets (a batch absent has none).
    void snapshot(double day_start, double day_usd, double run_usd,
                  const std::map<std::string, double>& batch_usd,
                  const std::map<std::string, double>& batch_max_usd = {});
    bool has_snapshot() const { return snapshotted_; }
    // Whether the batch's spend was part of the last snapshot.
    bool knows_batch(const std::string& batch) const { return batch_usd_.count(batch) > 0; }

    void reserve(std::int64_t request_id, const std::string& batch, double worst_usd);
    // cost: what the attempt cost (unset: unknown, its worst case stays counted until the next
    // snapshot); finished_at for the day it counts in.
    void recorded(std::int64_t request_id, std::optional<double> cost, double finished_at);
    // Returns the reservation released (none: there was none).
    std::optional<double> release(std::int64_t request_id);

    // Vendor batch lines, in the order of their vendor batch: each one that fits every budget
    // with the reservations made so far (lines admitted before it included) is admitted and
    // its worst case reserved under its request id. Once a budget held a line, no later line
    // it covers is admitted (a day or run budget: no later line at all; a batch budget: none
    // of that batch), as a held direct call holds the calls behind it. Returns, per line,
    // whether it was admitted; holds gets one hold per budget that held a line (at the first
    // line it held).
    std::vector<bool> admit(const std::vector<BudgetLine>& lines, double now,
                            std::vector<BudgetHold>& holds);
    // A vendor batch line this daemon recorded, at usd (its reservation was released by the
    // caller): counted for the day and its batch until the next snapshot reads it from the
    // database, and for the run as long as the ledger lives (the database's run spend counts
    // the daemon's own attempts; a line's attempt belongs to its vendor batch).
    void line_recorded(const std::string& batch, double usd, double finished_at);

    // Spend so far and reserved in-flight worst case that count against a budget.
    double spent(BudgetKind k, const std::string& batch, double now) const;
    double reserved(BudgetKind k, const std::string& batch) const;

    // The first budget (batch, day, run) that a call of batch with worst case `worst` (unset:
    // unpriced) would cross at now; none when it fits every budget (or none is set).
    std::optional<BudgetHold> check(const std::string& batch, std::optional<double> worst,
                                    double now) const;
    // The same for one budget only (none when that budget is not set or the call fits).
    std::optional<BudgetHold> check_one(BudgetKind k, const std::string& batch,
                                        std::optional<double> worst, double now) const;

  private:
    struct Reservation {
        std::string batch;
        double usd = 0;
    };
    struct Recorded {
        std::string batch;
        double usd = 0;
        double finished_at = 0;
        bool in_run = true;  // the next snapshot's run spend includes it
    };
    struct BatchReserved {
        std::int64_t count = 0;
        double usd = 0;
    };
    BudgetConfig config_;
    bool snapshotted_ = false;
    double day_start_ = 0;
    double day_usd_ = 0, run_usd_ = 0;
    std::map<std::string, double> batch_usd_;
    std::map<std::string, double> batch_max_usd_;
    std::map<std::int64_t, Reservation> reserved_;
    // Sums of reserved_ (a check costs no walk over 50,000 vendor batch lines).
    double reserved_usd_ = 0;
    std::map<std::string, BatchReserved> reserved_by_batch_;
    std::vector<Recorded> since_snapshot_;  // recorded after the snapshot was read
    double run_lines_usd_ = 0;              // vendor batch lines recorded by this daemon
};

}  // namespace imgbatch::jobs
