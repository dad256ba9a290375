#include "daemon/lane.hpp"

#include <doctest/doctest.h>

#include <vector>

using imgbatch::daemon::Lane;
using imgbatch::daemon::LaneLimits;

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
    lane.on_rate_limited(5.0);
    CHECK(lane.rate_factor() == doctest::Approx(0.75));
    CHECK(lane.claimable(4.9) == 0);
    CHECK(lane.next_start_at(1.0) == doctest::Approx(5.0));
    CHECK(lane.claimable(5.0) == 1);
    lane.on_start(5.0, 1);
    // Spacing is now 60 / (60 * 0.75) = 1.333 s.
    CHECK(lane.next_start_at(5.0) == doctest::Approx(5.0 + 60.0 / 45.0));
    for (int i = 0; i < 100; ++i) lane.on_rate_limited(5.0);
    CHECK(lane.rate_factor() == doctest::Approx(0.1));
    for (int i = 0; i < 100; ++i) lane.on_success();
    CHECK(lane.rate_factor() == doctest::Approx(1.0));
}

TEST_CASE("429 without a configured rate: only the hold applies") {
    Lane lane("p", LaneLimits{4, 0, 0});
    lane.on_rate_limited(3.0);
    CHECK(lane.claimable(2.0) == 0);
    CHECK(lane.claimable(3.0) == 4);
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
