#pragma once
// A Prometheus histogram: fixed upper bounds, counts per bucket, sum and count. Not
// thread-safe: its owner guards it.
#include <cstdint>
#include <string>
#include <vector>

namespace imgbatch::daemon {

class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds)
        : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

    void observe(double v) {
        std::size_t i = 0;
        while (i < bounds_.size() && v > bounds_[i]) ++i;
        ++counts_[i];
        sum_ += v;
        ++count_;
    }

    // The sample lines of name{labels,le="..."} (cumulative), name_sum and name_count;
    // labels is "" or `a="x",b="y"`.
    std::string render(const std::string& name, const std::string& labels) const;

    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }

  private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;  // the last one: above every bound (+Inf)
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

}  // namespace imgbatch::daemon
