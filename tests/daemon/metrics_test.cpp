// The Prometheus histogram: cumulative buckets, +Inf, sum and count.
#include "daemon/engine/histogram.hpp"

#include <doctest/doctest.h>

using imgbatch::daemon::Histogram;

TEST_CASE("histogram: buckets are cumulative, with +Inf, _sum and _count") {
    Histogram h({0.5, 1, 2.5});
    CHECK(h.render("x_seconds", "provider=\"p\"") ==
          "x_seconds_bucket{provider=\"p\",le=\"0.5\"} 0\n"
          "x_seconds_bucket{provider=\"p\",le=\"1\"} 0\n"
          "x_seconds_bucket{provider=\"p\",le=\"2.5\"} 0\n"
          "x_seconds_bucket{provider=\"p\",le=\"+Inf\"} 0\n"
          "x_seconds_sum{provider=\"p\"} 0\n"
          "x_seconds_count{provider=\"p\"} 0\n");
    h.observe(0.5);  // on a bound: in that bucket (le is "less or equal")
    h.observe(0.75);
    h.observe(2);
    h.observe(30);
    CHECK(h.count() == 4);
    CHECK(h.render("x_seconds", "") ==
          "x_seconds_bucket{le=\"0.5\"} 1\n"
          "x_seconds_bucket{le=\"1\"} 2\n"
          "x_seconds_bucket{le=\"2.5\"} 3\n"
          "x_seconds_bucket{le=\"+Inf\"} 4\n"
          "x_seconds_sum 33.25\n"
          "x_seconds_count 4\n");
}
