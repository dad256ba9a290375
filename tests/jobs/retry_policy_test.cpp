#include "jobs/retry_policy.hpp"

#include <doctest/doctest.h>

using namespace imgbatch::jobs;

namespace {
Error err(ErrorClass c, std::optional<double> retry_after = std::nullopt) {
    Error e;
    e.cls = c;
    e.retry_after_s = retry_after;
    return e;
}
RetryConfig cfg() {
    return RetryConfig{};
}  // 6 attempts, base 2 s, cap 600 s, 2 moderation
}  // namespace

TEST_CASE("backoff doubles from the base, is capped, and jitter scales it into [0.5, 1]") {
    RetryConfig c = cfg();
    CHECK(backoff_delay(1, c, 1.0) == doctest::Approx(2));
    CHECK(backoff_delay(2, c, 1.0) == doctest::Approx(4));
    CHECK(backoff_delay(3, c, 1.0) == doctest::Approx(8));
    CHECK(backoff_delay(1, c, 0.0) == doctest::Approx(1));
    CHECK(backoff_delay(3, c, 0.5) == doctest::Approx(6));
    // 2 * 2^9 = 1024 > 600: capped before jitter.
    CHECK(backoff_delay(10, c, 1.0) == doctest::Approx(600));
    CHECK(backoff_delay(10, c, 0.0) == doctest::Approx(300));
    // Very large attempt numbers neither overflow nor exceed the cap.
    CHECK(backoff_delay(5000, c, 0.999) <= 600);
    CHECK(backoff_delay(5000, c, 0.0) == doctest::Approx(300));
    for (double j : {0.0, 0.1, 0.5, 0.9, 0.999999}) {
        double d = backoff_delay(4, c, j);
        CHECK(d >= 8.0);
        CHECK(d <= 16.0);
    }
}

TEST_CASE("network, server and bad_response retry with backoff until the last attempt") {
    RetryConfig c = cfg();
    for (auto cls : {ErrorClass::network, ErrorClass::server, ErrorClass::bad_response}) {
        CAPTURE(to_string(cls));
        RequestCounters first{};
        auto d = decide(err(cls), first, c, 1.0);
        CHECK(d.action == Action::retry);
        CHECK(d.counts_attempt);
        CHECK_FALSE(d.counts_rate_limit);
        CHECK_FALSE(d.counts_moderation);
        CHECK(d.delay_s == doctest::Approx(2));  // backoff(1)

        RequestCounters third{2, 0, 0};
        CHECK(decide(err(cls), third, c, 1.0).delay_s == doctest::Approx(8));  // backoff(3)

        // attempts 4 before + this one = 5 of 6: still retried.
        RequestCounters fifth{4, 0, 0};
        CHECK(decide(err(cls), fifth, c, 1.0).action == Action::retry);
        // attempts 5 before + this one = 6 of 6: the last attempt fails the request.
        RequestCounters last{5, 0, 0};
        auto f = decide(err(cls), last, c, 1.0);
        CHECK(f.action == Action::fail);
        CHECK(f.counts_attempt);
    }
}

TEST_CASE("Retry-After is a floor under the backoff, never a ceiling") {
    RetryConfig c = cfg();
    CHECK(decide(err(ErrorClass::server, 30.0), {}, c, 1.0).delay_s == doctest::Approx(30));
    CHECK(decide(err(ErrorClass::server, 0.5), {}, c, 1.0).delay_s == doctest::Approx(2));
    CHECK(decide(err(ErrorClass::rate_limited, 45.0), {}, c, 0.0).delay_s == doctest::Approx(45));
    CHECK(decide(err(ErrorClass::rate_limited, 0.1), {3, 0, 0}, c, 1.0).delay_s ==
          doctest::Approx(2));  // backoff(rate_limited + 1), not of attempts
}

TEST_CASE("rate_limited counts against its own budget, not the attempts") {
    RetryConfig c = cfg();
    c.max_rate_limited = 5;
    RequestCounters rc{5, 2, 0};  // attempts are not looked at
    auto d = decide(err(ErrorClass::rate_limited), rc, c, 1.0);
    CHECK(d.action == Action::retry);
    CHECK(d.counts_rate_limit);
    CHECK_FALSE(d.counts_attempt);
    CHECK(d.delay_s == doctest::Approx(8));  // backoff(3)

    CHECK(decide(err(ErrorClass::rate_limited), {0, 3, 0}, c, 1.0).action == Action::retry);
    auto last = decide(err(ErrorClass::rate_limited), {0, 4, 0}, c, 1.0);
    CHECK(last.action == Action::fail);
    CHECK(last.counts_rate_limit);
}

TEST_CASE("moderation retries up to moderation_retries, then blocks") {
    RetryConfig c = cfg();  // 2 retries
    auto d0 = decide(err(ErrorClass::moderation), {0, 0, 0}, c, 1.0);
    CHECK(d0.action == Action::retry);
    CHECK(d0.counts_moderation);
    CHECK_FALSE(d0.counts_attempt);
    CHECK(d0.delay_s == doctest::Approx(2));
    auto d1 = decide(err(ErrorClass::moderation), {0, 0, 1}, c, 1.0);
    CHECK(d1.action == Action::retry);
    CHECK(d1.delay_s == doctest::Approx(4));
    auto d2 = decide(err(ErrorClass::moderation), {0, 0, 2}, c, 1.0);
    CHECK(d2.action == Action::block);
    CHECK_FALSE(d2.counts_moderation);

    c.moderation_retries = 0;
    CHECK(decide(err(ErrorClass::moderation), {}, c, 1.0).action == Action::block);
}

TEST_CASE("partial tops up after the base delay, within the moderation budget") {
    RetryConfig c = cfg();
    c.base_delay_s = 3;
    auto d = decide(err(ErrorClass::partial), {4, 0, 1}, c, 0.0);
    CHECK(d.action == Action::retry);
    CHECK(d.counts_moderation);
    CHECK_FALSE(d.counts_attempt);
    CHECK(d.delay_s == doctest::Approx(1.5));  // base * 0.5, not backoff(2)
    CHECK(decide(err(ErrorClass::partial), {0, 0, 0}, c, 1.0).delay_s == doctest::Approx(3));
    CHECK(decide(err(ErrorClass::partial), {0, 0, 2}, c, 1.0).action == Action::fail);
}

TEST_CASE("a short answer with its top-ups used up fails; only a moderation refusal blocks") {
    RetryConfig c = cfg();  // 2 moderation retries
    auto partial = decide(err(ErrorClass::partial), {0, 0, 2}, c, 1.0);
    CHECK(partial.action == Action::fail);
    CHECK_FALSE(partial.counts_moderation);
    CHECK_FALSE(partial.counts_attempt);
    auto refusal = decide(err(ErrorClass::moderation), {0, 0, 2}, c, 1.0);
    CHECK(refusal.action == Action::block);
    c.moderation_retries = 0;
    CHECK(decide(err(ErrorClass::partial), {}, c, 1.0).action == Action::fail);
    CHECK(decide(err(ErrorClass::moderation), {}, c, 1.0).action == Action::block);
}

TEST_CASE("invalid_request fails at once; auth and quota pause the provider; local pauses all") {
    RetryConfig c = cfg();
    auto inv = decide(err(ErrorClass::invalid_request), {}, c, 0.3);
    CHECK(inv.action == Action::fail);
    CHECK_FALSE(inv.counts_attempt);

    for (auto cls : {ErrorClass::auth, ErrorClass::quota}) {
        auto d = decide(err(cls), {5, 99, 2}, c, 0.3);
        CHECK(d.action == Action::pause_provider);
        CHECK(d.delay_s == doctest::Approx(c.auth_probe_s));
        CHECK_FALSE(d.counts_attempt);
        CHECK_FALSE(d.counts_rate_limit);
        CHECK_FALSE(d.counts_moderation);
    }

    auto local = decide(err(ErrorClass::local), {5, 0, 0}, c, 0.3);
    CHECK(local.action == Action::pause_local);
    CHECK(local.delay_s == doctest::Approx(30));
    CHECK_FALSE(local.counts_attempt);
    c.max_delay_s = 10;
    CHECK(decide(err(ErrorClass::local), {}, c, 0.3).delay_s == doctest::Approx(10));
}

TEST_CASE("classify_http: rate limits versus quota") {
    CHECK(classify_http(429, "rate_limit_exceeded",
                        "Rate limit reached for gpt-image-2 on images per minute (IPM)",
                        false) == ErrorClass::rate_limited);
    CHECK(classify_http(429, "", "", false) == ErrorClass::rate_limited);
    CHECK(classify_http(429, "insufficient_quota",
                        "You exceeded your current quota, please check your plan and billing "
                        "details.",
                        false) == ErrorClass::quota);
    CHECK(classify_http(429, "billing_hard_limit_reached", "", false) == ErrorClass::quota);
    CHECK(classify_http(429, "", "Billing limit hit", false) == ErrorClass::quota);
    CHECK(classify_http(429, "", "daily QUOTA exhausted", false) == ErrorClass::quota);
    // Google per-minute limits say "quota" but are rate limits.
    CHECK(classify_http(429, "RESOURCE_EXHAUSTED",
                        "Quota exceeded for quota metric 'Generate requests' per minute",
                        false) == ErrorClass::rate_limited);
    CHECK(classify_http(429, "RESOURCE_EXHAUSTED",
                        "Resource has been exhausted (e.g. check quota).",
                        false) == ErrorClass::rate_limited);
    CHECK(classify_http(503, "", "busy", true) == ErrorClass::rate_limited);
    CHECK(classify_http(503, "", "busy", false) == ErrorClass::server);
}

TEST_CASE("classify_http: timeouts, servers, auth") {
    CHECK(classify_http(408, "", "", false) == ErrorClass::timeout);
    for (int s : {500, 502, 503, 520, 599})
        CHECK(classify_http(s, "", "", false) == ErrorClass::server);
    CHECK(classify_http(401, "invalid_api_key", "Incorrect API key", false) == ErrorClass::auth);
    CHECK(classify_http(401, "UNAUTHENTICATED", "", false) == ErrorClass::auth);
    CHECK(classify_http(403, "PERMISSION_DENIED", "no access", false) == ErrorClass::auth);
    CHECK(classify_http(403, "", "billing not active", false) == ErrorClass::quota);
    CHECK(classify_http(403, "", "Quota exceeded", false) == ErrorClass::quota);
    CHECK(classify_http(400, "billing_hard_limit_reached", "", false) == ErrorClass::quota);
}

TEST_CASE("classify_http: moderation versus invalid requests") {
    CHECK(classify_http(400, "moderation_blocked", "", false) == ErrorClass::moderation);
    CHECK(classify_http(400, "content_policy_violation", "", false) == ErrorClass::moderation);
    CHECK(classify_http(400, "", "Your request was rejected by our safety system", false) ==
          ErrorClass::moderation);
    CHECK(classify_http(422, "", "violates our Content Policy", false) == ErrorClass::moderation);
    CHECK(classify_http(403, "", "blocked by moderation", false) == ErrorClass::moderation);
    CHECK(classify_http(400, "INVALID_ARGUMENT",
                        "This prompt contains sensitive words that violate Google's Responsible "
                        "AI practices",
                        false) == ErrorClass::moderation);
    CHECK(classify_http(404, "moderation_blocked", "", false) == ErrorClass::invalid_request);
    CHECK(classify_http(400, "INVALID_ARGUMENT", "bad size", false) == ErrorClass::invalid_request);
    for (int s : {400, 404, 413, 422, 409})
        CHECK(classify_http(s, "", "nope", false) == ErrorClass::invalid_request);
}

TEST_CASE("classify_http: anything that is not an error status is a bad response") {
    for (int s : {0, 100, 200, 204, 301, 302, 304, 600})
        CHECK(classify_http(s, "", "", false) == ErrorClass::bad_response);
}

namespace {
Error timeout_err(int http, std::string message) {
    Error e;
    e.cls = ErrorClass::timeout;
    e.http_status = http;
    e.message = std::move(message);
    return e;
}
}  // namespace

TEST_CASE("classify_http: a gateway timeout (504, Cloudflare 524) is a timeout") {
    CHECK(classify_http(504, "", "Gateway Time-out", false) == ErrorClass::timeout);
    CHECK(classify_http(524, "", "A timeout occurred", false) == ErrorClass::timeout);
    CHECK(classify_http(504, "", "", true) == ErrorClass::timeout);
}

TEST_CASE("may_be_billed: a response deadline or a gateway timeout, not a connect deadline") {
    CHECK(may_be_billed(timeout_err(0, "response deadline of 300 s passed")));
    CHECK(may_be_billed(timeout_err(504, "Gateway Time-out")));
    CHECK(may_be_billed(timeout_err(524, "A timeout occurred")));
    CHECK_FALSE(may_be_billed(timeout_err(0, "connect deadline of 30 s passed (1.2.3.4:443)")));
    CHECK_FALSE(may_be_billed(timeout_err(408, "Request Timeout")));
    Error server;
    server.cls = ErrorClass::server;
    server.http_status = 500;
    CHECK_FALSE(may_be_billed(server));
}

TEST_CASE("a timeout that may have been billed counts against max_timeouts, not the attempts") {
    RetryConfig c = cfg();  // max_timeouts 2
    CHECK(c.max_timeouts == 2);
    auto billed = timeout_err(0, "response deadline of 300 s passed");
    auto d = decide(billed, RequestCounters{4, 0, 0, 0}, c, 1.0);
    CHECK(d.action == Action::retry);
    CHECK(d.counts_timeout);
    CHECK_FALSE(d.counts_attempt);
    CHECK(d.delay_s == doctest::Approx(2));  // backoff(timeouts + 1)
    // The second timeout of a request is its last: it fails.
    auto last = decide(timeout_err(504, "Gateway Time-out"), RequestCounters{0, 0, 0, 1}, c, 1.0);
    CHECK(last.action == Action::fail);
    CHECK(last.counts_timeout);
    c.max_timeouts = 3;
    CHECK(decide(billed, RequestCounters{0, 0, 0, 1}, c, 1.0).action == Action::retry);
    CHECK(decide(billed, RequestCounters{0, 0, 0, 2}, c, 1.0).action == Action::fail);
}

TEST_CASE("a network failure after the request was sent may have been billed: like a timeout") {
    RetryConfig c = cfg();  // max_timeouts 2
    Error after = err(ErrorClass::network);
    after.code = std::string(kAfterSend);
    after.message = "127.0.0.1:80 closed the connection without an answer";
    CHECK(may_be_billed(after));
    auto d = decide(after, RequestCounters{4, 0, 0, 0}, c, 1.0);
    CHECK(d.action == Action::retry);
    CHECK(d.counts_timeout);
    CHECK_FALSE(d.counts_attempt);
    CHECK(decide(after, RequestCounters{0, 0, 0, 1}, c, 1.0).action == Action::fail);
    // Before the request was sent (refused, reset while writing): an ordinary attempt.
    Error before = err(ErrorClass::network);
    CHECK_FALSE(may_be_billed(before));
    auto b = decide(before, RequestCounters{0, 0, 0, 5}, c, 1.0);
    CHECK(b.counts_attempt);
    CHECK_FALSE(b.counts_timeout);
    CHECK(b.action == Action::retry);
}

TEST_CASE("a connect timeout or a 408 was not billed: it uses an attempt like a network error") {
    RetryConfig c = cfg();
    for (const auto& e : {timeout_err(0, "connect deadline of 30 s passed (1.2.3.4:443)"),
                          timeout_err(408, "Request Timeout")}) {
        CAPTURE(e.message);
        auto d = decide(e, RequestCounters{0, 0, 0, 5}, c, 1.0);
        CHECK(d.action == Action::retry);
        CHECK(d.counts_attempt);
        CHECK_FALSE(d.counts_timeout);
        CHECK(decide(e, RequestCounters{5, 0, 0, 0}, c, 1.0).action == Action::fail);
    }
}

TEST_CASE("a provider failure (the lane's breaker run) uses its own budget, not the attempts") {
    RetryConfig c = cfg();
    c.max_provider_failures = 3;
    Error e = err(ErrorClass::server);
    e.http_status = 503;
    auto d = decide_provider_failure(e, RequestCounters{5, 0, 0, 0, 0}, c, 1.0);
    CHECK(d.action == Action::retry);
    CHECK(d.counts_provider_failure);
    CHECK_FALSE(d.counts_attempt);
    CHECK(d.delay_s == doctest::Approx(2));
    // The lane's breaker backs off; the request only waits the base delay.
    CHECK(decide_provider_failure(e, RequestCounters{0, 0, 0, 0, 1}, c, 0.0).delay_s ==
          doctest::Approx(1));
    auto last = decide_provider_failure(e, RequestCounters{0, 0, 0, 0, 2}, c, 1.0);
    CHECK(last.action == Action::fail);
    CHECK(last.counts_provider_failure);
    // Retry-After stays a floor.
    e.retry_after_s = 20.0;
    CHECK(decide_provider_failure(e, {}, c, 1.0).delay_s == doctest::Approx(20));
}
