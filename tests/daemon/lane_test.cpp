#include "daemon/engine/lane.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

using imgbatch::daemon::Headers;
using imgbatch::daemon::Lane;
using imgbatch::daemon::LaneLimits;
using imgbatch::daemon::parse_duration_s;
using imgbatch::daemon::rate_limit_hint;
using imgbatch::daemon::RateLimitHint;

namespace {

// Starts requests as early as the lane allows, stepping the clock by 1 ms; returns the
// start times.
std::vector<double> run_lane(Lane& lane, int requests, int images_each, double until) {
    std::vector<double> starts;
    for (double now = 0; now < until && static_cast<int>(starts.size()) < requests; now += 0.001) {
        while (lane.claimable(now) > 0 && static_cast<int>(starts.size()) < requests) {
            lane.on_start(now, images_each);
            starts.push_back(now);
            lane.on_finish();  // instant requests: only the rate limits the starts
        }
    }
    return starts;
}

}  // namespace

TEST_CASE("concurrency: never more than max_concurrency in flight") {
    Lane lane("p", LaneLimits{3, 0, 0});
    CHECK(lane.claimable(0) == 3);
    lane.on_start(0, 1);
    lane.on_start(0, 1);
    CHECK(lane.claimable(0) == 1);
    lane.on_start(0, 1);
    CHECK(lane.claimable(0) == 0);
    CHECK(lane.next_start_at(0) == 0);  // only a finish opens a slot
    lane.on_finish();
    CHECK(lane.claimable(0) == 1);
    CHECK(lane.claimable(0, 64) == 1);
    Lane wide("w", LaneLimits{500, 0, 0});
    CHECK(wide.claimable(0, 64) == 64);
}

TEST_CASE("requests_per_minute: starts spaced by 60/rpm, no burst") {
    Lane lane("p", LaneLimits{100, 600, 0});  // one every 0.1 s
    auto starts = run_lane(lane, 20, 1, 10);
    REQUIRE(starts.size() == 20);
    CHECK(starts[0] == doctest::Approx(0));
    for (std::size_t i = 1; i < starts.size(); ++i)
        CHECK(starts[i] - starts[i - 1] >= doctest::Approx(0.1).epsilon(0.001));
    // Never two at once, even after idling: a quiet period earns no burst.
    double later = 100;
    CHECK(lane.claimable(later) == 1);
    lane.on_start(later, 1);
    CHECK(lane.claimable(later) == 0);
    CHECK(lane.next_start_at(later) == doctest::Approx(later + 0.1));
}

TEST_CASE("images_per_minute: a request of k images uses k image tokens") {
    Lane lane("p", LaneLimits{100, 0, 120});  // 2 images per second
    auto starts = run_lane(lane, 4, 4, 20);
    REQUIRE(starts.size() == 4);
    for (std::size_t i = 1; i < starts.size(); ++i)
        CHECK(starts[i] - starts[i - 1] >= doctest::Approx(2.0).epsilon(0.001));
    // The average rate is the configured one (4 images per 2 s).
    CHECK(starts[3] - starts[0] == doctest::Approx(6.0).epsilon(0.01));
}

TEST_CASE("429: the lane is held and the rate factor drops, then recovers") {
    Lane lane("p", LaneLimits{10, 60, 0});
    lane.on_start(0, 1);
    lane.on_finish();
    lane.on_rate_limited(0.0, 5.0, 0.0);
    CHECK(lane.rate_factor() == doctest::Approx(0.75));
    CHECK(lane.claimable(4.9) == 0);
    CHECK(lane.next_start_at(1.0) == doctest::Approx(5.0));
    CHECK(lane.claimable(5.0) == 1);
    lane.on_start(5.0, 1);
    // Spacing is now 60 / (60 * 0.75) = 1.333 s.
    CHECK(lane.next_start_at(5.0) == doctest::Approx(5.0 + 60.0 / 45.0));
    for (int i = 0; i < 100; ++i) lane.on_rate_limited(5.0, 0.0, 5.0);
    CHECK(lane.rate_factor() == doctest::Approx(0.1));
    for (int i = 0; i < 100; ++i) lane.on_success(5.0);
    CHECK(lane.rate_factor() == doctest::Approx(1.0));
    CHECK(lane.learned_rpm() == 0);  // a configured rate is never replaced by a learned one
}

TEST_CASE("pause with probe: one request after probe_at, success unpauses") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.pause("auth: bad key", 10.0);
    CHECK(lane.paused());
    CHECK(lane.claimable(9.0) == 0);
    CHECK(lane.next_start_at(9.0) == doctest::Approx(10.0));
    CHECK(lane.claimable(10.0) == 1);
    lane.on_start(10.0, 1);
    CHECK(lane.probing());
    CHECK(lane.claimable(10.0) == 0);  // one probe at a time
    lane.on_finish();
    lane.resolve_probe(true);
    CHECK_FALSE(lane.paused());
    CHECK(lane.claimable(10.0) == 4);
}

TEST_CASE("pause with probe: failure pauses again") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.pause("quota: exceeded", 10.0);
    lane.on_start(10.0, 1);
    lane.on_finish();
    lane.pause("quota: exceeded", 20.0);
    CHECK(lane.paused());
    CHECK_FALSE(lane.probing());
    CHECK(lane.claimable(15.0) == 0);
    CHECK(lane.claimable(20.0) == 1);
}

TEST_CASE("user pause: no probe until resumed") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.pause("user", 0);
    CHECK(lane.claimable(1e9) == 0);
    CHECK(lane.next_start_at(5) == 0);
    lane.unpause();
    CHECK(lane.claimable(5) == 4);
}

TEST_CASE("hold_until stops claiming for a while (local errors)") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.hold_until(7.0);
    CHECK(lane.claimable(6.0) == 0);
    CHECK(lane.claimable(7.0) == 4);
    CHECK(lane.rate_factor() == doctest::Approx(1.0));
}

TEST_CASE("set_limits applies new limits at once") {
    Lane lane("p", LaneLimits{1, 0, 0});
    lane.on_start(0, 1);
    CHECK(lane.claimable(0) == 0);
    lane.set_limits(LaneLimits{3, 0, 0});
    CHECK(lane.claimable(0) == 2);
}

TEST_CASE("429: the hold lasts Retry-After, or a short default, not a request's backoff") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.on_rate_limited(10.0, 0.25, 10.0);
    CHECK(lane.held_until() == doctest::Approx(10.25));
    CHECK(lane.next_start_at(10.0) >= 10.25);
    Lane quiet("q", LaneLimits{4, 0, 0});
    quiet.on_rate_limited(10.0, std::nullopt, 10.0);
    CHECK(quiet.held_until() == doctest::Approx(10.0 + Lane::kDefaultHoldS));
    CHECK(Lane::kDefaultHoldS <= 2);
}

TEST_CASE("429 without a configured rate: the lane learns a rate from what was accepted") {
    Lane lane("p", LaneLimits{16, 0, 0});
    CHECK(lane.learned_rpm() == 0);
    CHECK(lane.claimable(0) == 16);  // nothing learned yet: a burst
    for (int i = 0; i < 16; ++i) lane.on_start(0, 1);
    // 4 of the 16 were accepted; the 12 refusals come back at once.
    for (int i = 0; i < 12; ++i) {
        lane.on_finish();
        lane.on_rate_limited(0.01, 0.25, 0.0);
    }
    // 4 accepted over (at least) one second: 240/min, times the decrease.
    CHECK(lane.learned_rpm() == doctest::Approx(240 * Lane::kLearnDecrease));
    // Starts are spaced at the learned rate after the hold, one at a time.
    CHECK(lane.claimable(0.2) == 0);
    double at = lane.next_start_at(0.2);
    CHECK(at == doctest::Approx(0.26));
    CHECK(lane.claimable(at) == 1);
    lane.on_start(at, 1);
    CHECK(lane.claimable(at) == 0);
    CHECK(lane.next_start_at(at) == doctest::Approx(at + 60.0 / lane.learned_rpm()));
}

TEST_CASE("429: a burst refused whole leaves the lane a usable rate, not the floor") {
    // Every call of a first burst is refused (the provider's window was used up elsewhere):
    // nothing was accepted, which says nothing about the rate the provider takes. The lane
    // goes on at one request per the burst's span (at least 1 s), not at kMinLearnedRpm.
    Lane lane("p", LaneLimits{4, 0, 0});
    for (int i = 0; i < 4; ++i) lane.on_start(0, 1);
    for (int i = 0; i < 4; ++i) {
        lane.on_finish();
        lane.on_rate_limited(0.3, std::nullopt, 0.0);
    }
    CHECK(lane.learned_rpm() == doctest::Approx(60 * Lane::kLearnDecrease));
    double at = lane.next_start_at(0.3);
    lane.on_start(at, 1);
    lane.on_finish();
    lane.on_success(at + 0.3);
    CHECK(lane.next_start_at(at + 0.3) < at + 2);
}

TEST_CASE("learned rate: additive increase per success while used, none while idle") {
    Lane lane("p", LaneLimits{16, 0, 0});
    for (int i = 0; i < 4; ++i) lane.on_start(0, 1);
    lane.on_rate_limited(0.0, 0.0, 0.0);
    double learned = lane.learned_rpm();
    REQUIRE(learned > 0);
    double t = 1;
    for (int i = 0; i < 10; ++i) {
        t = std::max(t, lane.next_start_at(t));
        lane.on_start(t, 1);
        lane.on_finish();
        lane.on_success(t);
    }
    CHECK(lane.learned_rpm() == doctest::Approx(learned + 10 * Lane::kLearnIncreaseRpm));
    // Long idle: nothing started in the window, so successes teach nothing.
    double before = lane.learned_rpm();
    lane.on_success(t + 1000);
    CHECK(lane.learned_rpm() == doctest::Approx(before));
}

namespace {

// A provider that allows `rpm` requests a minute (a token bucket holding one second's worth,
// like the sim's --rpm) answers instantly with 429 (and the wait until its next token) or
// after latency with success. The lane, which is not told the rate, starts requests as it
// allows for `seconds`. Returns {accepted, refused}.
std::pair<int, int> against_bucket(double rpm, int concurrency, double latency, double seconds) {
    Lane lane("p", LaneLimits{concurrency, 0, 0});
    const double rate = rpm / 60;
    const double burst = std::max(1.0, rate);
    double tokens = burst, refilled = 0;
    struct Call {
        double done, started;
        bool ok;
        double wait;
    };
    std::vector<Call> calls;
    int accepted = 0, refused = 0;
    for (double t = 0; t < seconds; t += 0.001) {
        for (std::size_t i = 0; i < calls.size();) {
            if (calls[i].done > t) {
                ++i;
                continue;
            }
            lane.on_finish();
            if (calls[i].ok)
                lane.on_success(t);
            else
                lane.on_rate_limited(t, calls[i].wait, calls[i].started);
            calls[i] = calls.back();
            calls.pop_back();
        }
        for (int n = lane.claimable(t); n > 0; --n) {
            lane.on_start(t, 1);
            tokens = std::min(burst, tokens + rate * (t - refilled));
            refilled = t;
            if (tokens >= 1) {
                tokens -= 1;
                ++accepted;
                calls.push_back({t + latency, t, true, 0});
            } else {
                ++refused;
                calls.push_back(
                    {t + 0.001, t, false, std::ceil((1 - tokens) / rate * 1000) / 1000});
            }
        }
    }
    return {accepted, refused};
}

}  // namespace

TEST_CASE("learned rate: against an untold 240/min, >= 90% of it is used, < 10% refused") {
    for (double latency : {0.05, 2.0}) {
        CAPTURE(latency);
        auto [accepted, refused] = against_bucket(240, 16, latency, 120);
        double used = accepted / (240.0 * 120 / 60);
        CAPTURE(accepted);
        CAPTURE(refused);
        CHECK(used >= 0.9);
        CHECK(static_cast<double>(refused) / (accepted + refused) < 0.1);
    }
    // Slower and faster providers too (the first burst is max_concurrency calls at once: it
    // is refused but for one second's worth).
    for (auto [rpm, concurrency] : {std::pair{60.0, 4}, std::pair{2400.0, 64}}) {
        CAPTURE(rpm);
        auto [accepted, refused] = against_bucket(rpm, concurrency, 0.05, 120);
        CHECK(accepted / (rpm * 120 / 60) >= 0.9);
        CHECK(static_cast<double>(refused) / (accepted + refused) < 0.1);
    }
}

TEST_CASE("x-ratelimit headers: parsed, their limit starts the learned rate and caps it") {
    Headers h{{"X-RateLimit-Limit-Requests", "240"},
              {"x-ratelimit-remaining-requests", "0"},
              {"x-ratelimit-reset-requests", "6m0s"}};
    RateLimitHint hint = rate_limit_hint(h);
    CHECK(hint.limit == 240);
    CHECK(hint.remaining == 0);
    CHECK(hint.reset_s == doctest::Approx(360));
    CHECK(rate_limit_hint(Headers{{"x-ratelimit-limit-requests", "many"}}).empty());

    Lane lane("p", LaneLimits{16, 0, 0});
    lane.on_hint(100, hint);
    CHECK(lane.learned_rpm() == doctest::Approx(240));
    // Nothing left: held until the next request is back (one 240th of a minute), not 6 min.
    CHECK(lane.held_until() == doctest::Approx(100.25));
    CHECK(lane.claimable(100.25) == 1);
    // Successes do not push the rate past the provider's limit.
    for (int i = 0; i < 50; ++i) {
        lane.on_start(100.25 + i * 0.25, 1);
        lane.on_finish();
        lane.on_success(100.25 + i * 0.25);
    }
    CHECK(lane.learned_rpm() == doctest::Approx(240));
    // Nonsense in the headers neither stalls the lane nor holds it for long.
    Lane odd("o", LaneLimits{16, 0, 0});
    odd.on_hint(0, RateLimitHint{0.0001, 0.0, 1e12});
    CHECK(odd.learned_rpm() == doctest::Approx(Lane::kMinLearnedRpm));
    CHECK(odd.held_until() <= Lane::kMaxHintHoldS);
    Lane no_limit("n", LaneLimits{16, 0, 0});
    no_limit.on_hint(0, RateLimitHint{std::nullopt, 0.0, 1e12});
    CHECK(no_limit.held_until() == doctest::Approx(Lane::kMaxHintHoldS));
    // A configured rate wins over hints.
    Lane set("s", LaneLimits{16, 60, 0});
    set.on_hint(0, RateLimitHint{240.0, 10.0, 1.0});
    CHECK(set.learned_rpm() == 0);
    CHECK(set.next_start_at(0) == doctest::Approx(0));
}

TEST_CASE("parse_duration_s reads Go-style durations") {
    CHECK(parse_duration_s("1s") == doctest::Approx(1));
    CHECK(parse_duration_s("6m0s") == doctest::Approx(360));
    CHECK(parse_duration_s("1.5s") == doctest::Approx(1.5));
    CHECK(parse_duration_s("20ms") == doctest::Approx(0.02));
    CHECK(parse_duration_s("1h2m3s") == doctest::Approx(3723));
    CHECK(parse_duration_s("0.5") == doctest::Approx(0.5));
    CHECK_FALSE(parse_duration_s(""));
    CHECK_FALSE(parse_duration_s("soon"));
    CHECK_FALSE(parse_duration_s("5x"));
    CHECK_FALSE(parse_duration_s("-1s"));
    CHECK_FALSE(parse_duration_s("1e400s"));
}

TEST_CASE("breaker: a run of failures holds longer each time, then one at a time") {
    Lane lane("p", LaneLimits{4, 0, 0});
    for (int i = 0; i < 4; ++i) lane.on_start(0, 1);
    lane.on_finish();
    CHECK_FALSE(lane.on_failure(1.0, 1, 0.5, 60));  // the first failure is the request's
    CHECK(lane.failure_run() == 1);
    CHECK(lane.held_until() == doctest::Approx(1.5));
    CHECK(lane.claimable(1.5) == 1);  // slowed, not cut: the free slot
    lane.on_finish();
    CHECK(lane.on_failure(1.0, 2, 0.5, 60));  // a second request failing: the provider's
    CHECK(lane.held_until() == doctest::Approx(2.0));
    CHECK(lane.claimable(2.0) == 2);
    lane.on_finish();
    CHECK(lane.on_failure(1.0, 3, 0.5, 60));  // tripped
    CHECK(lane.held_until() == doctest::Approx(3.0));
    CHECK(lane.breaker_cap() == 1);
    CHECK(lane.claimable(3.0) == 0);  // one still in flight
    lane.on_finish();
    CHECK(lane.in_flight() == 0);
    CHECK(lane.claimable(2.9) == 0);
    CHECK(lane.claimable(3.0) == 1);  // half-open: one request
    lane.on_start(3.0, 1);
    CHECK(lane.claimable(3.0) == 0);
    lane.on_finish();
    CHECK(lane.on_failure(3.1, 1, 0.5, 60));
    CHECK(lane.held_until() == doctest::Approx(3.1 + 4.0));
    for (int i = 0; i < 20; ++i) lane.on_failure(8, 5, 0.5, 60);
    CHECK(lane.held_until() == doctest::Approx(68));  // capped
    // A success closes the breaker; concurrency ramps back up by doubling.
    lane.on_start(68, 1);
    lane.on_finish();
    lane.on_success(68);
    CHECK(lane.failure_run() == 0);
    CHECK(lane.claimable(68) == 2);
    lane.on_success(68);
    CHECK(lane.claimable(68) == 4);
    CHECK(lane.breaker_cap() == 0);

    // A failure while the concurrency ramps back up trips the breaker again at once.
    for (int i = 0; i < 3; ++i) lane.on_failure(100, 9, 0.5, 60);
    lane.on_success(200);
    CHECK(lane.breaker_cap() == 2);
    lane.on_failure(201, 9, 0.5, 60);
    CHECK(lane.failure_run() == 1);
    CHECK(lane.breaker_cap() == 1);
}

TEST_CASE("breaker: a request failing alone is its own fault; within a minute of trouble not") {
    Lane lane("p", LaneLimits{4, 0, 0});
    CHECK_FALSE(lane.on_failure(0, 7, 0.5, 60));
    CHECK_FALSE(lane.on_failure(10, 7, 0.5, 60));
    CHECK_FALSE(lane.on_failure(20, 7, 0.5, 60));
    lane.on_answered();  // e.g. a moderation refusal: the provider answers
    CHECK_FALSE(lane.on_failure(30, 7, 0.5, 60));
    CHECK(lane.failure_run() == 1);

    Lane gw("g", LaneLimits{4, 0, 0});
    CHECK_FALSE(gw.on_failure(0, 1, 0.5, 60));
    CHECK(gw.on_failure(0, 2, 0.5, 60));
    gw.on_success(1);
    // A gateway that flaps: the first failure of the next run is blamed too.
    CHECK(gw.on_failure(30, 3, 0.5, 60));
    gw.on_success(31);
    CHECK_FALSE(gw.on_failure(30 + Lane::kTroubleWindowS + 1, 4, 0.5, 60));
}
