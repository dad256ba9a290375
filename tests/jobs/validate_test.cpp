#include "jobs/validate.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <string>

using namespace imgbatch::jobs;

namespace {
const std::vector<ProviderInfo> kProviders = {
    {"openai", "openai", {"gpt-image-1", "dall-e-3", "dall-e-2", "gpt-image-2"}, 4},
    {"relay", "openai", {"gpt-image-2", "sora_image", "imagen-4.0-generate-001"}, 0},
    {"google",
     "google",
     {"imagen-3.0-generate-002", "imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001",
      "local-sd"},
     0},
};

JobSpec job(std::string model, std::string prompt = "a red fox in the snow",
            const char* params = "{}") {
    JobSpec j;
    j.model = std::move(model);
    j.prompt = std::move(prompt);
    j.params = boost::json::parse(params).as_object();
    return j;
}

std::string error_of(const JobSpec& j, const Catalog& c = Catalog::builtin()) {
    auto r = validate_job(j, c, kProviders);
    return r.ok ? "(ok)" : r.error;
}
}  // namespace

TEST_CASE("a valid job resolves its provider and images per request") {
    auto c = Catalog::builtin();
    auto r = validate_job(job("gpt-image-2"), c, kProviders);
    REQUIRE(r.ok);
    CHECK(r.error.empty());
    CHECK(r.ok->provider == "openai");  // first provider serving the model
    CHECK(r.ok->per_request == 4);      // min(model 10, provider 4)

    auto relay = job("gpt-image-2");
    relay.provider = "relay";
    r = validate_job(relay, c, kProviders);
    REQUIRE(r.ok);
    CHECK(r.ok->provider == "relay");
    CHECK(r.ok->per_request == 10);  // provider 0: the model's maximum

    r = validate_job(job("dall-e-3"), c, kProviders);
    REQUIRE(r.ok);
    CHECK(r.ok->per_request == 1);  // min(model 1, provider 4)
    r = validate_job(job("imagen-4.0-generate-001"), c, kProviders);
    REQUIRE(r.ok);
    CHECK(r.ok->provider == "relay");
    CHECK(r.ok->per_request == 4);
}

TEST_CASE("model and provider errors name the field and the choices") {
    CHECK(error_of(job("")) == "field 'model': required");
    auto unknown = error_of(job("dalle-3"));
    CHECK(unknown.starts_with(
        "field 'model': unknown model 'dalle-3' (known: chatgpt-image-latest, dall-e-2, dall-e-3"));
    CHECK(error_of(job("gpt-image-1-mini")) ==
          "field 'model': no configured provider serves 'gpt-image-1-mini'");

    auto j = job("gpt-image-2");
    j.provider = "azure";
    CHECK(error_of(j) ==
          "field 'provider': unknown provider 'azure' (configured: openai, relay, "
          "google)");
    j.provider = "google";
    CHECK(error_of(j) ==
          "field 'provider': provider 'google' does not serve 'gpt-image-2' (served by: openai, "
          "relay)");
}

TEST_CASE("n must be between 1 and 10000") {
    auto j = job("gpt-image-2");
    for (int bad : {0, -1, 10001}) {
        j.n = bad;
        CHECK(error_of(j) == "field 'n': must be between 1 and 10000, got " + std::to_string(bad));
    }
    for (int ok : {1, 10000}) {
        j.n = ok;
        CHECK(error_of(j) == "(ok)");
    }
}

TEST_CASE("prompts: non-empty, within the limit counted in code points") {
    CHECK(error_of(job("gpt-image-2", "")) == "field 'prompt': empty");
    CHECK(error_of(job("gpt-image-2", " \t\n ")) == "field 'prompt': empty");
    CHECK(error_of(job("dall-e-3", std::string(4000, 'a'))) == "(ok)");
    CHECK(error_of(job("dall-e-3", std::string(4312, 'a'))) ==
          "field 'prompt': 4312 characters; dall-e-3 accepts at most 4000");
    // 1000 three-byte characters are 1000 characters, not 3000 bytes.
    std::string cjk;
    for (int i = 0; i < 1000; ++i) cjk += "\xE7\x8C\xAB";  // 猫
    CHECK(error_of(job("dall-e-2", cjk)) == "(ok)");
    CHECK(error_of(job("dall-e-2", cjk + "a")).starts_with("field 'prompt': 1001 characters"));
    auto imagen = error_of(job("imagen-4.0-generate-001", std::string(1921, 'w')));
    CHECK(imagen.starts_with(
        "field 'prompt': 1921 characters; imagen-4.0-generate-001 accepts at most 1920 ("));
    CHECK(imagen.find("480 tokens") != std::string::npos);
    CHECK(error_of(job("gpt-image-2", "bad \xC3\x28 bytes")) ==
          "field 'prompt': not valid UTF-8 text");
}

TEST_CASE("sizes and enums are checked against the model, listing the allowed values") {
    CHECK(error_of(job("dall-e-3", "x", R"({"size": "1792x1024", "quality": "hd",
                                            "style": "natural"})")) == "(ok)");
    CHECK(error_of(job("dall-e-3", "x", R"({"size": "512x512"})")) ==
          "field 'size': '512x512' is not allowed for dall-e-3 (allowed: 1024x1024, 1792x1024, "
          "1024x1792)");
    CHECK(error_of(job("dall-e-3", "x", R"({"quality": "high"})")) ==
          "field 'quality': 'high' is not allowed for dall-e-3 (allowed: standard, hd)");
    CHECK(error_of(job("gpt-image-2", "x", R"({"style": "vivid"})")) ==
          "field 'style': not accepted by gpt-image-2");
    CHECK(error_of(job("gpt-image-2", "x", R"({"quality": 3})")) ==
          "field 'quality': must be a string, got 3");
    CHECK(error_of(job("gpt-image-2", "x", R"({"size": "auto", "background": "transparent",
        "moderation": "low", "output_format": "webp", "output_compression": 80})")) == "(ok)");
    CHECK(
        error_of(job("sora_image", "x", R"({"size": "auto"})"))
            .starts_with("field 'size': 'auto' is not allowed for sora_image (allowed: 1024x1024"));
    CHECK(error_of(job("gpt-image-2", "x", R"({"aspect_ratio": "16:9"})")) ==
          "field 'aspect_ratio': not accepted by gpt-image-2 (use size: auto, 1024x1024, "
          "1536x1024, 1024x1536)");
}

TEST_CASE("integer ranges") {
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": 0})")) == "(ok)");
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": 100})")) == "(ok)");
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": 101})")) ==
          "field 'output_compression': 101 is out of range for gpt-image-2 (allowed: 0..100)");
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": -1})"))
              .starts_with("field 'output_compression': -1 is out of range"));
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": 18446744073709551615})"))
              .starts_with("field 'output_compression': 18446744073709551615 is out of range"));
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": "50"})")) ==
          "field 'output_compression': must be an integer, got \"50\"");
    CHECK(error_of(job("gpt-image-2", "x", R"({"output_compression": 50.5})"))
              .starts_with("field 'output_compression': must be an integer"));
}

TEST_CASE("gpt-image-2 free sizes: each rule explained") {
    const auto g2 = [](const char* size) {
        return error_of(
            job("gpt-image-2", "x", (std::string(R"({"size": ")") + size + "\"}").c_str()));
    };
    CHECK(g2("auto") == "(ok)");
    CHECK(g2("1536x1024") == "(ok)");
    CHECK(g2("2048x2048") == "(ok)");
    CHECK(g2("3840x2160") == "(ok)");
    CHECK(g2("2160x3840") == "(ok)");
    CHECK(g2("1536x512") == "(ok)");  // exactly 3:1
    CHECK(g2("1000x1000") ==
          "field 'size': '1000x1000' is not allowed for gpt-image-2: width and height must both be "
          "multiples of 16");
    CHECK(g2("1600x512").find("at most 3 times the short side") != std::string::npos);
    CHECK(g2("4096x2160").find("at most 3840x2160") != std::string::npos);
    CHECK(g2("2400x2400").find("at most 3840x2160") != std::string::npos);
    CHECK(g2("0x1024").find("positive") != std::string::npos);
    // Huge sizes are too large, whatever their ratio (3 * side overflowed a long) and however
    // many digits they have.
    for (const char* huge :
         {"4611686018427387904x4611686018427387904", "3074457345618258608x16",
          "99999999999999999999999999999984x1024", "1024x99999999999999999999999999999984"}) {
        CAPTURE(huge);
        CHECK(g2(huge) == "field 'size': '" + std::string(huge) +
                              "' is not allowed for gpt-image-2: at most 3840x2160 (long side at "
                              "most 3840, short side at most 2160)");
    }
    auto words = g2("big");
    CHECK(words.starts_with("field 'size': 'big' is not allowed for gpt-image-2 (allowed: auto, "));
    CHECK(words.find("multiples of 16") != std::string::npos);
    CHECK(g2("1024x1024x2").find("is not allowed") != std::string::npos);
    CHECK(g2("-16x32").find("is not allowed") != std::string::npos);
    // gpt-image-1 has no free sizes.
    CHECK(error_of(job("gpt-image-1", "x", R"({"size": "2048x2048"})"))
              .starts_with(
                  "field 'size': '2048x2048' is not allowed for gpt-image-1 (allowed: auto,"));
}

TEST_CASE("Imagen: aspect ratios, image sizes, person generation; no size") {
    CHECK(error_of(job("imagen-4.0-generate-001", "x",
                       R"({"aspect_ratio": "16:9", "image_size": "2K",
                           "person_generation": "dont_allow"})")) == "(ok)");
    CHECK(error_of(job("imagen-4.0-generate-001", "x", R"({"size": "1024x1024"})")) ==
          "field 'size': not accepted by imagen-4.0-generate-001 (use aspect_ratio: 1:1, 3:4, "
          "4:3, 9:16, 16:9)");
    CHECK(error_of(job("imagen-4.0-generate-001", "x", R"({"aspect_ratio": "2:3"})")) ==
          "field 'aspect_ratio': '2:3' is not allowed for imagen-4.0-generate-001 (allowed: 1:1, "
          "3:4, 4:3, 9:16, 16:9)");
    CHECK(error_of(job("imagen-3.0-generate-002", "x", R"({"image_size": "2K"})")) ==
          "field 'image_size': not accepted by imagen-3.0-generate-002");
    CHECK(error_of(job("imagen-4.0-generate-001", "x", R"({"image_size": "4K"})")) ==
          "field 'image_size': '4K' is not allowed for imagen-4.0-generate-001 (allowed: 1K, 2K)");
    CHECK(error_of(job("imagen-4.0-generate-001", "x", R"({"person_generation": "ALLOW_ALL"})"))
              .starts_with("field 'person_generation': 'ALLOW_ALL' is not allowed"));
}

TEST_CASE("native parameters pass through; open custom models check only what they describe") {
    CHECK(error_of(job("gpt-image-2", "x", R"({"user": "u1", "response_format": "b64_json",
                                               "seed": 7})")) == "(ok)");
    auto c = Catalog::builtin();
    c.apply_config(boost::json::parse(R"({"local-sd": {"max_per_request": 2,
                                          "enums": {"sampler": ["euler", "ddim"]}}})")
                       .as_object());
    CHECK(error_of(job("local-sd", "x", R"({"size": "640x480", "style": "any",
                                            "sampler": "euler"})"),
                   c) == "(ok)");
    CHECK(error_of(job("local-sd", "x", R"({"sampler": "plms"})"), c) ==
          "field 'sampler': 'plms' is not allowed for local-sd (allowed: euler, ddim)");
    auto r = validate_job(job("local-sd"), c, kProviders);
    REQUIRE(r.ok);
    CHECK(r.ok->provider == "google");
    CHECK(r.ok->per_request == 2);
}

TEST_CASE("Gemini image jobs: one image per request, imageConfig values checked") {
    auto c = Catalog::builtin();
    const std::vector<ProviderInfo> providers = {
        {"gemini",
         "gemini",
         {"gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview"},
         0}};
    auto check = [&](const char* model, const char* params) {
        auto r = validate_job(job(model, "a fox", params), c, providers);
        return r.ok ? std::string("(ok)") : r.error;
    };
    auto r = validate_job(job("gemini-3-pro-image-preview", "a fox",
                              R"({"aspect_ratio": "21:9", "image_size": "4K"})"),
                          c, providers);
    REQUIRE(r.ok);
    CHECK(r.ok->provider == "gemini");
    CHECK(r.ok->per_request == 1);
    CHECK(check("gemini-2.5-flash-image", R"({"aspect_ratio": "4:5"})") == "(ok)");
    CHECK(check("gemini-2.5-flash-image", R"({"aspect_ratio": "7:3"})").find("21:9") !=
          std::string::npos);
    CHECK(check("gemini-2.5-flash-image", R"({"image_size": "2K"})") != "(ok)");
    CHECK(check("gemini-3-pro-image-preview", R"({"image_size": "8K"})").find("4K") !=
          std::string::npos);
    CHECK(check("gemini-2.5-flash-image", R"({"size": "1024x1024"})") != "(ok)");
    CHECK(check("gemini-3.1-flash-image-preview",
                R"({"aspect_ratio": "8:1", "image_size": "512"})") == "(ok)");
    CHECK(check("gemini-3-pro-image-preview", R"({"image_size": "512"})") != "(ok)");
    CHECK(check("gemini-3-pro-image-preview", R"({"aspect_ratio": "8:1"})") != "(ok)");
    // Native generateContent fields pass through.
    CHECK(check("gemini-2.5-flash-image", R"({"temperature": 0.5, "seed": 3})") == "(ok)");
}

TEST_CASE("gpt-image-2 free sizes: total pixels within the model's limits") {
    const auto g2 = [](const char* size) {
        return error_of(
            job("gpt-image-2", "x", (std::string(R"({"size": ")") + size + "\"}").c_str()));
    };
    CHECK(g2("1024x640") == "(ok)");  // 655,360 pixels: the least
    CHECK(g2("1008x640") ==
          "field 'size': '1008x640' is not allowed for gpt-image-2: 645120 pixels; at least "
          "655360 (e.g. 1024x640)");
    CHECK(g2("512x512").find("at least 655360") != std::string::npos);
    CHECK(g2("3840x2160") == "(ok)");  // 8,294,400 pixels: the most
    auto words = g2("big");
    CHECK(words.find("655360 to 8294400 pixels") != std::string::npos);
    // A catalog that lowers the ceiling is obeyed.
    auto c = Catalog::builtin();
    c.apply_config(boost::json::parse(R"({"gpt-image-2": {"free_size": {"max_pixels": 4000000}}})")
                       .as_object());
    CHECK(error_of(job("gpt-image-2", "x", R"({"size": "2048x2048"})"), c) ==
          "field 'size': '2048x2048' is not allowed for gpt-image-2: 4194304 pixels; at most "
          "4000000");
}

TEST_CASE("lifecycle: retired refused on the vendor's API, warned on a relay; deprecated warned") {
    auto c = Catalog::builtin();
    const std::vector<ProviderInfo> providers = {
        {"openai", "openai", {"dall-e-3", "gpt-image-1.5", "gpt-image-2", "sora_image"}, 0, true},
        {"relay", "openai", {"dall-e-3", "gpt-image-1.5", "imagen-4.0-generate-001"}, 0, false},
        {"google", "google", {"imagen-4.0-generate-001"}, 0, true},
    };
    auto on = [&](const char* model, const char* provider, const char* today = "2026-11-21") {
        JobSpec j = job(model);
        j.provider = provider;
        return validate_job(j, c, providers, today);
    };

    auto r = on("dall-e-3", "openai");
    CHECK_FALSE(r.ok);
    CHECK(r.retired);
    CHECK(r.error == "model dall-e-3 was retired on 2026-05-12; use gpt-image-2");

    r = on("dall-e-3", "relay");
    REQUIRE(r.ok);
    CHECK(r.warning ==
          "model dall-e-3 was retired on 2026-05-12; use gpt-image-2 (provider 'relay' is a "
          "relay, which may still serve it)");

    r = on("imagen-4.0-generate-001", "google");
    CHECK_FALSE(r.ok);
    CHECK(r.error ==
          "model imagen-4.0-generate-001 was retired on 2026-08-17 (shut down on Google's "
          "endpoints; relays may still serve it); use gemini-2.5-flash-image");
    r = on("imagen-4.0-generate-001", "relay");
    REQUIRE(r.ok);
    CHECK(r.ok->per_request == 4);  // Imagen's own maximum through a relay

    r = on("gpt-image-1.5", "openai");
    REQUIRE(r.ok);
    CHECK_FALSE(r.retired);
    CHECK(r.warning == "model gpt-image-1.5 is deprecated, shuts down 2026-12-01; use gpt-image-2");
    // From its shutdown day on, the deprecated model counts as retired.
    r = on("gpt-image-1.5", "openai", "2026-12-01");
    CHECK_FALSE(r.ok);
    CHECK(r.error == "model gpt-image-1.5 was retired on 2026-12-01; use gpt-image-2");

    r = on("sora_image", "openai");
    REQUIRE(r.ok);
    CHECK(r.warning ==
          "model sora_image is deprecated (relay name; retired by relays in favour of "
          "gpt-image-2-all); use gpt-image-2-all");

    r = on("gpt-image-2", "openai");
    REQUIRE(r.ok);
    CHECK(r.warning.empty());

    // Without a day, today's (UTC) is used: dall-e-3 retired in the past stays retired.
    JobSpec j = job("dall-e-3");
    j.provider = "openai";
    CHECK(validate_job(j, c, providers).retired);
}

TEST_CASE("Imagen through an OpenAI-compatible relay keeps Imagen's limits") {
    auto c = Catalog::builtin();
    const std::vector<ProviderInfo> relay = {
        {"relay",
         "openai",
         {"imagen-4.0-generate-preview-06-06", "imagen-4.0-ultra-generate-exp-05-20"},
         0}};
    auto check = [&](const char* model, const char* params, int n = 1) {
        JobSpec j = job(model, "a fox", params);
        j.n = n;
        return validate_job(j, c, relay, "2026-11-21");
    };
    auto r = check("imagen-4.0-generate-preview-06-06", R"({"aspect_ratio": "16:9"})", 6);
    REQUIRE(r.ok);
    CHECK(r.ok->per_request == 4);
    CHECK(check("imagen-4.0-ultra-generate-exp-05-20", "{}").ok->per_request == 1);
    CHECK(check("imagen-4.0-generate-preview-06-06", R"({"aspect_ratio": "2:3"})").error ==
          "field 'aspect_ratio': '2:3' is not allowed for imagen-4.0-generate-preview-06-06 "
          "(allowed: 1:1, 3:4, 4:3, 9:16, 16:9)");
    CHECK(check("imagen-4.0-generate-preview-06-06", R"({"size": "1024x1024"})").error ==
          "field 'size': not accepted by imagen-4.0-generate-preview-06-06 (use aspect_ratio: "
          "1:1, 3:4, 4:3, 9:16, 16:9)");
}
