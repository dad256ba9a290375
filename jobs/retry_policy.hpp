#pragma once
// The retry policy: pure functions of the error, the request's counters, config and a random
// draw. No clock reads, no I/O.
#include <string_view>

#include "jobs/error.hpp"

namespace imgbatch::jobs {

struct RetryConfig {
    int max_attempts = 6;        // attempts per request (network, server, bad_response, and
                                 // timeouts that cannot have been billed)
    double base_delay_s = 2;     // first backoff
    double max_delay_s = 600;    // backoff cap
    int moderation_retries = 2;  // moderation retries (and partial top-ups) per request; once
                                 // used up a refusal blocks, a short answer fails
    int max_rate_limited = 100;  // 429s tolerated per request before it fails
    double auth_probe_s = 300;   // paused provider is probed again after this
    int max_timeouts = 2;        // timeouts that may have been billed, per request
    // Server/network failures per request that came in a run of failures of the provider
    // (its circuit breaker): they do not use attempts, and are bounded by this instead.
    int max_provider_failures = 30;
};

// Counters of a request before the attempt that just ended.
struct RequestCounters {
    int attempts = 0;           // counted attempts so far, not including the one that just ended
    int rate_limited = 0;       // 429s so far
    int moderation = 0;         // moderation retries / top-ups so far
    int timeouts = 0;           // timeouts that may have been billed so far
    int provider_failures = 0;  // failures blamed on the provider's run of failures so far
};

enum class Action {
    retry,           // requeue the request after delay_s
    fail,            // request ends failed (job keeps what it has)
    block,           // request ends blocked (moderation refusals used up the budget)
    pause_provider,  // auth/quota: requeue without using an attempt, pause the provider lane
    pause_local,     // local error: requeue, pause dispatching for delay_s
};

struct Decision {
    Action action = Action::fail;
    double delay_s = 0;           // for retry / pause: how long to wait
    bool counts_attempt = false;  // increments requests.attempts
    bool counts_rate_limit = false;
    bool counts_moderation = false;
    bool counts_timeout = false;
    bool counts_provider_failure = false;
};

// Exponential backoff with full jitter: base * 2^(attempt-1), capped at max, scaled into
// [0.5, 1.0] by jitter01 in [0,1). attempt is 1-based.
double backoff_delay(int attempt, const RetryConfig& cfg, double jitter01);

// What to do after an attempt ended with err. Retry-After (err.retry_after_s) is a floor.
// A timeout or network failure that may have been billed (may_be_billed) counts against
// max_timeouts, never against the attempts: a call the provider may be generating is not asked for
// again more than max_timeouts times.
Decision decide(const Error& err, const RequestCounters& counters, const RetryConfig& cfg,
                double jitter01);

// The decision for a server or network failure that the provider's lane blames on the
// provider (it came in a run of failures: the circuit breaker tripped): retried after the
// base delay (with jitter; Retry-After is a floor), since the lane's breaker holds do the
// backing off, on its own budget (max_provider_failures); the request's attempts are not
// used.
Decision decide_provider_failure(const Error& err, const RequestCounters& counters,
                                 const RetryConfig& cfg, double jitter01);

// Whether a timeout may have been billed: a response deadline that passed after the request
// was sent, or a gateway timeout (504, Cloudflare 524) while the provider may still be
// generating. A connect/TLS deadline or a 408 (the server did not get the whole request) was
// not. A network failure may have been billed when it came after the request was written
// whole (code kAfterSend: the connection closed or reset with no or part of an answer).
bool may_be_billed(const Error& err);

// Classification of an HTTP error answer shared by all providers: status, the provider's
// error code/type (may be empty) and message text (for quota/moderation words).
ErrorClass classify_http(int status, std::string_view code, std::string_view message,
                         bool has_retry_after);

}  // namespace imgbatch::jobs
