#include "daemon/engine/lane.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

namespace imgbatch::daemon {
namespace {

std::optional<double> number(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    double v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() ||
        !std::isfinite(v) || v < 0)
        return std::nullopt;
    return v;
}

}  // namespace

std::optional<double> parse_duration_s(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    if (auto plain = number(text)) return plain;
    double total = 0;
    while (!text.empty()) {
        std::size_t i = 0;
        while (i < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
            ++i;
        auto value = number(text.substr(0, i));
        if (i == 0 || !value) return std::nullopt;
        text.remove_prefix(i);
        std::size_t u = 0;
        while (u < text.size() && !std::isdigit(static_cast<unsigned char>(text[u]))) ++u;
        std::string_view unit = text.substr(0, u);
        text.remove_prefix(u);
        double scale = 0;
        if (unit == "h")
            scale = 3600;
        else if (unit == "m")
            scale = 60;
        else if (unit == "s")
            scale = 1;
        else if (unit == "ms")
            scale = 1e-3;
        else if (unit == "us" || unit == "\xc2\xb5s")
            scale = 1e-6;
        else if (unit == "ns")
            scale = 1e-9;
        else
            return std::nullopt;
        total += *value * scale;
    }
    if (!std::isfinite(total)) return std::nullopt;
    return total;
}

RateLimitHint rate_limit_hint(const Headers& headers) {
    RateLimitHint h;
    h.limit = number(find_header(headers, "x-ratelimit-limit-requests"));
    if (h.limit && *h.limit <= 0) h.limit.reset();
    h.remaining = number(find_header(headers, "x-ratelimit-remaining-requests"));
    auto reset = find_header(headers, "x-ratelimit-reset-requests");
    if (!reset.empty()) h.reset_s = parse_duration_s(reset);
    return h;
}

Lane::Lane(std::string name, LaneLimits limits) : name_(std::move(name)), limits_(limits) {}

double Lane::request_interval() const {
    if (limits_.requests_per_minute > 0) return 60.0 / (limits_.requests_per_minute * factor_);
    if (learned_rpm_ > 0) return 60.0 / learned_rpm_;
    return 0;
}

double Lane::image_interval() const {
    if (limits_.images_per_minute <= 0) return 0;
    return 60.0 / (limits_.images_per_minute * factor_);
}

bool Lane::rate_limited() const {
    return limits_.requests_per_minute > 0 || limits_.images_per_minute > 0 || learned_rpm_ > 0;
}

int Lane::claimable(double now, int max_batch) const {
    int limit = limits_.max_concurrency;
    if (cap_ > 0) limit = std::min(limit, cap_);
    int free = limit - in_flight_;
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
    int limit = limits_.max_concurrency;
    if (cap_ > 0) limit = std::min(limit, cap_);
    if (limit - in_flight_ <= 0) return 0;
    double at = std::max(now, hold_until_);
    if (paused_) {
        if (probe_at_ <= 0 || probing_) return 0;
        at = std::max(at, probe_at_);
    }
    if (rate_limited()) at = std::max({at, next_request_at_, next_image_at_});
    return at;
}

void Lane::forget_before(double t) {
    while (!starts_.empty() && starts_.front() < t) starts_.pop_front();
    while (!refused_.empty() && refused_.front() < t) refused_.pop_front();
}

double Lane::start_rate_rpm(double now) const {
    if (starts_.empty()) return 0;
    double span = std::max(1.0, now - starts_.front());
    return 60.0 * static_cast<double>(starts_.size()) / span;
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
    if (limits_.requests_per_minute <= 0) {
        starts_.push_back(now);
        forget_before(now - kLearnWindowS);
    }
}

void Lane::on_finish() {
    if (in_flight_ > 0) --in_flight_;
}

void Lane::on_success(double now) {
    factor_ = std::min(1.0, factor_ * 1.05);
    on_answered();
    if (cap_ > 0) {
        cap_ *= 2;
        if (cap_ >= limits_.max_concurrency) cap_ = 0;
    }
    // Additive increase, only while the lane runs at about its learned rate (a lane held
    // back by its concurrency or by lack of work learns nothing from its successes).
    if (learned_rpm_ > 0 && limits_.requests_per_minute <= 0 &&
        start_rate_rpm(now) >= 0.5 * learned_rpm_) {
        learned_rpm_ += kLearnIncreaseRpm;
        if (hinted_rpm_ > 0) learned_rpm_ = std::min(learned_rpm_, hinted_rpm_);
    }
}

void Lane::hold(double until) {
    hold_until_ = std::max(hold_until_, until);
    // Spacing restarts after the hold.
    next_request_at_ = std::max(next_request_at_, until);
    next_image_at_ = std::max(next_image_at_, until);
}

void Lane::on_rate_limited(double now, std::optional<double> hold_s, double started_at) {
    on_answered();
    hold(now + std::max(0.0, hold_s.value_or(kDefaultHoldS)));
    if (limits_.requests_per_minute > 0 || limits_.images_per_minute > 0) {
        factor_ = std::max(0.1, factor_ * 0.75);
        if (limits_.requests_per_minute > 0) return;
    }
    // Learn. What the provider accepted over the window (starts - refusals) tells how far a
    // burst overshot; after that the rate decreases multiplicatively, once per round: a
    // refusal of a request started before the last decrease was sent at the old rate.
    forget_before(now - kLearnWindowS);
    if (started_at >= now - kLearnWindowS) refused_.push_back(started_at);
    // A window with everything refused (the provider's own window used up by an earlier
    // burst or by other clients) tells nothing of the rate it takes: count one request
    // accepted, so that the lane goes on at one request per the window's span and learns
    // upwards from its successes, instead of falling to kMinLearnedRpm.
    double accepted =
        std::max(1.0, static_cast<double>(starts_.size()) - static_cast<double>(refused_.size()));
    double span = starts_.empty() ? 1.0 : std::max(1.0, now - starts_.front());
    double estimate = kLearnDecrease * 60.0 * accepted / span;
    double next = learned_rpm_;
    if (learned_rpm_ <= 0) {
        next = estimate;
        estimating_ = true;
        last_decrease_at_ = now;
    } else if (started_at < last_decrease_at_) {
        // The same burst still coming back: only refine an estimate.
        if (estimating_) next = std::min(learned_rpm_, estimate);
    } else {
        // Sent at the learned rate and refused: decrease (at once to the estimate when the
        // provider now takes less than half of it).
        estimating_ = false;
        next = estimate < 0.5 * learned_rpm_ ? estimate : kLearnDecrease * learned_rpm_;
        last_decrease_at_ = now;
    }
    if (hinted_rpm_ > 0) next = std::min(next, hinted_rpm_);
    learned_rpm_ = std::max(kMinLearnedRpm, next);
}

void Lane::on_hint(double now, const RateLimitHint& hint) {
    if (hint.limit) {
        // The limit is where the lane starts and a ceiling; 429s may still lower the rate
        // (other clients may share the provider's limit).
        hinted_rpm_ = std::max(kMinLearnedRpm, *hint.limit);
        if (limits_.requests_per_minute <= 0 && (learned_rpm_ <= 0 || learned_rpm_ > hinted_rpm_))
            learned_rpm_ = hinted_rpm_;
    }
    if (hint.remaining && *hint.remaining < 1) {
        // Nothing left: wait for the next request to come back (OpenAI's reset is the time
        // until the whole window is back, so one request's share of it comes sooner).
        double wait = std::min(hint.reset_s.value_or(kDefaultHoldS), kMaxHintHoldS);
        if (hinted_rpm_ > 0) wait = std::min(wait, 60.0 / hinted_rpm_);
        hold(now + wait);
    }
}

bool Lane::on_failure(double now, std::int64_t request_id, double step_s, double max_s) {
    if (run_ == 0) {
        run_first_request_ = request_id;
        run_shared_ = false;
    } else if (request_id != run_first_request_) {
        run_shared_ = true;
    }
    ++run_;
    bool blamed = run_shared_ || now < trouble_until_;
    if (run_shared_) trouble_until_ = now + kTroubleWindowS;
    // Tripped (or failing again while the concurrency ramps back up after a trip): one
    // request at a time (half-open) until a success closes the breaker.
    if (run_ >= kBreakerTrip || cap_ > 0) cap_ = 1;
    double open = step_s * std::ldexp(1.0, std::min(run_ - 1, 30));
    hold(now + std::min(open, max_s));
    return blamed;
}

void Lane::on_answered() {
    run_ = 0;
    run_shared_ = false;
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
