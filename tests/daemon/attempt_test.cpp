#include "daemon/engine/attempt.hpp"

#include <doctest/doctest.h>

#include "daemon/image.hpp"

using namespace imgbatch::daemon;
namespace jobs = imgbatch::jobs;
using jobs::ErrorClass;

namespace {

ImageItem image(unsigned seed) {
    ImageItem item;
    item.bytes = make_png(4, 4, seed);
    item.revised_prompt = "r" + std::to_string(seed);
    return item;
}

ParsedResponse answer(int images) {
    ParsedResponse p;
    for (int i = 0; i < images; ++i) p.images.push_back(image(static_cast<unsigned>(i + 1)));
    return p;
}

jobs::ClaimedRequest claimed() {
    jobs::ClaimedRequest r;
    r.request_id = 9;
    r.job_id = 3;
    r.n = 4;
    r.attempt_no = 2;
    r.attempts = 1;
    return r;
}

jobs::RetryConfig retry_config() {
    jobs::RetryConfig c;
    c.max_attempts = 3;
    c.base_delay_s = 2;
    c.max_delay_s = 60;
    c.moderation_retries = 1;
    return c;
}

std::vector<jobs::OutputRecord> outputs(int n) {
    std::vector<jobs::OutputRecord> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)].idx = i;
    return v;
}

}  // namespace

TEST_CASE("check_images: all images valid is no error") {
    auto c = check_images(answer(4), 4);
    CHECK_FALSE(c.error);
    REQUIRE(c.images.size() == 4);
    CHECK(c.images[0].info.ext == "png");
    CHECK(c.images[2].revised_prompt == "r3");
}

TEST_CASE("check_images: more than asked keeps only what was asked") {
    auto c = check_images(answer(5), 2);
    CHECK_FALSE(c.error);
    CHECK(c.images.size() == 2);
}

TEST_CASE("check_images: fewer images is partial and keeps them") {
    auto c = check_images(answer(2), 4);
    REQUIRE(c.error);
    CHECK(c.error->cls == ErrorClass::partial);
    CHECK(c.error->message == "got 2 of 4 images");
    CHECK(c.images.size() == 2);
}

TEST_CASE("check_images: bytes that are no image are bad_response, valid ones kept") {
    auto p = answer(3);
    p.images[1].bytes = "<html>not an image</html>";
    auto c = check_images(std::move(p), 3);
    REQUIRE(c.error);
    CHECK(c.error->cls == ErrorClass::bad_response);
    CHECK(c.error->message == "image 1: not a PNG, JPEG or WebP");
    CHECK(c.images.size() == 2);
}

TEST_CASE("check_images: every image filtered is moderation with the provider's reason") {
    ParsedResponse p;
    p.filtered = 2;
    p.filtered_reason = "person filter";
    auto c = check_images(std::move(p), 2);
    REQUIRE(c.error);
    CHECK(c.error->cls == ErrorClass::moderation);
    CHECK(c.error->message == "person filter");
}

TEST_CASE("check_images: no images and no error is bad_response") {
    auto c = check_images(ParsedResponse{}, 1);
    REQUIRE(c.error);
    CHECK(c.error->cls == ErrorClass::bad_response);
}

TEST_CASE("check_images: a parse error or a download error wins, images kept") {
    auto p = answer(1);
    p.error = jobs::Error{ErrorClass::server, "", 500, "oops", std::nullopt};
    auto c = check_images(std::move(p), 2);
    REQUIRE(c.error);
    CHECK(c.error->cls == ErrorClass::server);
    CHECK(c.images.size() == 1);

    auto q = answer(1);
    q.images.push_back(ImageItem{"", "http://x/2.png", "", ""});  // not downloaded
    auto d = check_images(std::move(q), 2, 200,
                          jobs::Error{ErrorClass::timeout, "download", 0, "slow", std::nullopt});
    REQUIRE(d.error);
    CHECK(d.error->cls == ErrorClass::timeout);
    CHECK(d.images.size() == 1);
}

TEST_CASE("make_completion: success is done and counts the attempt") {
    auto r = make_completion(claimed(), "me", 10, 11, outputs(4), std::nullopt, "{\"t\":1}",
                             retry_config(), 0.5);
    CHECK(r.outcome == "ok");
    CHECK(r.completion.next == jobs::Next::done);
    CHECK(r.completion.request_id == 9);
    CHECK(r.completion.attempt_no == 2);
    CHECK(r.completion.owner == "me");
    CHECK(r.completion.outputs.size() == 4);
    CHECK(r.completion.usage_json == "{\"t\":1}");
    CHECK_FALSE(r.completion.error);
}

TEST_CASE("make_completion: a server error is retried after the backoff") {
    auto r = make_completion(claimed(), "me", 10, 11, {},
                             jobs::Error{ErrorClass::server, "", 500, "x", std::nullopt}, "",
                             retry_config(), 0.0);
    CHECK(r.outcome == "error");
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.completion.not_before > 11);
    CHECK(r.completion.count_attempt);
}

TEST_CASE("make_completion: partial keeps its images and asks for a top-up") {
    auto r = make_completion(
        claimed(), "me", 10, 11, outputs(2),
        jobs::Error{ErrorClass::partial, "partial", 200, "got 2 of 4 images", std::nullopt}, "",
        retry_config(), 0.0);
    CHECK(r.outcome == "partial");
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.completion.outputs.size() == 2);
    CHECK(r.completion.count_moderation);
}

TEST_CASE("make_completion: invalid_request fails at once") {
    auto r =
        make_completion(claimed(), "me", 10, 11, {},
                        jobs::Error{ErrorClass::invalid_request, "bad", 400, "no", std::nullopt},
                        "", retry_config(), 0.0);
    CHECK(r.completion.next == jobs::Next::fail);
}

TEST_CASE("make_completion: auth pauses the provider and uses nothing up") {
    auto r = make_completion(claimed(), "me", 10, 11, {},
                             jobs::Error{ErrorClass::auth, "", 401, "bad key", std::nullopt}, "",
                             retry_config(), 0.0);
    CHECK(r.action == jobs::Action::pause_provider);
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.completion.not_before == doctest::Approx(11));
    CHECK_FALSE(r.completion.count_attempt);
    CHECK_FALSE(r.completion.count_rate_limit);
    CHECK_FALSE(r.completion.count_moderation);
}

TEST_CASE("make_completion: a local error requeues after the delay, nothing counted") {
    auto r = make_completion(
        claimed(), "me", 10, 11, {},
        jobs::Error{ErrorClass::local, "write", 0, "No space left on device", std::nullopt}, "",
        retry_config(), 0.0);
    CHECK(r.action == jobs::Action::pause_local);
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.completion.not_before >= 11);
    CHECK_FALSE(r.completion.count_attempt);
}

TEST_CASE("make_completion: rate_limited waits at least Retry-After") {
    auto r = make_completion(claimed(), "me", 10, 11, {},
                             jobs::Error{ErrorClass::rate_limited, "", 429, "slow down", 30.0}, "",
                             retry_config(), 0.0);
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.delay_s >= 30);
    CHECK(r.completion.not_before >= 41);
    CHECK(r.completion.count_rate_limit);
    CHECK_FALSE(r.completion.count_attempt);
}

TEST_CASE("make_completion: a timeout that may have been billed says so and uses max_timeouts") {
    auto r = make_completion(
        claimed(), "me", 10, 311, {},
        jobs::Error{ErrorClass::timeout, "", 0, "response deadline of 300 s passed", std::nullopt},
        "", retry_config(), 0.0);
    REQUIRE(r.completion.error);
    CHECK(r.completion.error->message ==
          "response deadline of 300 s passed (the provider may have generated and billed this "
          "call)");
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK(r.completion.count_timeout);
    CHECK_FALSE(r.completion.count_attempt);

    auto gateway = make_completion(
        claimed(), "me", 10, 11, {},
        jobs::Error{ErrorClass::timeout, "", 524, "A timeout occurred", std::nullopt}, "",
        retry_config(), 0.0);
    CHECK(gateway.completion.error->message.find("may have generated and billed") !=
          std::string::npos);

    auto connect = make_completion(
        claimed(), "me", 10, 11, {},
        jobs::Error{ErrorClass::timeout, "", 0, "connect deadline of 30 s passed", std::nullopt},
        "", retry_config(), 0.0);
    CHECK(connect.completion.error->message == "connect deadline of 30 s passed");
    CHECK(connect.completion.count_attempt);
    CHECK_FALSE(connect.completion.count_timeout);
}

TEST_CASE("make_completion: a server error blamed on the provider uses no attempt") {
    auto r = make_completion(claimed(), "me", 10, 11, {},
                             jobs::Error{ErrorClass::server, "", 503, "busy", std::nullopt}, "",
                             retry_config(), 0.0);
    CHECK(r.completion.count_attempt);
    REQUIRE(r.if_provider_failure);
    blame_provider(r);
    CHECK(r.completion.next == jobs::Next::retry);
    CHECK_FALSE(r.completion.count_attempt);
    CHECK(r.completion.count_provider_failure);
    CHECK(r.completion.not_before > 11);

    auto inv =
        make_completion(claimed(), "me", 10, 11, {},
                        jobs::Error{ErrorClass::invalid_request, "", 400, "no", std::nullopt}, "",
                        retry_config(), 0.0);
    CHECK_FALSE(inv.if_provider_failure);
}

TEST_CASE("check_images: an entry that decoded to no bytes is a bad image, not a missing one") {
    imgbatch::daemon::ParsedResponse parsed;
    parsed.images.push_back(imgbatch::daemon::ImageItem{});  // e.g. b64_json "  " or "="
    auto checked = imgbatch::daemon::check_images(std::move(parsed), 1);
    REQUIRE(checked.error);
    CHECK(checked.error->cls == imgbatch::jobs::ErrorClass::bad_response);
    CHECK(checked.error->message.find("no image data") != std::string::npos);
}
