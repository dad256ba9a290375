// Error answers of every provider: error_from_response (JSON, text and HTML bodies) and
// Retry-After / retry-after-ms (seconds or HTTP dates of any year) against a fixed clock.
#include <chrono>
#include <cmath>

#include "daemon/providers/provider.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    auto response = fuzz::response_from(fuzz::as_text(data, size));
    if (response.status < 400) response.status = 429;
    // 2025-01-01T00:00:00Z and the latest time the clock holds.
    for (auto now : {std::chrono::system_clock::from_time_t(1735689600),
                     std::chrono::system_clock::time_point::max()}) {
        auto err = daemon::error_from_response(response, now);
        fuzz::require(!err.message.empty(), "an error has a message");
        fuzz::require(!err.code.empty(), "an error has a code");
        if (auto s = daemon::retry_after_seconds(response.headers, now))
            fuzz::require(std::isfinite(*s) && *s >= 0 && *s <= daemon::kMaxRetryAfterS,
                          "Retry-After within [0, kMaxRetryAfterS]");
        auto excerpt = daemon::body_excerpt(response.body, 100);
        fuzz::require(excerpt.size() <= 100, "an excerpt is at most max_chars bytes");
    }
    return 0;
}
