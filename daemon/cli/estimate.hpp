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

class Estimate {
  public:
    explicit Estimate(const Config& config) : config_(config) {}

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

    const Config& config_;
    mutable std::mutex m_;
    std::map<std::pair<std::string, std::string>, Row> rows_;  // (provider, model)
};

}  // namespace imgbatch::daemon::cli
