#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <chrono>

#include "daemon/providers/provider.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;

namespace {

HttpResponse answer(int status, std::string body, Headers headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

// 2025-01-01T00:00:00Z
const auto kNow = std::chrono::system_clock::from_time_t(1735689600);

}  // namespace

TEST_CASE("find_provider_api knows the three API styles") {
    for (std::string_view name : {"openai", "google", "openai-chat"}) {
        const ProviderApi* api = find_provider_api(name);
        REQUIRE(api);
        CHECK(api->name == name);
        CHECK(static_cast<bool>(api->build));
        CHECK(static_cast<bool>(api->parse));
    }
    CHECK(find_provider_api("anthropic") == nullptr);
    CHECK(find_provider_api("") == nullptr);
}

TEST_CASE("OpenAI 429 rate limit with Retry-After seconds") {
    auto err = error_from_response(
        answer(
            429,
            R"({"error":{"message":"Rate limit reached for images per minute","type":"requests","param":null,"code":"rate_limit_exceeded"}})",
            {{"Content-Type", "application/json"}, {"Retry-After", "20"}}),
        kNow);
    CHECK(err.cls == ErrorClass::rate_limited);
    CHECK(err.code == "rate_limit_exceeded");
    CHECK(err.http_status == 429);
    CHECK(err.message == "Rate limit reached for images per minute");
    REQUIRE(err.retry_after_s);
    CHECK(*err.retry_after_s == doctest::Approx(20));
}

TEST_CASE("OpenAI 429 insufficient_quota is a quota error") {
    auto err = error_from_response(
        answer(
            429,
            R"({"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})"),
        kNow);
    CHECK(err.cls == ErrorClass::quota);
    CHECK(err.code == "insufficient_quota");
    CHECK_FALSE(err.retry_after_s);
}

TEST_CASE("OpenAI 400 moderation_blocked is moderation with the provider's message") {
    auto err = error_from_response(
        answer(
            400,
            R"({"error":{"message":"Your request was rejected by the safety system.","type":"image_generation_user_error","param":null,"code":"moderation_blocked"}})"),
        kNow);
    CHECK(err.cls == ErrorClass::moderation);
    CHECK(err.code == "moderation_blocked");
    CHECK(err.message == "Your request was rejected by the safety system.");
}

TEST_CASE("OpenAI error with a null code uses the type and names the param") {
    auto err = error_from_response(
        answer(
            400,
            R"({"error":{"code":null,"type":"invalid_request_error","message":"Invalid size '999x999'.","param":"size"}})"),
        kNow);
    CHECK(err.cls == ErrorClass::invalid_request);
    CHECK(err.code == "invalid_request_error");
    CHECK(err.message == "Invalid size '999x999'. (param: size)");
}

TEST_CASE("401 and 403 are auth errors") {
    CHECK(
        error_from_response(
            answer(
                401,
                R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}})"),
            kNow)
            .cls == ErrorClass::auth);
    auto g = error_from_response(
        answer(
            403,
            R"({"error":{"code":403,"message":"Permission denied on resource project x.","status":"PERMISSION_DENIED"}})"),
        kNow);
    CHECK(g.cls == ErrorClass::auth);
    CHECK(g.code == "PERMISSION_DENIED");
}

TEST_CASE("Google RESOURCE_EXHAUSTED uses the status as code") {
    auto err = error_from_response(
        answer(
            429,
            R"({"error":{"code":429,"message":"Quota exceeded for quota metric 'Online prediction requests per base model per minute per region per base_model'","status":"RESOURCE_EXHAUSTED"}})"),
        kNow);
    CHECK(err.code == "RESOURCE_EXHAUSTED");
    CHECK(err.cls == ErrorClass::rate_limited);
    CHECK(err.message.starts_with("Quota exceeded for quota metric"));
}

TEST_CASE("text/plain 429 with Retry-After") {
    auto err = error_from_response(answer(429, "Too Many Requests\n",
                                          {{"Content-Type", "text/plain"}, {"retry-after", " 7 "}}),
                                   kNow);
    CHECK(err.cls == ErrorClass::rate_limited);
    CHECK(err.code == "http_429");
    CHECK(err.message == "Too Many Requests");
    REQUIRE(err.retry_after_s);
    CHECK(*err.retry_after_s == doctest::Approx(7));
}

TEST_CASE("503 HTML page becomes a short readable message") {
    const std::string html =
        "<html>\r\n<head><title>503 Service Temporarily Unavailable</title>"
        "<style>body { color: red; }</style></head>\r\n<body>\r\n<center><h1>503 Service "
        "Temporarily Unavailable</h1></center>\r\n<hr><center>nginx &amp; co</center>\r\n</body>"
        "\r\n</html>\r\n";
    auto err = error_from_response(answer(503, html, {{"Content-Type", "text/html"}}), kNow);
    CHECK(err.cls == ErrorClass::server);
    CHECK(err.message ==
          "503 Service Temporarily Unavailable 503 Service Temporarily Unavailable nginx & co");
    CHECK_FALSE(err.retry_after_s);

    auto limited = error_from_response(answer(503, html, {{"Retry-After", "30"}}), kNow);
    CHECK(limited.cls == ErrorClass::rate_limited);
}

TEST_CASE("relay error shapes: message, detail, error string, empty body") {
    auto detail = error_from_response(answer(404, R"({"detail":"Not Found"})"), kNow);
    CHECK(detail.cls == ErrorClass::invalid_request);
    CHECK(detail.message == "Not Found");
    auto msg = error_from_response(
        answer(500, R"({"message":"upstream failed","code":"upstream_error"})"), kNow);
    CHECK(msg.cls == ErrorClass::server);
    CHECK(msg.code == "upstream_error");
    CHECK(msg.message == "upstream failed");
    auto str = error_from_response(answer(502, R"({"error":"bad gateway to upstream"})"), kNow);
    CHECK(str.message == "bad gateway to upstream");
    auto empty = error_from_response(answer(502, ""), kNow);
    CHECK(empty.cls == ErrorClass::server);
    CHECK(empty.code == "http_502");
    CHECK(empty.message == "HTTP 502 with an empty body");
}

TEST_CASE("Retry-After forms") {
    SUBCASE("retry-after-ms wins over Retry-After") {
        auto s = retry_after_seconds({{"Retry-After", "10"}, {"retry-after-ms", "1500"}}, kNow);
        REQUIRE(s);
        CHECK(*s == doctest::Approx(1.5));
    }
    SUBCASE("HTTP-date relative to now") {
        auto s = retry_after_seconds({{"Retry-After", "Wed, 01 Jan 2025 00:00:30 GMT"}}, kNow);
        REQUIRE(s);
        CHECK(*s == doctest::Approx(30));
    }
    SUBCASE("obsolete RFC 850 date") {
        auto s = retry_after_seconds({{"Retry-After", "Wednesday, 01-Jan-25 00:01:00 GMT"}}, kNow);
        REQUIRE(s);
        CHECK(*s == doctest::Approx(60));
    }
    SUBCASE("a date in the past means now") {
        auto s = retry_after_seconds({{"Retry-After", "Tue, 31 Dec 2024 23:00:00 GMT"}}, kNow);
        REQUIRE(s);
        CHECK(*s == 0);
    }
    SUBCASE("absent or unreadable") {
        CHECK_FALSE(retry_after_seconds({}, kNow));
        CHECK_FALSE(retry_after_seconds({{"Retry-After", "soon"}}, kNow));
        for (const char* bad :
             {"Wed, 32 Jan 2025 00:00:00 GMT", "Sat, 29 Feb 2025 00:00:00 GMT",
              "Wed, 01 Jan 2025 24:00:00 GMT", "Wed, 01 Jan 2025 00:00:00 UTC",
              "Wed, 01 Foo 2025 00:00:00 GMT", "Wed, 1 Jan 2025 00:00:00 GMT",
              "Wed, 01 Jan 2025 00:00:00 GMT trailing", "Wed, 01 Jan 99999 00:00:00 GMT"}) {
            CAPTURE(bad);
            CHECK_FALSE(retry_after_seconds({{"Retry-After", bad}}, kNow));
        }
    }
    SUBCASE("asctime date") {
        auto s = retry_after_seconds({{"Retry-After", "Wed Jan  1 00:00:30 2025"}}, kNow);
        REQUIRE(s);
        CHECK(*s == doctest::Approx(30));
    }
    SUBCASE("a leap day and a leap second") {
        auto s = retry_after_seconds({{"Retry-After", "Thu, 29 Feb 2024 00:00:00 GMT"}}, kNow);
        REQUIRE(s);
        CHECK(*s == 0);
        s = retry_after_seconds({{"Retry-After", "Wed, 01 Jan 2025 00:00:60 GMT"}}, kNow);
        REQUIRE(s);
        CHECK(*s == doctest::Approx(60));
    }
    SUBCASE("dates outside what a clock can hold: far future held at most a day, past now") {
        // Years beyond 2262 overflowed the nanosecond clock (undefined behaviour).
        for (const char* far : {"Fri, 31 Dec 9999 23:59:59 GMT", "Sun, 01 Jan 2262 00:00:00 GMT",
                                "Wed Dec 31 23:59:59 9999"}) {
            CAPTURE(far);
            auto s = retry_after_seconds({{"Retry-After", far}}, kNow);
            REQUIRE(s);
            CHECK(*s == kMaxRetryAfterS);
        }
        for (const char* old : {"Sat, 01 Jan 1000 00:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
                                "Sunday, 01-Jan-00 00:00:00 GMT"}) {
            CAPTURE(old);
            auto s = retry_after_seconds({{"Retry-After", old}}, kNow);
            REQUIRE(s);
            CHECK(*s == 0);
        }
    }
    SUBCASE("huge delays are held at most a day") {
        for (const char* big : {"1e300", "99999999999999999999", "86401"}) {
            CAPTURE(big);
            auto s = retry_after_seconds({{"Retry-After", big}}, kNow);
            REQUIRE(s);
            CHECK(*s == kMaxRetryAfterS);
            s = retry_after_seconds({{"retry-after-ms", big}}, kNow);
            REQUIRE(s);
            CHECK(*s <= kMaxRetryAfterS);
        }
        auto ms = retry_after_seconds({{"retry-after-ms", "1e300"}}, kNow);
        REQUIRE(ms);
        CHECK(*ms == kMaxRetryAfterS);
    }
    SUBCASE("error_from_response reads the date too") {
        auto err = error_from_response(
            answer(429, "slow down", {{"Retry-After", "Wed, 01 Jan 2025 00:02:00 GMT"}}), kNow);
        REQUIRE(err.retry_after_s);
        CHECK(*err.retry_after_s == doctest::Approx(120));
    }
}

TEST_CASE("body_excerpt is short and cuts at a UTF-8 boundary") {
    std::string long_text;
    for (int i = 0; i < 200; ++i) long_text += "\xe9\x94\x99 ";  // 错, 3 bytes + space
    auto ex = body_excerpt(long_text);
    CHECK(ex.size() <= 300);
    CHECK(ex.ends_with("..."));
    // The byte before "..." ends a complete character (the cut is not inside one).
    std::string head = ex.substr(0, ex.size() - 3);
    CHECK((head.back() == ' ' || head.ends_with("\xe9\x94\x99")));
    CHECK(body_excerpt("  a\n\n  b\t c  ") == "a b c");
    auto err = error_from_response(answer(500, std::string(5000, 'x')), kNow);
    CHECK(err.message.size() <= 300);
}

TEST_CASE("a Latin-1 error page becomes a valid UTF-8 message") {
    const std::string page =
        "<html><head><title>502 Passerelle erron\xe9"
        "e</title></head><body><h1>502 "
        "Passerelle erron\xe9"
        "e</h1><p>r\xe9"
        "essayez \xe0 nouveau</p><hr>nginx</body></html>";
    auto err = error_from_response(answer(502, page, {{"Content-Type", "text/html"}}), kNow);
    CHECK(err.cls == ErrorClass::server);
    CHECK(err.message.find("Passerelle erron\xef\xbf\xbd"
                           "e") != std::string::npos);
    CHECK(err.message.find("\xe0") == std::string::npos);
    CHECK(valid_utf8(err.message) == err.message);
}

TEST_CASE("valid_utf8 replaces each invalid byte and NUL with U+FFFD") {
    CHECK(valid_utf8("plain") == "plain");
    CHECK(valid_utf8("caf\xc3\xa9 \xe7\x8c\xab") == "caf\xc3\xa9 \xe7\x8c\xab");
    CHECK(valid_utf8("a\xe9z") == "a\xef\xbf\xbdz");
    CHECK(valid_utf8(std::string("a\0b", 3)) ==
          "a\xef\xbf\xbd"
          "b");
    CHECK(valid_utf8("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong
    CHECK(valid_utf8("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
    CHECK(valid_utf8("cut \xe7\x8c") == "cut \xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("an answer that the model does not exist or was retired: invalid_request at once") {
    // OpenAI: 404 model_not_found, for a model that never was and for one retired.
    auto nomodel = error_from_response(
        answer(
            404,
            R"({"error":{"message":"The model `dall-e-3` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}})"),
        kNow);
    CHECK(says_model_gone(nomodel, "dall-e-3"));
    mark_model_gone(nomodel, "gpt-image-2");
    CHECK(nomodel.cls == ErrorClass::invalid_request);
    CHECK(nomodel.code == "model_not_found");
    CHECK(nomodel.message ==
          "The model `dall-e-3` does not exist or you do not have access to it.; the catalog's "
          "replacement: gpt-image-2");

    // "has been deprecated" in a 400 without a code.
    auto gone = error_from_response(
        answer(
            400,
            R"({"error":{"message":"The model `gpt-image-1` has been deprecated, learn more here: https://platform.openai.com/docs/deprecations","type":"invalid_request_error","param":null,"code":null}})"),
        kNow);
    CHECK(says_model_gone(gone, "gpt-image-1"));
    CHECK_FALSE(says_model_gone(gone, "gpt-image-2"));  // about another model

    // Gemini / Imagen: 404 NOT_FOUND naming models/X.
    auto google = error_from_response(
        answer(
            404,
            R"({"error":{"code":404,"message":"models/imagen-3.0-generate-002 is not found for API version v1beta, or is not supported for predict. Call ListModels to see the list of available models and their supported methods.","status":"NOT_FOUND"}})"),
        kNow);
    CHECK(says_model_gone(google, "imagen-3.0-generate-002"));
    mark_model_gone(google, "");
    CHECK(google.message.ends_with("supported methods."));  // no replacement: nothing added

    // A relay (new-api) without a channel for the model: 503 with code model_not_found.
    auto relay = error_from_response(
        answer(
            503,
            R"({"error":{"message":"No available channel for model sora_image under group default","type":"new_api_error","param":"","code":"model_not_found"}})"),
        kNow);
    CHECK(relay.cls == ErrorClass::server);
    CHECK(says_model_gone(relay, "sora_image"));
    mark_model_gone(relay, "gpt-image-2-all");
    CHECK(relay.cls == ErrorClass::invalid_request);

    // An error object in a 200 body (relays).
    auto in_body = error_in_success_body(
        boost::json::parse(
            R"({"error":{"message":"model gpt-image-2-all not found","type":"upstream_error"}})")
            .as_object(),
        200);
    REQUIRE(in_body);
    CHECK(says_model_gone(*in_body, "gpt-image-2-all"));

    // Not about the model: a wrong URL's 404 page, a 500 that names the model, a 401.
    CHECK_FALSE(says_model_gone(error_from_response(answer(404, "404 page not found"), kNow),
                                "gpt-image-2"));
    CHECK_FALSE(says_model_gone(
        error_from_response(
            answer(500, R"({"error":{"message":"gpt-image-2 not found upstream"}})"), kNow),
        "gpt-image-2"));
    CHECK_FALSE(says_model_gone(
        error_from_response(
            answer(
                401,
                R"({"error":{"message":"model gpt-image-2 not found","code":"model_not_found"}})"),
            kNow),
        "gpt-image-2"));
    imgbatch::jobs::Error network;
    network.code = "model_not_found";  // no HTTP answer at all
    CHECK_FALSE(says_model_gone(network, "gpt-image-2"));
}
