#include "jobs/retry_policy.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string>

namespace imgbatch::jobs {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool contains_any(const std::string& haystack, std::initializer_list<std::string_view> needles) {
    for (auto n : needles)
        if (haystack.find(n) != std::string::npos) return true;
    return false;
}

double jitter_scale(double jitter01) {
    return 0.5 + 0.5 * std::clamp(jitter01, 0.0, 1.0);
}

// Retry-After is a floor under every computed delay.
double with_floor(double delay, const Error& err) {
    return err.retry_after_s ? std::max(delay, *err.retry_after_s) : delay;
}

// A 429 (or 403) that means the account is out of money or quota, not a per-minute window.
// Google answers per-minute limits with RESOURCE_EXHAUSTED and "quota" in the message
// ("Quota exceeded for metric ... per minute"), so rate-window words win over "quota".
bool is_quota(const std::string& code, const std::string& msg) {
    if (code == "insufficient_quota" || code == "billing_hard_limit_reached") return true;
    if (contains_any(msg, {"insufficient_quota", "billing_hard_limit_reached", "billing"}))
        return true;
    if (contains_any(code, {"quota"})) return true;
    if (!contains_any(msg, {"quota"})) return false;
    return !contains_any(
        msg, {"per minute", "per_minute", "perminute", "rate limit", "rate_limit", "check quota"});
}

bool is_moderation(const std::string& code, const std::string& msg) {
    if (code == "moderation_blocked" || code == "content_policy_violation") return true;
    return contains_any(
        msg, {"safety system", "content policy", "content_policy", "moderation", "responsible ai"});
}

}  // namespace

double backoff_delay(int attempt, const RetryConfig& cfg, double jitter01) {
    const int exp = std::clamp(attempt, 1, 63) - 1;  // 2^62 already exceeds any cap
    const double raw = cfg.base_delay_s * std::ldexp(1.0, exp);
    return std::min(cfg.max_delay_s, raw) * jitter_scale(jitter01);
}

Decision decide(const Error& err, const RequestCounters& c, const RetryConfig& cfg,
                double jitter01) {
    Decision d;
    switch (err.cls) {
        case ErrorClass::timeout:
        case ErrorClass::network:
            if (may_be_billed(err)) {
                d.counts_timeout = true;
                if (c.timeouts + 1 >= cfg.max_timeouts) {
                    d.action = Action::fail;
                } else {
                    d.action = Action::retry;
                    d.delay_s = with_floor(backoff_delay(c.timeouts + 1, cfg, jitter01), err);
                }
                return d;
            }
            [[fallthrough]];
        case ErrorClass::server:
        case ErrorClass::bad_response:
            d.counts_attempt = true;
            if (c.attempts + 1 >= cfg.max_attempts) {
                d.action = Action::fail;
            } else {
                d.action = Action::retry;
                d.delay_s = with_floor(backoff_delay(c.attempts + 1, cfg, jitter01), err);
            }
            return d;
        case ErrorClass::rate_limited:
            d.counts_rate_limit = true;
            if (c.rate_limited + 1 >= cfg.max_rate_limited) {
                d.action = Action::fail;
            } else {
                d.action = Action::retry;
                d.delay_s = with_floor(backoff_delay(c.rate_limited + 1, cfg, jitter01), err);
            }
            return d;
        case ErrorClass::moderation:
        case ErrorClass::partial:
            if (c.moderation >= cfg.moderation_retries) {
                // Blocked means the provider refused the prompt. A provider that keeps
                // answering short (no refusal) leaves the request failed, class partial.
                d.action = err.cls == ErrorClass::partial ? Action::fail : Action::block;
                return d;
            }
            d.action = Action::retry;
            d.counts_moderation = true;
            // A top-up after a partial answer need not back off: the provider did answer.
            d.delay_s = err.cls == ErrorClass::partial
                            ? cfg.base_delay_s * jitter_scale(jitter01)
                            : backoff_delay(c.moderation + 1, cfg, jitter01);
            d.delay_s = with_floor(d.delay_s, err);
            return d;
        case ErrorClass::invalid_request:
            d.action = Action::fail;
            return d;
        case ErrorClass::auth:
        case ErrorClass::quota:
            d.action = Action::pause_provider;
            d.delay_s = with_floor(cfg.auth_probe_s, err);
            return d;
        case ErrorClass::local:
            d.action = Action::pause_local;
            d.delay_s = std::min(cfg.max_delay_s, 30.0);
            return d;
    }
    return d;
}

Decision decide_provider_failure(const Error& err, const RequestCounters& c, const RetryConfig& cfg,
                                 double jitter01) {
    Decision d;
    d.counts_provider_failure = true;
    if (c.provider_failures + 1 >= cfg.max_provider_failures) {
        d.action = Action::fail;
    } else {
        d.action = Action::retry;
        // The lane's breaker spaces the calls (its holds grow with the run): the request
        // itself need not back off further.
        d.delay_s = with_floor(cfg.base_delay_s * jitter_scale(jitter01), err);
    }
    return d;
}

bool may_be_billed(const Error& err) {
    if (err.cls == ErrorClass::network) return err.code == kAfterSend;
    if (err.cls != ErrorClass::timeout) return false;
    if (err.http_status == 408) return false;
    return !err.message.starts_with("connect deadline");
}

ErrorClass classify_http(int status, std::string_view code_in, std::string_view message_in,
                         bool has_retry_after) {
    const std::string code = lower(code_in);
    const std::string msg = lower(message_in);
    if (status == 429) return is_quota(code, msg) ? ErrorClass::quota : ErrorClass::rate_limited;
    if (status == 503 && has_retry_after) return ErrorClass::rate_limited;
    // 408: the server gave up waiting for the request. 504 and Cloudflare's 524: a gateway gave
    // up waiting for the provider, which may still be generating (and billing) the answer.
    if (status == 408 || status == 504 || status == 524) return ErrorClass::timeout;
    if (status >= 500 && status <= 599) return ErrorClass::server;
    if (status == 401) return ErrorClass::auth;
    // OpenAI sends billing_hard_limit_reached with 400: it is still an account problem.
    if (status >= 400 && status <= 499 &&
        (code == "insufficient_quota" || code == "billing_hard_limit_reached"))
        return ErrorClass::quota;
    if ((status == 400 || status == 403 || status == 422) && is_moderation(code, msg))
        return ErrorClass::moderation;
    if (status == 403) return is_quota(code, msg) ? ErrorClass::quota : ErrorClass::auth;
    if (status >= 400 && status <= 499) return ErrorClass::invalid_request;
    return ErrorClass::bad_response;
}

}  // namespace imgbatch::jobs
