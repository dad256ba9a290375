#include "jobs/budget.hpp"

#include <cmath>
#include <ctime>
#include <set>

namespace imgbatch::jobs {

std::string_view to_string(BudgetKind k) {
    switch (k) {
        case BudgetKind::batch:
            return "batch";
        case BudgetKind::day:
            return "day";
        case BudgetKind::run:
            return "run";
    }
    return "day";
}

std::optional<double> BudgetConfig::limit(BudgetKind k) const {
    switch (k) {
        case BudgetKind::batch:
            return max_usd_per_batch;
        case BudgetKind::day:
            return max_usd_per_day;
        case BudgetKind::run:
            return max_usd_per_run;
    }
    return std::nullopt;
}

double budget_day_start(const BudgetConfig& c, double now) {
    const std::time_t t = static_cast<std::time_t>(std::floor(now));
    std::tm tm{};
    if (c.day_utc)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    const int minute_of_day = tm.tm_hour * 60 + tm.tm_min;
    if (minute_of_day < c.day_starts_min) --tm.tm_mday;  // the day began yesterday
    tm.tm_hour = c.day_starts_min / 60;
    tm.tm_min = c.day_starts_min % 60;
    tm.tm_sec = 0;
    if (c.day_utc) return static_cast<double>(timegm(&tm));
    tm.tm_isdst = -1;  // the offset of that day (daylight saving time)
    return static_cast<double>(std::mktime(&tm));
}

std::string BudgetHold::key() const {
    return kind == BudgetKind::batch ? "batch:" + batch : std::string(to_string(kind));
}

std::optional<double> BudgetLedger::limit(BudgetKind k, const std::string& batch) const {
    if (k == BudgetKind::batch)
        if (auto it = batch_max_usd_.find(batch); it != batch_max_usd_.end()) return it->second;
    return config_.limit(k);
}

void BudgetLedger::snapshot(double day_start, double day_usd, double run_usd,
                            const std::map<std::string, double>& batch_usd,
                            const std::map<std::string, double>& batch_max_usd) {
    snapshotted_ = true;
    batch_max_usd_ = batch_max_usd;
    day_start_ = day_start;
    day_usd_ = day_usd;
    run_usd_ = run_usd;
    batch_usd_ = batch_usd;
    since_snapshot_.clear();
}

void BudgetLedger::reserve(std::int64_t request_id, const std::string& batch, double worst_usd) {
    release(request_id);  // reserved again (a vendor batch's lines after a restart): once
    reserved_[request_id] = Reservation{batch, worst_usd};
    reserved_usd_ += worst_usd;
    auto& b = reserved_by_batch_[batch];
    ++b.count;
    b.usd += worst_usd;
}

void BudgetLedger::recorded(std::int64_t request_id, std::optional<double> cost,
                            double finished_at) {
    auto it = reserved_.find(request_id);
    if (it == reserved_.end()) return;
    // An attempt of unknown cost keeps its worst case until the database says more.
    since_snapshot_.push_back(
        Recorded{it->second.batch, cost.value_or(it->second.usd), finished_at});
    release(request_id);
}

std::optional<double> BudgetLedger::release(std::int64_t request_id) {
    auto it = reserved_.find(request_id);
    if (it == reserved_.end()) return std::nullopt;
    const double usd = it->second.usd;
    if (auto b = reserved_by_batch_.find(it->second.batch); b != reserved_by_batch_.end()) {
        if (--b->second.count <= 0)
            reserved_by_batch_.erase(b);  // no drift left behind by the subtractions
        else
            b->second.usd -= usd;
    }
    reserved_.erase(it);
    reserved_usd_ = reserved_.empty() ? 0 : reserved_usd_ - usd;
    return usd;
}

std::vector<bool> BudgetLedger::admit(const std::vector<BudgetLine>& lines, double now,
                                      std::vector<BudgetHold>& holds) {
    std::vector<bool> out(lines.size(), false);
    bool all_held = false;
    std::set<std::string> held_batches;
    for (std::size_t i = 0; i < lines.size() && !all_held; ++i) {
        const auto& line = lines[i];
        if (held_batches.count(line.batch)) continue;
        auto h = check(line.batch, line.worst_usd, now);
        if (!h) {
            reserve(line.request_id, line.batch, line.worst_usd.value_or(0));
            out[i] = true;
            continue;
        }
        if (h->kind == BudgetKind::batch)
            held_batches.insert(line.batch);
        else
            all_held = true;
        holds.push_back(std::move(*h));
    }
    return out;
}

void BudgetLedger::line_recorded(const std::string& batch, double usd, double finished_at) {
    since_snapshot_.push_back(Recorded{batch, usd, finished_at, false});
    run_lines_usd_ += usd;
}

double BudgetLedger::spent(BudgetKind k, const std::string& batch, double now) const {
    double usd = 0;
    const double day = budget_day_start(config_, now);
    switch (k) {
        case BudgetKind::batch:
            if (auto it = batch_usd_.find(batch); it != batch_usd_.end()) usd = it->second;
            break;
        case BudgetKind::day:
            // A snapshot of an earlier day does not count in a new day.
            if (day_start_ == day) usd = day_usd_;
            break;
        case BudgetKind::run:
            usd = run_usd_ + run_lines_usd_;
            break;
    }
    for (const auto& r : since_snapshot_) {
        if (k == BudgetKind::batch && r.batch != batch) continue;
        if (k == BudgetKind::day && r.finished_at < day) continue;
        if (k == BudgetKind::run && !r.in_run) continue;  // in run_lines_usd_
        usd += r.usd;
    }
    return usd;
}

double BudgetLedger::reserved(BudgetKind k, const std::string& batch) const {
    if (k != BudgetKind::batch) return reserved_usd_;
    auto it = reserved_by_batch_.find(batch);
    return it == reserved_by_batch_.end() ? 0 : it->second.usd;
}

std::optional<BudgetHold> BudgetLedger::check_one(BudgetKind k, const std::string& batch,
                                                  std::optional<double> worst, double now) const {
    const auto limit = this->limit(k, batch);
    if (!limit) return std::nullopt;
    BudgetHold h;
    h.kind = k;
    if (k == BudgetKind::batch) h.batch = batch;
    h.limit_usd = *limit;
    h.spent_usd = spent(k, batch, now);
    h.reserved_usd = reserved(k, batch);
    h.need_usd = worst.value_or(0);
    h.unpriced = !worst;
    // A tiny tolerance: sums of floating-point prices that land on the limit fit.
    if (h.unpriced || h.spent_usd + h.reserved_usd + h.need_usd > *limit + 1e-9) return h;
    return std::nullopt;
}

std::optional<BudgetHold> BudgetLedger::check(const std::string& batch, std::optional<double> worst,
                                              double now) const {
    for (const BudgetKind k : kBudgetKinds)
        if (auto h = check_one(k, batch, worst, now)) return h;
    return std::nullopt;
}

}  // namespace imgbatch::jobs
