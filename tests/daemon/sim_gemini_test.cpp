// The simulator's generateContent answers (Gemini image models), checked on SimState without a
// socket: the routing, the documented answer shape, and the Gemini fault directives.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "daemon/image.hpp"
#include "daemon/providers/gemini.hpp"
#include "daemon/sim/state.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
namespace json = boost::json;

namespace {

const std::string kPath = "/v1beta/models/gemini-2.5-flash-image:generateContent";

std::string gemini_body(const std::string& prompt, const std::string& image_config = "") {
    std::string gc = R"({"responseModalities":["TEXT","IMAGE"])";
    if (!image_config.empty()) gc += R"(,"imageConfig":)" + image_config;
    gc += "}";
    return R"({"contents":[{"role":"user","parts":[{"text":)" +
           json::serialize(json::string(prompt)) + R"(}]}],"generationConfig":)" + gc + "}";
}

SimAnswer post(SimState& sim, const std::string& body, const std::string& path = kPath,
               const std::string& key = "") {
    SimRequest r;
    r.method = "POST";
    r.target = path;
    r.host = "127.0.0.1:1";
    r.goog_api_key = key;
    r.body = body;
    SimAnswer a = sim.handle(r);
    sim.finished(a);
    return a;
}

json::object json_of(const SimAnswer& a) {
    INFO("body: " << a.body.substr(0, 400));
    return json::parse(a.body).as_object();
}

// What the gemini adapter makes of the sim's answer.
ParsedResponse parsed(const SimAnswer& a) {
    return parse_gemini(HttpResponse{a.status, a.headers, a.body},
                        GenerationRequest{"gemini-2.5-flash-image", "p", 1, {}});
}

}  // namespace

TEST_CASE("sim gemini: generateContent answers one PNG as inlineData, with text and usage") {
    SimState sim(SimOptions{});
    SimAnswer a = post(sim, gemini_body("a red fox"));
    REQUIRE(a.status == 200);
    CHECK(a.images == 1);
    auto o = json_of(a);
    auto& cands = o.at("candidates").as_array();
    REQUIRE(cands.size() == 1);
    CHECK(cands[0].at("finishReason") == "STOP");
    auto& parts = cands[0].at("content").at("parts").as_array();
    CHECK(cands[0].at("content").at("role") == "model");
    int images = 0;
    for (auto& p : parts) {
        if (auto* d = p.as_object().if_contains("inlineData")) {
            ++images;
            CHECK(d->at("mimeType") == "image/png");
            auto bytes = base64_decode(d->at("data").as_string());
            REQUIRE(bytes);
            auto info = sniff_image(*bytes);
            REQUIRE(info);
            CHECK(info->mime == "image/png");
        } else {
            CHECK(p.as_object().contains("text"));
        }
    }
    CHECK(images == 1);
    auto& usage = o.at("usageMetadata").as_object();
    CHECK(usage.at("promptTokenCount").as_int64() > 0);
    CHECK(usage.at("candidatesTokenCount").as_int64() > 0);
    CHECK(usage.at("totalTokenCount").as_int64() ==
          usage.at("promptTokenCount").as_int64() + usage.at("candidatesTokenCount").as_int64());
    // The text part's tokens are listed beside the image's, and add up to the candidates'.
    std::int64_t text_tokens = 0, image_tokens = 0;
    for (auto& d : usage.at("candidatesTokensDetails").as_array()) {
        if (d.at("modality") == "TEXT") text_tokens += d.at("tokenCount").as_int64();
        if (d.at("modality") == "IMAGE") image_tokens += d.at("tokenCount").as_int64();
    }
    CHECK(text_tokens > 0);
    CHECK(image_tokens == 1290);
    CHECK(text_tokens + image_tokens == usage.at("candidatesTokenCount").as_int64());
    CHECK(o.at("modelVersion") == "gemini-2.5-flash-image");

    auto p = parsed(a);
    REQUIRE_FALSE(p.error);
    CHECK(p.images.size() == 1);
    CHECK(!p.images[0].revised_prompt.empty());

    // The Vertex AI path shape is served too.
    SimAnswer v = post(sim, gemini_body("a fox"),
                       "/v1/projects/p/locations/us-central1/publishers/google/models/"
                       "gemini-3-pro-image-preview:generateContent");
    CHECK(v.status == 200);
    CHECK(json_of(v).at("modelVersion") == "gemini-3-pro-image-preview");
}

TEST_CASE("sim gemini: an unsupported aspect ratio or a missing prompt is INVALID_ARGUMENT") {
    SimState sim(SimOptions{});
    SimAnswer bad = post(sim, gemini_body("a fox", R"({"aspectRatio":"7:3"})"));
    CHECK(bad.status == 400);
    auto e = json_of(bad).at("error").as_object();
    CHECK(e.at("code") == 400);
    CHECK(e.at("status") == "INVALID_ARGUMENT");
    CHECK(post(sim, gemini_body("a fox", R"({"aspectRatio":"21:9","imageSize":"2K"})")).status ==
          200);
    CHECK(post(sim, R"({"contents":[]})").status == 400);
}

TEST_CASE("sim gemini: api_key is checked as x-goog-api-key or Bearer") {
    SimOptions opt;
    opt.api_key = "gk";
    SimState sim(opt);
    SimAnswer no = post(sim, gemini_body("fox"));
    CHECK(no.status == 401);
    CHECK(json_of(no).at("error").at("status") == "UNAUTHENTICATED");
    CHECK(post(sim, gemini_body("fox"), kPath, "gk").status == 200);
}

TEST_CASE("sim gemini: #fail=finish:REASON refuses with that finish reason and no image") {
    for (std::string reason : {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT",
                               "IMAGE_PROHIBITED_CONTENT", "RECITATION", "NO_IMAGE"}) {
        INFO(reason);
        SimState sim(SimOptions{});
        SimAnswer a = post(sim, gemini_body("fox #fail=finish:" + reason));
        REQUIRE(a.status == 200);
        CHECK(a.images == 0);
        auto o = json_of(a);
        auto& c = o.at("candidates").as_array().at(0).as_object();
        CHECK(c.at("finishReason").as_string() == reason);
        CHECK(c.contains("finishMessage"));
        CHECK(o.contains("usageMetadata"));
        auto p = parsed(a);
        REQUIRE(p.error);
        CHECK(p.error->cls ==
              (reason == "NO_IMAGE" ? ErrorClass::bad_response : ErrorClass::moderation));
    }
}

TEST_CASE("sim gemini: #fail=blocked:REASON blocks the prompt in promptFeedback") {
    SimState sim(SimOptions{});
    SimAnswer a = post(sim, gemini_body("fox #fail=blocked:PROHIBITED_CONTENT"));
    REQUIRE(a.status == 200);
    auto o = json_of(a);
    CHECK_FALSE(o.contains("candidates"));
    CHECK(o.at("promptFeedback").at("blockReason") == "PROHIBITED_CONTENT");
    CHECK(o.at("usageMetadata").at("promptTokenCount").as_int64() > 0);
    auto p = parsed(a);
    REQUIRE(p.error);
    CHECK(p.error->cls == ErrorClass::moderation);
    CHECK(p.error->code == "PROHIBITED_CONTENT");
}

TEST_CASE("sim gemini: #fail=textonly answers STOP with text and no image") {
    SimState sim(SimOptions{});
    SimAnswer a = post(sim, gemini_body("fox #fail=textonly*1"));
    REQUIRE(a.status == 200);
    CHECK(a.images == 0);
    auto o = json_of(a);
    auto& c = o.at("candidates").as_array().at(0).as_object();
    CHECK(c.at("finishReason") == "STOP");
    auto& parts = c.at("content").at("parts").as_array();
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].as_object().contains("text"));
    auto p = parsed(a);
    REQUIRE(p.error);
    CHECK(p.error->cls == ErrorClass::bad_response);
    CHECK(p.error->code == "no_image");
    // *1: the second call of that prompt succeeds.
    CHECK(post(sim, gemini_body("fox #fail=textonly*1")).images == 1);
}

TEST_CASE("sim gemini: the common fault kinds answer in Google's shape") {
    SimState sim(SimOptions{});
    SimAnswer r429 = post(sim, gemini_body("fox #fail=429"));
    CHECK(r429.status == 429);
    CHECK(json_of(r429).at("error").at("status") == "RESOURCE_EXHAUSTED");
    CHECK(parsed(r429).error->cls == ErrorClass::rate_limited);

    SimAnswer mod = post(sim, gemini_body("fox #fail=moderation"));
    CHECK(mod.status == 200);
    CHECK(parsed(mod).error->cls == ErrorClass::moderation);

    SimAnswer empty = post(sim, gemini_body("fox #fail=empty"));
    CHECK(parsed(empty).error->cls == ErrorClass::bad_response);

    SimAnswer b64 = post(sim, gemini_body("fox #fail=badbase64"));
    CHECK(parsed(b64).error->code == "invalid_base64");

    SimAnswer unknown = post(sim, gemini_body("fox #fail=finish"));
    CHECK(unknown.status == 400);

    auto stats = json::parse(sim.stats_json()).as_object();
    CHECK(stats.at("by_path").at(kPath).as_int64() == 5);
}

TEST_CASE("sim gemini: responseModalities without IMAGE gets text only") {
    SimState sim(SimOptions{});
    std::string body = R"({"contents":[{"role":"user","parts":[{"text":"a fox"}]}],)"
                       R"("generationConfig":{"responseModalities":["TEXT"]}})";
    SimAnswer a = post(sim, body);
    REQUIRE(a.status == 200);
    CHECK(a.images == 0);
    CHECK(parsed(a).error->code == "no_image");
    // Without generationConfig the sim answers with an image, as the image models do.
    CHECK(post(sim, R"({"contents":[{"parts":[{"text":"a fox"}]}]})").images == 1);
}
