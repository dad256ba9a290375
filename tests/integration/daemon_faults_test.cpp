// Faults injected by the simulator's prompt directives (#fail=KIND*COUNT): each one must end
// with the class, retry behaviour and job state of the SPEC's error table, checked in the
// database (jobs, requests, attempts, outputs), on disk and in the sim's counters.
#include <doctest/doctest.h>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

struct Api {
    std::string name;  // provider style
    std::string model;
    int n;  // images per job in these tests (within one request)
};
const Api kOpenai{"openai", "gpt-image-2", 2};
const Api kGoogle{"google", "imagen-4.0-generate-001", 2};
const Api kChat{"openai-chat", "sora_image", 1};

std::string provider_for(const Api& api, const Sim& sim, const std::string& extra = "") {
    if (api.name == "google") return google_provider(sim, "p", extra);
    if (api.name == "openai-chat") return chat_provider(sim, "p", extra);
    return openai_provider(sim, "p", extra);
}

// A job whose first call fails with `kind` and whose second succeeds: one error attempt of
// class cls (and HTTP status http, unless -1), then success with all images.
void retried_once(const Api& api, const std::string& kind, const std::string& cls, int http,
                  const std::string& provider_extra = "") {
    INFO("api " << api.name << ", fault " << kind);
    Sim sim;
    DaemonEnv env({provider_for(api, sim, provider_extra)});
    env.enqueue(job_line("j", "a red fox #fail=" + kind + "*1", api.model, api.n));
    env.run_until_idle();

    CHECK(env.job_state("j") == "succeeded");
    env.check_outputs("j", api.n);
    auto att = env.attempts("j");
    REQUIRE(att.size() == 2);
    if (http >= 0) {
        CHECK(att[0] == "error|" + cls + "|" + std::to_string(http));
    } else {
        CHECK(att[0].rfind("error|" + cls + "|", 0) == 0);
    }
    CHECK(att[1] == "ok||");
    CHECK(env.requests("j") == std::vector<std::string>{"succeeded|" + std::to_string(api.n) + "|" +
                                                        std::to_string(api.n)});
    auto counters = DaemonEnv::split(env.counters("j"));
    if (cls == "rate_limited") {
        CHECK(counters[1] == "1");  // a 429 is counted apart from attempts
    } else if (cls == "moderation") {
        CHECK(counters[2] == "1");
    } else {
        CHECK(counters[1] == "0");
        CHECK(counters[2] == "0");
    }
    if (http > 0) CHECK(sim.stat(std::to_string(http)) == 1);
    if (api.name != "openai-chat") CHECK(sim.stat("images") == api.n);
}

}  // namespace

TEST_CASE("faults: network and timeout errors are retried (openai)") {
    SUBCASE("timeout") {
        retried_once(kOpenai, "timeout", "timeout", 0, R"("timeout_s": 2)");
    }
    SUBCASE("reset") {
        retried_once(kOpenai, "reset", "network", 0);
    }
    SUBCASE("truncated") {
        retried_once(kOpenai, "truncated", "network", 0);
    }
}

TEST_CASE("faults: 429 and 503 wait and retry without using an attempt (openai)") {
    SUBCASE("429 JSON with Retry-After") {
        retried_once(kOpenai, "429", "rate_limited", 429);
    }
    SUBCASE("429 text/plain") {
        retried_once(kOpenai, "429text", "rate_limited", 429);
    }
    SUBCASE("429 retry-after-ms") {
        retried_once(kOpenai, "429ms", "rate_limited", 429);
    }
    SUBCASE("503 with Retry-After") {
        retried_once(kOpenai, "503", "rate_limited", 503);
    }
}

TEST_CASE("faults: 429 is retried (google)") {
    retried_once(kGoogle, "429", "rate_limited", 429);
}

TEST_CASE("faults: server errors are retried (openai)") {
    SUBCASE("500 JSON") {
        retried_once(kOpenai, "500", "server", 500);
    }
    SUBCASE("502 HTML") {
        retried_once(kOpenai, "502html", "server", 502);
    }
}

TEST_CASE("faults: bad responses are retried, then succeed") {
    SUBCASE("openai badjson") {
        retried_once(kOpenai, "badjson", "bad_response", -1);
    }
    SUBCASE("openai badbase64") {
        retried_once(kOpenai, "badbase64", "bad_response", -1);
    }
    SUBCASE("openai notimage") {
        retried_once(kOpenai, "notimage", "bad_response", -1);
    }
    SUBCASE("chat badjson") {
        retried_once(kChat, "badjson", "bad_response", -1);
    }
    SUBCASE("google badbase64") {
        retried_once(kGoogle, "badbase64", "bad_response", -1);
    }
}

TEST_CASE("faults: a bad response that never ends fails the job after max_attempts") {
    for (const Api& api : {kOpenai, kChat}) {
        INFO("api " << api.name);
        Sim sim;
        DaemonEnv env({provider_for(api, sim)}, fast_retry(3));
        env.enqueue(job_line("j", "a broken fox #fail=badjson", api.model, api.n));
        env.run_until_idle();
        CHECK(env.job_state("j") == "failed");
        auto att = env.attempts("j");
        REQUIRE(att.size() == 3);
        for (const auto& a : att) CHECK(a.rfind("error|bad_response|", 0) == 0);
        CHECK(env.number("SELECT count(*) FROM outputs") == 0);
        CHECK(env.value("SELECT state FROM requests WHERE job_id = " + env.job_id("j")) ==
              "failed");
        CHECK(env.value("SELECT last_error_class FROM requests") == "bad_response");
        CHECK(sim.stat("requests") >= 3);
    }
}

TEST_CASE("faults: moderation is retried, then succeeds") {
    SUBCASE("openai") {
        retried_once(kOpenai, "moderation", "moderation", 400);
    }
    SUBCASE("google (every image filtered)") {
        retried_once(kGoogle, "moderation", "moderation", -1);
    }
    SUBCASE("chat") {
        retried_once(kChat, "moderation", "moderation", 400);
    }
}

TEST_CASE("faults: moderation every time blocks the job with the provider's reason") {
    for (const Api& api : {kOpenai, kGoogle}) {
        INFO("api " << api.name);
        Sim sim;
        DaemonEnv env({provider_for(api, sim)}, fast_retry(6, 2));
        env.enqueue(job_line("j", "a forbidden fox #fail=moderation", api.model, api.n));
        env.run_until_idle();
        CHECK(env.job_state("j") == "blocked");
        auto att = env.attempts("j");
        CHECK(att.size() == 3);  // 1 + moderation_retries
        for (const auto& a : att) CHECK(a.rfind("error|moderation|", 0) == 0);
        std::string error = env.value("SELECT error FROM jobs");
        CHECK(!error.empty());
        if (api.name == "openai") CHECK(error.find("safety system") != std::string::npos);
        CHECK(env.value("SELECT state FROM requests") == "blocked");
        CHECK(env.number("SELECT count(*) FROM outputs") == 0);
    }
}

TEST_CASE("faults: a partial answer keeps its images and a top-up asks for the rest") {
    for (const Api& api : {Api{"openai", "gpt-image-2", 4}, Api{"google", kGoogle.model, 4}}) {
        INFO("api " << api.name);
        Sim sim;
        DaemonEnv env({provider_for(api, sim)});
        env.enqueue(job_line("j", "four foxes #fail=partial*1", api.model, 4));
        env.run_until_idle();
        CHECK(env.job_state("j") == "succeeded");
        env.check_outputs("j", 4);  // indexes 0..3, no duplicate
        auto att = env.attempts("j");
        REQUIRE(att.size() == 2);
        CHECK(att[0].rfind("partial|partial|", 0) == 0);
        CHECK(att[1] == "ok||");
        CHECK(env.rows("SELECT images FROM attempts ORDER BY id") ==
              std::vector<std::string>{"2", "2"});
        CHECK(env.requests("j") == std::vector<std::string>{"succeeded|4|4"});
        CHECK(env.value("SELECT images_done FROM jobs") == "4");
        CHECK(DaemonEnv::split(env.counters("j"))[2] == "1");  // a top-up uses a moderation retry
        CHECK(sim.stat("images") == 4);
    }
}

TEST_CASE("faults: an invalid request fails at once and keeps the message") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("j", "an invalid fox #fail=invalid", "gpt-image-2", 2));
    env.run_until_idle();
    CHECK(env.job_state("j") == "failed");
    CHECK(env.attempts("j") == std::vector<std::string>{"error|invalid_request|400"});
    CHECK(env.value("SELECT error FROM jobs").find("size") != std::string::npos);
    CHECK(env.value("SELECT last_error_message FROM requests").find("size") != std::string::npos);
    CHECK(sim.stat("400") == 1);
    CHECK(env.number("SELECT count(*) FROM outputs") == 0);
}

namespace {

// auth (401) and quota (429 insufficient_quota) pause the provider: its job stays queued and
// `run --until-idle` ends; after `imgbatch resume` the next run succeeds. A second provider
// keeps working meanwhile.
void pauses_provider(const std::string& kind, const std::string& cls, int http) {
    INFO("fault " << kind);
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p"), openai_provider(sim, "other")});
    env.enqueue(
        job_line("j", "a locked fox #fail=" + kind + "*1", "gpt-image-2", 2, R"("provider": "p")") +
        job_line("k", "a free fox", "gpt-image-2", 1, R"("provider": "other")"));
    env.run_until_idle();

    CHECK(env.job_state("k") == "succeeded");
    CHECK(env.job_state("j") == "queued");
    CHECK(env.value("SELECT state FROM requests WHERE job_id = " + env.job_id("j")) == "queued");
    CHECK(env.attempts("j") ==
          std::vector<std::string>{"error|" + cls + "|" + std::to_string(http)});
    CHECK(DaemonEnv::split(env.counters("j"))[0] == "0");  // no attempt used
    auto state = env.rows("SELECT paused, reason FROM provider_state WHERE name = 'p'");
    REQUIRE(state.size() == 1);
    CHECK(state[0].rfind("1|" + cls + ": ", 0) == 0);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'other'") != "1");
    CHECK(sim.stat(std::to_string(http)) == 1);

    RunResult r = env.cli({"resume", "p"});
    INFO("resume: " << r.err);
    REQUIRE(r.code == 0);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") != "1");
    env.run_until_idle();
    CHECK(env.job_state("j") == "succeeded");
    env.check_outputs("j", 2);
    CHECK(sim.stat(std::to_string(http)) == 1);  // the directive's one failure was used up
}

}  // namespace

TEST_CASE("faults: auth error pauses the provider until resume") {
    pauses_provider("auth", "auth", 401);
}

TEST_CASE("faults: quota error pauses the provider until resume") {
    pauses_provider("quota", "quota", 429);
}

TEST_CASE("faults: chat happy path with markdown links and data URIs") {
    Sim sim;
    DaemonEnv env({chat_provider(sim, "p")});
    env.enqueue(job_line("md", "a linked fox", "sora_image", 2) +
                job_line("du", "an inline fox #datauri", "sora_image", 1));
    env.run_until_idle();
    CHECK(env.job_state("md") == "succeeded");
    CHECK(env.job_state("du") == "succeeded");
    env.check_outputs("md", 2);
    env.check_outputs("du", 1);
    CHECK(env.requests("md") == std::vector<std::string>{"succeeded|1|1", "succeeded|1|1"});
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome != 'ok'") == 0);
}
