#include "jobs/planner.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using imgbatch::jobs::plan_requests;

TEST_CASE("plan_requests splits n images into requests of at most k") {
    auto plan = plan_requests(23, 10);
    REQUIRE(plan.size() == 3);
    CHECK(plan[0].seq == 0);
    CHECK(plan[0].first_index == 0);
    CHECK(plan[0].n == 10);
    CHECK(plan[1].seq == 1);
    CHECK(plan[1].first_index == 10);
    CHECK(plan[1].n == 10);
    CHECK(plan[2].seq == 2);
    CHECK(plan[2].first_index == 20);
    CHECK(plan[2].n == 3);
}

TEST_CASE("plan_requests: exact multiples, single image, k = 1, n < k") {
    auto even = plan_requests(8, 4);
    REQUIRE(even.size() == 2);
    CHECK(even[1].n == 4);
    CHECK(even[1].first_index == 4);

    auto one = plan_requests(1, 10);
    REQUIRE(one.size() == 1);
    CHECK(one[0].n == 1);

    auto singles = plan_requests(5, 1);
    REQUIRE(singles.size() == 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(singles[i].seq == i);
        CHECK(singles[i].first_index == i);
        CHECK(singles[i].n == 1);
    }

    auto small = plan_requests(3, 10);
    REQUIRE(small.size() == 1);
    CHECK(small[0].n == 3);
}

TEST_CASE("plan_requests covers every index exactly once") {
    for (int n : {1, 2, 7, 10, 11, 99, 10000}) {
        for (int k : {1, 3, 4, 10}) {
            auto plan = plan_requests(n, k);
            int next = 0;
            for (const auto& r : plan) {
                CHECK(r.first_index == next);
                CHECK(r.n >= 1);
                CHECK(r.n <= k);
                next += r.n;
            }
            CHECK(next == n);
            CHECK(plan.size() == static_cast<std::size_t>((n + k - 1) / k));
        }
    }
}

TEST_CASE("plan_requests refuses n < 1 and k < 1") {
    CHECK_THROWS_AS(plan_requests(0, 4), std::invalid_argument);
    CHECK_THROWS_AS(plan_requests(-3, 4), std::invalid_argument);
    CHECK_THROWS_AS(plan_requests(4, 0), std::invalid_argument);
}
