#pragma once
// What a provider call can end with: an error value, never an exception.
#include <optional>
#include <string>
#include <string_view>

namespace imgbatch::jobs {

// The error classes of the SPEC. Their names are stored in attempts.error_class and exported.
enum class ErrorClass {
    timeout,          // connect, TLS or response deadline passed
    network,          // refused, reset, truncated body, TLS failure
    rate_limited,     // 429 that is not a quota error; 503 with Retry-After
    server,           // 5xx
    moderation,       // moderation_blocked, content_policy_violation, RAI refusal, all filtered
    partial,          // fewer images than asked (the ones received are kept)
    invalid_request,  // other 4xx
    auth,             // 401, 403
    quota,            // insufficient_quota, billing_hard_limit_reached
    bad_response,     // not JSON, no images, bad base64, bytes that are no image
    local,            // disk full, output not writable
};

// Error::code of a network failure (closed, reset, truncated answer) after a request that is
// not GET/HEAD was written whole: the server may have processed and billed it, so the HTTP
// client did not send it again; the retry policy counts it like a timeout (may_be_billed).
inline constexpr std::string_view kAfterSend = "after_send";

std::string_view to_string(ErrorClass c);
std::optional<ErrorClass> error_class_from(std::string_view name);

struct Error {
    ErrorClass cls = ErrorClass::network;
    std::string code;     // provider's code ("moderation_blocked", "rate_limit_exceeded") or ours
    int http_status = 0;  // 0 when there was no HTTP response
    std::string message;  // provider's message, or a description of what went wrong
    std::optional<double> retry_after_s;  // from Retry-After / retry-after-ms, when given
};

}  // namespace imgbatch::jobs
