#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/google_predict.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
namespace json = boost::json;

namespace {

ProviderConfig google_provider() {
    ProviderConfig p;
    p.name = "google";
    p.api = "google";
    p.base_url = "https://generativelanguage.googleapis.com/v1beta";
    return p;
}

GenerationRequest request(int n, json::object params = {}) {
    return {"imagen-4.0-generate-001", "a red fox in snow", n, std::move(params)};
}

HttpResponse ok(std::string body) {
    return {200, {{"Content-Type", "application/json"}}, std::move(body)};
}

std::string prediction(const std::string& bytes) {
    return R"({"bytesBase64Encoded":")" + base64_encode(bytes) + R"(","mimeType":"image/png"})";
}

}  // namespace

TEST_CASE("predict request: URL, x-goog-api-key, mapped and native parameters") {
    json::object params{
        {"aspect_ratio", "16:9"},   {"image_size", "2K"}, {"person_generation", "dont_allow"},
        {"negativePrompt", "blur"}, {"seed", 42},         {"addWatermark", false}};
    auto http = build_google_predict(request(3, params), google_provider(), "g-key");
    CHECK(http.method == "POST");
    CHECK(http.url ==
          "https://generativelanguage.googleapis.com/v1beta/models/"
          "imagen-4.0-generate-001:predict");
    CHECK(find_header(http.headers, "x-goog-api-key") == "g-key");
    CHECK(find_header(http.headers, "Authorization").empty());
    CHECK(find_header(http.headers, "Content-Type") == "application/json");

    auto body = json::parse(http.body).as_object();
    CHECK(body.size() == 2);
    auto& instances = body.at("instances").as_array();
    REQUIRE(instances.size() == 1);
    CHECK(instances[0].as_object().at("prompt") == "a red fox in snow");
    auto& p = body.at("parameters").as_object();
    CHECK(p.at("sampleCount") == 3);
    CHECK(p.at("aspectRatio") == "16:9");
    CHECK(p.at("sampleImageSize") == "2K");
    CHECK(p.at("personGeneration") == "dont_allow");
    CHECK(p.at("negativePrompt") == "blur");
    CHECK(p.at("seed") == 42);
    CHECK(p.at("addWatermark") == false);
    CHECK_FALSE(p.contains("aspect_ratio"));
    CHECK_FALSE(p.contains("image_size"));
    CHECK(p.size() == 7);
}

TEST_CASE("relays: bearer auth and a configurable image size key") {
    auto prov = google_provider();
    prov.base_url = "https://relay.example.com/v1beta/";
    prov.auth = "bearer";
    prov.image_size_key = "imageSize";
    auto http = build_google_predict(request(1, {{"image_size", "1K"}}), prov, "rk");
    CHECK(http.url == "https://relay.example.com/v1beta/models/imagen-4.0-generate-001:predict");
    CHECK(find_header(http.headers, "Authorization") == "Bearer rk");
    CHECK(find_header(http.headers, "x-goog-api-key").empty());
    auto p = json::parse(http.body).as_object().at("parameters").as_object();
    CHECK(p.at("imageSize") == "1K");
    CHECK_FALSE(p.contains("sampleImageSize"));

    auto keyless = build_google_predict(request(1), google_provider(), "");
    CHECK(find_header(keyless.headers, "x-goog-api-key").empty());
}

TEST_CASE("parse predictions into images") {
    std::string a = make_png(4, 4, 1), b = make_png(4, 4, 2);
    auto parsed = parse_google_predict(
        ok(R"({"predictions":[)" + prediction(a) + "," + prediction(b) + "]}"), request(2));
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].bytes == a);
    CHECK(parsed.images[0].claimed_mime == "image/png");
    CHECK(parsed.images[1].bytes == b);
    CHECK(parsed.filtered == 0);
}

TEST_CASE("partial: some images filtered by RAI") {
    auto parsed = parse_google_predict(
        ok(R"({"predictions":[)" + prediction(make_png(4, 4, 1)) +
           R"(,{"raiFilteredReason":"Unable to show generated images. Your current safety filter threshold prohibited one or more images."}]})"),
        request(2));
    CHECK_FALSE(parsed.error);
    CHECK(parsed.images.size() == 1);
    CHECK(parsed.filtered == 1);
    CHECK(parsed.filtered_reason.find("safety filter threshold") != std::string::npos);
}

TEST_CASE("everything filtered is moderation rai_filtered") {
    SUBCASE("empty answer") {
        auto parsed = parse_google_predict(ok("{}"), request(4));
        REQUIRE(parsed.error);
        CHECK(parsed.error->cls == ErrorClass::moderation);
        CHECK(parsed.error->code == "rai_filtered");
        CHECK(parsed.error->message == "all images were filtered by the provider's safety filters");
        CHECK(parsed.images.empty());
    }
    SUBCASE("only filtered items, with the reason") {
        auto parsed = parse_google_predict(
            ok(R"({"predictions":[{"raiFilteredReason":"Photorealistic children filtered."},{"raiFilteredReason":"Photorealistic children filtered."}]})"),
            request(2));
        REQUIRE(parsed.error);
        CHECK(parsed.error->cls == ErrorClass::moderation);
        CHECK(parsed.error->code == "rai_filtered");
        CHECK(parsed.error->message == "Photorealistic children filtered.");
        CHECK(parsed.filtered == 2);
    }
    SUBCASE("only prompt safety attributes") {
        auto parsed = parse_google_predict(
            ok(R"({"predictions":[{"contentType":"Positive Prompt","safetyAttributes":{"categories":[],"scores":[]}}]})"),
            request(1));
        REQUIRE(parsed.error);
        CHECK(parsed.error->cls == ErrorClass::moderation);
        CHECK(parsed.filtered == 0);
    }
}

TEST_CASE("RESOURCE_EXHAUSTED and other HTTP errors") {
    auto parsed = parse_google_predict(
        {429,
         {},
         R"({"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}})"},
        request(1));
    REQUIRE(parsed.error);
    CHECK(parsed.error->cls == ErrorClass::rate_limited);
    CHECK(parsed.error->code == "RESOURCE_EXHAUSTED");
    CHECK(parsed.error->http_status == 429);

    auto bad = parse_google_predict(
        {400,
         {},
         R"({"error":{"code":400,"message":"Image generation failed with the following error: The prompt could not be submitted.","status":"INVALID_ARGUMENT"}})"},
        request(1));
    REQUIRE(bad.error);
    CHECK(bad.error->cls == ErrorClass::invalid_request);
    CHECK(bad.error->code == "INVALID_ARGUMENT");
}

TEST_CASE("malformed answers and bad base64 are bad_response") {
    auto not_json = parse_google_predict(ok("predictions: yes"), request(1));
    REQUIRE(not_json.error);
    CHECK(not_json.error->cls == ErrorClass::bad_response);

    auto bad = parse_google_predict(
        ok(R"({"predictions":[{"bytesBase64Encoded":"***","mimeType":"image/png"}]})"), request(1));
    REQUIRE(bad.error);
    CHECK(bad.error->cls == ErrorClass::bad_response);
    CHECK(bad.error->message == "image 1: invalid base64");

    // One bad entry among good ones: the good images are kept.
    auto one_bad = parse_google_predict(
        ok(R"({"predictions":[)" + prediction("first") +
           R"(,{"bytesBase64Encoded":"***","mimeType":"image/png"},)" + prediction("third") + "]}"),
        request(3));
    CHECK_FALSE(one_bad.error);
    CHECK(one_bad.item_error == "image 2: invalid base64");
    REQUIRE(one_bad.images.size() == 2);
    CHECK(one_bad.images[0].bytes == "first");
    CHECK(one_bad.images[1].bytes == "third");

    auto junk = parse_google_predict(ok(R"({"predictions":[)" + prediction("not an image") + "]}"),
                                     request(1));
    CHECK_FALSE(junk.error);
    REQUIRE(junk.images.size() == 1);
    CHECK(junk.images[0].bytes == "not an image");
}

TEST_CASE("the owned parse gives the same images and frees the answer's text") {
    HttpResponse response = ok(R"({"predictions":[)" + prediction(make_png(4, 4, 1)) + "," +
                               prediction(make_png(4, 4, 2)) + "]}");
    auto owned = parse_google_predict_owned(std::move(response), request(2));
    CHECK(response.body.empty());
    CHECK_FALSE(owned.error);
    REQUIRE(owned.images.size() == 2);
    CHECK(owned.images[1].bytes == make_png(4, 4, 2));
}
