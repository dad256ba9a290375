#include "daemon/lane.hpp"

#include <algorithm>
#include <utility>

namespace imgbatch::daemon {

Lane::Lane(std::string name, LaneLimits limits) : name_(std::move(name)), limits_(limits) {}

double Lane::request_interval() const {
    if (limits_.requests_per_minute <= 0) return 0;
    return 60.0 / (limits_.requests_per_minute * factor_);
}

double Lane::image_interval() const {
    if (limits_.images_per_minute <= 0) return 0;
    return 60.0 / (limits_.images_per_minute * factor_);
}

bool Lane::rate_limited() const {
    return limits_.requests_per_minute > 0 || limits_.images_per_minute > 0;
}

int Lane::claimable(double now, int max_batch) const {
    int free = limits_.max_concurrency - in_flight_;
    if (free <= 0 || now < hold_until_) return 0;
    if (paused_) {
        // A paused lane lets exactly one probe through once probe_at has passed.
        if (probe_at_ <= 0 || now < probe_at_ || probing_) return 0;
        free = 1;
    }
    if (rate_limited()) {
        if (now < next_request_at_ || now < next_image_at_) return 0;
        return 1;  // the next start is spaced by this one: never a burst
    }
    return std::min(free, max_batch);
}

double Lane::next_start_at(double now) const {
    if (limits_.max_concurrency - in_flight_ <= 0) return 0;
    double at = std::max(now, hold_until_);
    if (paused_) {
        if (probe_at_ <= 0 || probing_) return 0;
        at = std::max(at, probe_at_);
    }
    if (rate_limited()) at = std::max({at, next_request_at_, next_image_at_});
    return at;
}

void Lane::on_start(double now, int images) {
    ++in_flight_;
    if (paused_) probing_ = true;
    // Spacing counts from the later of the planned slot and now: a late start does not earn
    // a catch-up burst.
    if (double ri = request_interval(); ri > 0)
        next_request_at_ = std::max(next_request_at_, now) + ri;
    if (double ii = image_interval(); ii > 0)
        next_image_at_ = std::max(next_image_at_, now) + ii * std::max(images, 1);
}

void Lane::on_finish() {
    if (in_flight_ > 0) --in_flight_;
}

void Lane::on_success() {
    factor_ = std::min(1.0, factor_ * 1.05);
}

void Lane::on_rate_limited(double until) {
    hold_until_ = std::max(hold_until_, until);
    factor_ = std::max(0.1, factor_ * 0.75);
    // Spacing restarts after the hold.
    next_request_at_ = std::max(next_request_at_, until);
    next_image_at_ = std::max(next_image_at_, until);
}

void Lane::hold_until(double until) {
    hold_until_ = std::max(hold_until_, until);
}

void Lane::pause(std::string reason, double probe_at) {
    paused_ = true;
    probing_ = false;
    pause_reason_ = std::move(reason);
    probe_at_ = probe_at;
}

void Lane::unpause() {
    paused_ = false;
    probing_ = false;
    pause_reason_.clear();
    probe_at_ = 0;
}

void Lane::resolve_probe(bool ok) {
    probing_ = false;
    if (ok) unpause();
}

}  // namespace imgbatch::daemon
