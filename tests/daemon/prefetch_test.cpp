// How many claims a provider holds ahead of its free slots (dispatcher.hpp).
#include <doctest/doctest.h>

#include "daemon/engine/dispatcher.hpp"

using imgbatch::daemon::kMaxPrefetchScale;
using imgbatch::daemon::next_prefetch_scale;

TEST_CASE("prefetch: doubles when a full claim comes back to a drained lane, up to the cap") {
    // 64 slots, all free, nothing held ahead, the claim got all it asked for.
    CHECK(next_prefetch_scale(1, true, 0, 64, 64, 64) == 2);
    CHECK(next_prefetch_scale(2, true, 0, 40, 64, 128) == 4);
    CHECK(next_prefetch_scale(kMaxPrefetchScale, true, 0, 64, 64, 512) == kMaxPrefetchScale);
}

TEST_CASE("prefetch: stays when the queue ran dry, the lane is busy or spaced by a rate") {
    CHECK(next_prefetch_scale(1, false, 0, 64, 64, 64) == 1);  // the queue had no more
    CHECK(next_prefetch_scale(1, true, 0, 10, 64, 64) == 1);   // most slots still busy
    CHECK(next_prefetch_scale(1, true, 3, 64, 64, 64) == 1);   // some still held ahead
    CHECK(next_prefetch_scale(1, true, 0, 1, 1, 1) == 1);      // one slot, or a rate
}

TEST_CASE("prefetch: halves when half of what was held ahead still waits") {
    CHECK(next_prefetch_scale(8, true, 256, 0, 64, 512) == 4);
    CHECK(next_prefetch_scale(4, false, 200, 10, 64, 256) == 2);
    CHECK(next_prefetch_scale(4, false, 100, 10, 64, 256) == 4);  // under half: kept
    CHECK(next_prefetch_scale(1, false, 64, 0, 64, 64) == 1);     // never under 1
}
