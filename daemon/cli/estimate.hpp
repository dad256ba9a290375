#pragma once
// `enqueue --dry-run` / `--estimate`: the projected cost of the jobs a file would enqueue, by
// provider and model, with the assumptions made (prices and their date, sizes and qualities
// left to the vendor, tokens per image and per prompt byte).
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "daemon/config.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

// The batch budget that applies to the batch the file goes into, and what the batch already
// spent and has queued, to say whether the estimate fits it.
struct BatchBudgetFit {
    double limit_usd = 0;
    std::string source;           // "--budget", "the batch's own", "budget.max_usd_per_batch"
    double spent_usd = 0;         // billed by the batch so far
    double queued_worst_usd = 0;  // its requests queued or running, at their worst case
    std::int64_t queued_unpriced = 0;
};

class Estimate {
  public:
    explicit Estimate(const Config& config) : config_(config) {}

    // The batch budget to check the estimate against (none: no line about it).
    void set_budget(const BatchBudgetFit& fit) { budget_ = fit; }

    // One job that would be enqueued (its provider resolved, its requests planned).
    void add(const jobs::EnqueueItem& item);

    // queued: what the database already has queued or running (--estimate), if read.
    boost::json::object json(const std::optional<jobs::QueuedCost>& queued) const;
    std::string text(const std::optional<jobs::QueuedCost>& queued) const;

  private:
    struct Row {
        std::int64_t jobs = 0, images = 0, requests = 0, unpriced = 0;
        double worst = 0, typical = 0;
        std::string basis;
        std::set<std::string> assumptions;
    };
    std::string price_source(const ProviderConfig* p, const std::string& model) const;
    // Whether worst (the file's, with unpriced requests) fits the batch budget; its text.
    bool fits(double worst, std::int64_t unpriced) const;
    std::string budget_text(double worst, std::int64_t unpriced) const;
    boost::json::object budget_json(double worst, std::int64_t unpriced) const;

    const Config& config_;
    mutable std::mutex m_;
    std::map<std::pair<std::string, std::string>, Row> rows_;  // (provider, model)
    std::optional<BatchBudgetFit> budget_;
};

}  // namespace imgbatch::daemon::cli
