#pragma once
// The retry policy: pure functions of the error, the request's counters, config and a random
// draw. No clock reads, no I/O.
#include <string_view>

#include "jobs/error.hpp"

namespace imgbatch::jobs {

struct RetryConfig {
    int max_attempts = 6;        // attempts per request (timeouts, network, server, bad_response)
    double base_delay_s = 2;     // first backoff
    double max_delay_s = 600;    // backoff cap
    int moderation_retries = 2;  // moderation retries (and partial top-ups) per request
    int max_rate_limited = 100;  // 429s tolerated per request before it fails
    double auth_probe_s = 300;   // paused provider is probed again after this
};

// Counters of a request before the attempt that just ended.
struct RequestCounters {
    int attempts = 0;      // counted attempts so far, not including the one that just ended
    int rate_limited = 0;  // 429s so far
    int moderation = 0;    // moderation retries / top-ups so far
};

enum class Action {
    retry,           // requeue the request after delay_s
    fail,            // request ends failed (job keeps what it has)
    block,           // request ends blocked (moderation budget used up)
    pause_provider,  // auth/quota: requeue without using an attempt, pause the provider lane
    pause_local,     // local error: requeue, pause dispatching for delay_s
};

struct Decision {
    Action action = Action::fail;
    double delay_s = 0;           // for retry / pause: how long to wait
    bool counts_attempt = false;  // increments requests.attempts
    bool counts_rate_limit = false;
    bool counts_moderation = false;
};

// Exponential backoff with full jitter: base * 2^(attempt-1), capped at max, scaled into
// [0.5, 1.0] by jitter01 in [0,1). attempt is 1-based.
double backoff_delay(int attempt, const RetryConfig& cfg, double jitter01);

// What to do after an attempt ended with err. Retry-After (err.retry_after_s) is a floor.
Decision decide(const Error& err, const RequestCounters& counters, const RetryConfig& cfg,
                double jitter01);

// Classification of an HTTP error answer shared by all providers: status, the provider's
// error code/type (may be empty) and message text (for quota/moderation words).
ErrorClass classify_http(int status, std::string_view code, std::string_view message,
                         bool has_retry_after);

}  // namespace imgbatch::jobs
