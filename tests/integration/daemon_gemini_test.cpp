// The gemini API style end to end: the real daemon against `imgbatch sim` answering
// generateContent. A job of n images is n requests of one image; refusals (finish reasons and
// block reasons) are moderation and end `blocked` with the provider's reason; a text-only
// answer is bad_response; the provider's usageMetadata is kept per attempt.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {

const std::string kFlash = "gemini-2.5-flash-image";
const std::string kPro = "gemini-3-pro-image-preview";

std::string gemini_provider(const Sim& sim, const std::string& extra = "") {
    return provider_json("gem", "gemini", sim.url() + "/v1beta",
                         {kFlash, "gemini-3.1-flash-image-preview", kPro}, extra);
}

}  // namespace

TEST_CASE("gemini: a job of n images is n generateContent calls, each kept with its usage") {
    Sim sim({"--api-key", "g-secret"});
    TempDir keys;
    std::string key_file = keys.file("key");
    write_file(key_file, "g-secret\n");
    DaemonEnv env({gemini_provider(sim, "\"api_key_file\": " + json_str(key_file))});
    env.enqueue(job_line("three", "three foxes in the snow", kPro, 3,
                         R"("params": {"aspect_ratio": "16:9", "image_size": "2K"})") +
                job_line("one", "one fox", kFlash, 1, R"("params": {"aspect_ratio": "21:9"})"));
    env.run_until_idle();

    CHECK(env.job_state("three") == "succeeded");
    CHECK(env.job_state("one") == "succeeded");
    env.check_outputs("three", 3);
    env.check_outputs("one", 1);
    CHECK(env.requests("three") ==
          std::vector<std::string>{"succeeded|1|1", "succeeded|1|1", "succeeded|1|1"});
    CHECK(sim.stat("requests") == 4);
    CHECK(sim.stat("images") == 4);  // every image paid for is kept
    CHECK(env.number("SELECT count(*) FROM outputs") == 4);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome = 'ok'") == 4);

    // usageMetadata as each attempt's usage.
    auto usages = env.rows("SELECT usage FROM attempts ORDER BY id");
    REQUIRE(usages.size() == 4);
    for (const auto& u : usages) {
        INFO(u);
        auto o = json::parse(u).as_object();
        CHECK(o.at("promptTokenCount").as_int64() > 0);
        // 1290 image tokens and the text part's tokens.
        const auto& details = o.at("candidatesTokensDetails").as_array();
        REQUIRE(details.size() == 2);
        CHECK(details[0].at("modality") == "TEXT");
        CHECK(details[1].at("modality") == "IMAGE");
        CHECK(details[1].at("tokenCount").as_int64() == 1290);
        CHECK(o.at("candidatesTokenCount").as_int64() ==
              1290 + details[0].at("tokenCount").as_int64());
    }
    // The model's text part is kept as the revised prompt.
    CHECK(env.value("SELECT revised_prompt FROM outputs LIMIT 1").find("Here is your image") !=
          std::string::npos);
}

TEST_CASE("gemini: a refusal is retried as moderation, then the image is kept") {
    Sim sim;
    DaemonEnv env({gemini_provider(sim)}, fast_retry(6, 2));
    env.enqueue(job_line("j", "a fox #fail=finish:IMAGE_SAFETY*1", kFlash, 2));
    env.run_until_idle();
    CHECK(env.job_state("j") == "succeeded");
    env.check_outputs("j", 2);
    // Both requests share the prompt: the first call is refused, the other two succeed.
    CHECK(env.number("SELECT count(*) FROM attempts WHERE error_class = 'moderation'") == 1);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome = 'ok'") == 2);
    CHECK(DaemonEnv::split(env.counters("j"))[2] == "1");
    CHECK(sim.stat("images") == 2);
    CHECK(env.number("SELECT count(*) FROM outputs") == 2);
}

TEST_CASE("gemini: a refusal every time ends blocked with the provider's reason") {
    for (std::string kind :
         {"finish:SAFETY", "finish:IMAGE_SAFETY", "finish:PROHIBITED_CONTENT",
          "finish:IMAGE_PROHIBITED_CONTENT", "finish:RECITATION", "finish:BLOCKLIST", "finish:SPII",
          "blocked:PROHIBITED_CONTENT", "blocked:SAFETY", "blocked:OTHER"}) {
        INFO(kind);
        const std::string reason = kind.substr(kind.find(':') + 1);
        Sim sim;
        DaemonEnv env({gemini_provider(sim)}, fast_retry(6, 2));
        env.enqueue(job_line("j", "a forbidden fox #fail=" + kind, kFlash, 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "blocked");
        auto att = env.attempts("j");
        CHECK(att.size() == 3);  // 1 + moderation_retries
        for (const auto& a : att) CHECK(a == "error|moderation|200");
        CHECK(env.value("SELECT DISTINCT error_code FROM attempts") == reason);
        std::string error = env.value("SELECT error FROM jobs");
        CHECK(error.find(reason) != std::string::npos);
        CHECK(env.value("SELECT state FROM requests") == "blocked");
        CHECK(env.number("SELECT count(*) FROM outputs") == 0);
        CHECK(sim.stat("images") == 0);
        // A refused prompt is still billed for its input: the usage is kept.
        CHECK(env.number("SELECT count(*) FROM attempts WHERE usage LIKE '%promptTokenCount%'") ==
              3);
    }
}

TEST_CASE("gemini: a text-only answer is bad_response, retried, then the job fails") {
    SUBCASE("once, then an image") {
        Sim sim;
        DaemonEnv env({gemini_provider(sim)});
        env.enqueue(job_line("j", "a chatty fox #fail=textonly*1", kFlash, 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "succeeded");
        env.check_outputs("j", 1);
        auto att = env.attempts("j");
        REQUIRE(att.size() == 2);
        CHECK(att[0] == "error|bad_response|200");
        CHECK(att[1] == "ok||");
        CHECK(env.value("SELECT error_code FROM attempts ORDER BY id LIMIT 1") == "no_image");
    }
    SUBCASE("every time") {
        Sim sim;
        DaemonEnv env({gemini_provider(sim)}, fast_retry(3));
        env.enqueue(job_line("j", "a chatty fox #fail=textonly", kFlash, 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "failed");
        auto att = env.attempts("j");
        REQUIRE(att.size() == 3);
        for (const auto& a : att) CHECK(a == "error|bad_response|200");
        CHECK(env.value("SELECT last_error_class FROM requests") == "bad_response");
        CHECK(env.value("SELECT error FROM jobs").find("STOP") != std::string::npos);
        CHECK(env.number("SELECT count(*) FROM outputs") == 0);
    }
}

TEST_CASE("gemini: Google-shaped errors are classified as for the google style") {
    SUBCASE("429 waits and retries") {
        Sim sim;
        DaemonEnv env({gemini_provider(sim)});
        env.enqueue(job_line("j", "a busy fox #fail=429*1", kFlash, 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "succeeded");
        CHECK(env.attempts("j") == std::vector<std::string>{"error|rate_limited|429", "ok||"});
    }
    SUBCASE("an unsupported aspect ratio fails at once") {
        Sim sim;
        // The catalog would refuse it: an open model lets the sim's 400 through.
        DaemonEnv env(
            {provider_json("gem", "gemini", sim.url() + "/v1beta", {"my-gemini"})}, fast_retry(),
            10,
            R"("models": {"my-gemini": {"like": "gemini-2.5-flash-image", "aspect_ratios": ["7:3"]}})");
        env.enqueue(
            job_line("j", "a wide fox", "my-gemini", 1, R"("params": {"aspect_ratio": "7:3"})"));
        env.run_until_idle();
        CHECK(env.job_state("j") == "failed");
        CHECK(env.attempts("j") == std::vector<std::string>{"error|invalid_request|400"});
        CHECK(env.value("SELECT error FROM jobs").find("aspect ratio") != std::string::npos);
    }
}

TEST_CASE("gemini: the Vertex AI URL shape with a Bearer access token") {
    Sim sim({"--api-key", "ya29.token"});
    TempDir keys;
    std::string key_file = keys.file("token");
    write_file(key_file, "ya29.token\n");
    const std::string base = sim.url() + "/v1/projects/p1/locations/us-central1/publishers/google";
    DaemonEnv env({provider_json("vertex", "gemini", base, {kPro},
                                 "\"auth\": \"bearer\", \"api_key_file\": " + json_str(key_file))});
    env.enqueue(job_line("v", "a fox on Vertex", kPro, 2, R"("params": {"image_size": "4K"})"));
    env.run_until_idle();
    CHECK(env.job_state("v") == "succeeded");
    env.check_outputs("v", 2);
    CHECK(sim.stat("requests") == 2);
    CHECK(sim.stat("images") == 2);
    std::string stats = sim.stats_json();
    CHECK(stats.find("/v1/projects/p1/locations/us-central1/publishers/google/models/" + kPro +
                     ":generateContent") != std::string::npos);
}
