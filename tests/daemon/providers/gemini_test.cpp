// The gemini API style (generateContent): request building and answer parsing on bodies shaped
// like the ones Google documents for the Gemini image models.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/gemini.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
namespace json = boost::json;

namespace {

ProviderConfig gemini_provider() {
    ProviderConfig p;
    p.name = "gemini";
    p.api = "gemini";
    p.base_url = "https://generativelanguage.googleapis.com/v1beta";
    p.auth = "x-goog-api-key";
    return p;
}

GenerationRequest request(json::object params = {}) {
    return {"gemini-2.5-flash-image", "a red fox in snow", 1, std::move(params)};
}

HttpResponse ok(std::string body) {
    return {200, {{"Content-Type", "application/json"}}, std::move(body)};
}

const std::string kPng = make_png(8, 8, 7);

std::string image_part(const std::string& bytes = kPng, const std::string& mime = "image/png") {
    return R"({"inlineData":{"mimeType":")" + mime + R"(","data":")" + base64_encode(bytes) +
           R"("}})";
}

const std::string kUsage =
    R"("usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":1290,)"
    R"("totalTokenCount":1302,"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}],)"
    R"("candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":1290}]})";

// An answer with one candidate holding parts, as the API sends it.
std::string answer(const std::string& parts, const std::string& finish = "STOP") {
    return R"({"candidates":[{"content":{"parts":[)" + parts +
           R"(],"role":"model"},"finishReason":")" + finish + R"(","index":0}],)" + kUsage +
           R"(,"modelVersion":"gemini-2.5-flash-image","responseId":"abc123"})";
}

}  // namespace

TEST_CASE("gemini is a registered API style") {
    const ProviderApi* api = find_provider_api("gemini");
    REQUIRE(api);
    CHECK(api->name == "gemini");
    CHECK((api->build == &build_gemini));
    CHECK((api->parse == &parse_gemini));
    CHECK((api->parse_owned == &parse_gemini_owned));
}

TEST_CASE("gemini request: URL, x-goog-api-key, user text part, image modalities") {
    auto http = build_gemini(request(), gemini_provider(), "g-key");
    CHECK(http.method == "POST");
    CHECK(http.url ==
          "https://generativelanguage.googleapis.com/v1beta/models/"
          "gemini-2.5-flash-image:generateContent");
    CHECK(find_header(http.headers, "x-goog-api-key") == "g-key");
    CHECK(find_header(http.headers, "Authorization").empty());
    CHECK(find_header(http.headers, "Content-Type") == "application/json");

    auto body = json::parse(http.body).as_object();
    CHECK(body.size() == 2);
    auto& contents = body.at("contents").as_array();
    REQUIRE(contents.size() == 1);
    CHECK(contents[0].at("role") == "user");
    auto& parts = contents[0].at("parts").as_array();
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].at("text") == "a red fox in snow");
    auto& gc = body.at("generationConfig").as_object();
    CHECK(gc.at("responseModalities") == json::array{"TEXT", "IMAGE"});
    CHECK_FALSE(gc.contains("imageConfig"));  // nothing asked: the model's defaults
    CHECK_FALSE(gc.contains("candidateCount"));
}

TEST_CASE("gemini request: aspect_ratio and image_size go to imageConfig") {
    auto http = build_gemini(request({{"aspect_ratio", "21:9"}, {"image_size", "4K"}}),
                             gemini_provider(), "k");
    auto gc = json::parse(http.body).as_object().at("generationConfig").as_object();
    auto& ic = gc.at("imageConfig").as_object();
    CHECK(ic.at("aspectRatio") == "21:9");
    CHECK(ic.at("imageSize") == "4K");
    CHECK(ic.size() == 2);
    CHECK_FALSE(gc.contains("aspect_ratio"));
    CHECK_FALSE(gc.contains("image_size"));
}

TEST_CASE("gemini request: native params pass through") {
    json::object params{
        {"aspect_ratio", "16:9"},
        {"temperature", 0.4},
        {"seed", 42},
        {"responseModalities", json::array{"IMAGE"}},
        {"imageConfig", json::object{{"personGeneration", "ALLOW_ADULT"}}},
        {"generationConfig", json::object{{"topP", 0.9}}},
        {"safetySettings", json::array{json::object{{"category", "HARM_CATEGORY_HARASSMENT"},
                                                    {"threshold", "BLOCK_ONLY_HIGH"}}}},
        {"systemInstruction", json::object{{"parts", json::array{json::object{{"text", "x"}}}}}}};
    auto body = json::parse(build_gemini(request(params), gemini_provider(), "k").body).as_object();
    // Request-level fields of generateContent stay at the top.
    CHECK(body.at("safetySettings").as_array().size() == 1);
    CHECK(body.contains("systemInstruction"));
    auto& gc = body.at("generationConfig").as_object();
    CHECK(gc.at("temperature") == 0.4);
    CHECK(gc.at("seed") == 42);
    CHECK(gc.at("topP") == 0.9);
    CHECK(gc.at("responseModalities") == json::array{"IMAGE"});  // a job may ask images only
    auto& ic = gc.at("imageConfig").as_object();
    CHECK(ic.at("aspectRatio") == "16:9");
    CHECK(ic.at("personGeneration") == "ALLOW_ADULT");
    CHECK(body.size() == 4);
}

TEST_CASE("gemini request: bearer auth for relays, Vertex AI URL shape") {
    auto prov = gemini_provider();
    prov.auth = "bearer";
    prov.base_url =
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/"
        "publishers/google/";
    auto http = build_gemini(request(), prov, "ya29.token");
    CHECK(http.url ==
          "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/"
          "publishers/google/models/gemini-2.5-flash-image:generateContent");
    CHECK(find_header(http.headers, "Authorization") == "Bearer ya29.token");
    CHECK(find_header(http.headers, "x-goog-api-key").empty());

    auto keyless = build_gemini(request(), gemini_provider(), "");
    CHECK(find_header(keyless.headers, "x-goog-api-key").empty());
}

TEST_CASE("gemini answer: the image from inlineData, text kept, usage recorded") {
    auto parsed = parse_gemini(
        ok(answer(R"({"text":"Here is a fox in the snow."},)" + image_part())), request());
    REQUIRE_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].bytes == kPng);
    CHECK(parsed.images[0].claimed_mime == "image/png");
    CHECK(parsed.images[0].revised_prompt == "Here is a fox in the snow.");
    auto usage = json::parse(parsed.usage_json).as_object();
    CHECK(usage.at("promptTokenCount") == 12);
    CHECK(usage.at("candidatesTokenCount") == 1290);
    CHECK(usage.at("totalTokenCount") == 1302);
}

TEST_CASE("gemini answer: thought parts are not the result") {
    std::string other = make_png(4, 4, 9);
    auto body = answer(R"({"text":"drafting","thought":true},)" +
                       std::string(R"({"inlineData":{"mimeType":"image/png","data":")") +
                       base64_encode(other) + R"("},"thought":true},)" + image_part());
    auto parsed = parse_gemini(ok(body), request());
    REQUIRE_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].bytes == kPng);
    CHECK(parsed.images[0].revised_prompt.empty());
}

TEST_CASE("gemini answer: the owned parser reads large images the same way") {
    std::string big = make_png(400, 400, 3);
    std::string body = answer(R"({"text":"big"},)" + image_part(big, "image/jpeg"));
    auto parsed = parse_gemini_owned(ok(body), request());
    REQUIRE_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].bytes == big);
    CHECK(parsed.images[0].claimed_mime == "image/jpeg");
    CHECK(parsed.images[0].revised_prompt == "big");
    CHECK_FALSE(parsed.usage_json.empty());
}

TEST_CASE("gemini answer: a blocked prompt is moderation with the block reason") {
    std::string body =
        R"({"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},)"
        R"("usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"modelVersion":"m"})";
    auto parsed = parse_gemini(ok(body), request());
    REQUIRE(parsed.error);
    CHECK(parsed.error->cls == ErrorClass::moderation);
    CHECK(parsed.error->code == "PROHIBITED_CONTENT");
    CHECK(parsed.error->http_status == 200);
    CHECK(parsed.error->message.find("PROHIBITED_CONTENT") != std::string::npos);
    CHECK(parsed.images.empty());
    CHECK(json::parse(parsed.usage_json).at("promptTokenCount") == 9);

    // blockReasonMessage, when given, is kept.
    auto with_message = parse_gemini(
        ok(R"({"promptFeedback":{"blockReason":"OTHER","blockReasonMessage":"not allowed"}})"),
        request());
    REQUIRE(with_message.error);
    CHECK(with_message.error->cls == ErrorClass::moderation);
    CHECK(with_message.error->code == "OTHER");
    CHECK(with_message.error->message.find("not allowed") != std::string::npos);
}

TEST_CASE("gemini answer: a refusal finish reason without an image is moderation") {
    for (std::string reason :
         {"SAFETY", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "BLOCKLIST", "RECITATION", "SPII",
          "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}) {
        INFO(reason);
        std::string body = R"({"candidates":[{"finishReason":")" + reason +
                           R"(","finishMessage":"Unable to show the generated image.",)"
                           R"("index":0}],)" +
                           kUsage + "}";
        auto parsed = parse_gemini(ok(body), request());
        REQUIRE(parsed.error);
        CHECK(parsed.error->cls == ErrorClass::moderation);
        CHECK(parsed.error->code == reason);
        CHECK(parsed.error->message.find(reason) != std::string::npos);
        CHECK(parsed.error->message.find("Unable to show") != std::string::npos);
        CHECK_FALSE(parsed.usage_json.empty());
    }
    // The refusal may come with a text part that says why.
    auto with_text =
        parse_gemini(ok(answer(R"({"text":"I can't draw that."})", "IMAGE_SAFETY")), request());
    REQUIRE(with_text.error);
    CHECK(with_text.error->cls == ErrorClass::moderation);
    CHECK(with_text.error->message.find("I can't draw that.") != std::string::npos);
}

TEST_CASE("gemini answer: a text-only STOP is bad_response, so are other finish reasons") {
    auto parsed =
        parse_gemini(ok(answer(R"({"text":"Sure! What style would you like?"})")), request());
    REQUIRE(parsed.error);
    CHECK(parsed.error->cls == ErrorClass::bad_response);
    CHECK(parsed.error->code == "no_image");
    CHECK(parsed.error->message.find("STOP") != std::string::npos);
    CHECK(parsed.error->message.find("What style") != std::string::npos);
    CHECK_FALSE(parsed.usage_json.empty());

    for (std::string reason : {"NO_IMAGE", "IMAGE_OTHER", "OTHER", "MAX_TOKENS"}) {
        INFO(reason);
        auto other = parse_gemini(
            ok(R"({"candidates":[{"finishReason":")" + reason + R"(","index":0}]})"), request());
        REQUIRE(other.error);
        CHECK(other.error->cls == ErrorClass::bad_response);
        CHECK(other.error->message.find(reason) != std::string::npos);
    }

    auto none = parse_gemini(ok(R"({"candidates":[]})"), request());
    REQUIRE(none.error);
    CHECK(none.error->cls == ErrorClass::bad_response);
}

TEST_CASE("gemini answer: an image with a refusal reason is still kept") {
    auto parsed = parse_gemini(ok(answer(image_part(), "IMAGE_SAFETY")), request());
    CHECK_FALSE(parsed.error);
    CHECK(parsed.images.size() == 1);
}

TEST_CASE("gemini answer: invalid base64 and malformed bodies are bad_response") {
    auto bad = parse_gemini(
        ok(answer(R"({"inlineData":{"mimeType":"image/png","data":"!!!not-base64!!!"}})")),
        request());
    REQUIRE(bad.error);
    CHECK(bad.error->cls == ErrorClass::bad_response);
    CHECK(bad.error->code == "invalid_base64");

    auto not_json = parse_gemini(ok("{\"candidates\": [ not json"), request());
    REQUIRE(not_json.error);
    CHECK(not_json.error->cls == ErrorClass::bad_response);
    CHECK(not_json.error->code == "not_json");
}

TEST_CASE("gemini answer: Google error bodies are classified like the google style") {
    auto err = [](int status, const std::string& gstatus, const std::string& message) {
        return HttpResponse{status,
                            {{"Content-Type", "application/json"}},
                            R"({"error":{"code":)" + std::to_string(status) + R"(,"message":")" +
                                message + R"(","status":")" + gstatus + R"("}})"};
    };
    auto r429 =
        parse_gemini(err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted"), request());
    REQUIRE(r429.error);
    CHECK(r429.error->cls == ErrorClass::rate_limited);
    CHECK(r429.error->code == "RESOURCE_EXHAUSTED");

    auto r400 = parse_gemini(err(400, "INVALID_ARGUMENT", "Unsupported aspect ratio"), request());
    REQUIRE(r400.error);
    CHECK(r400.error->cls == ErrorClass::invalid_request);
    CHECK(r400.error->message == "Unsupported aspect ratio");

    auto r403 = parse_gemini(err(403, "PERMISSION_DENIED", "API key not valid"), request());
    REQUIRE(r403.error);
    CHECK(r403.error->cls == ErrorClass::auth);

    auto r500 = parse_gemini(err(500, "INTERNAL", "An internal error has occurred"), request());
    REQUIRE(r500.error);
    CHECK(r500.error->cls == ErrorClass::server);

    // A relay's error inside a 200.
    auto in_body = parse_gemini(
        ok(R"({"error":{"code":400,"status":"INVALID_ARGUMENT","message":"bad"}})"), request());
    REQUIRE(in_body.error);
    CHECK(in_body.error->message == "bad");
}
