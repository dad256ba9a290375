// Relays as the seeds show them: the images endpoint (`openai` API style) answering in the
// chat-completion shape, images as markdown links (downloaded like data[].url) or data URIs;
// and a relay that keeps answering short: the job ends `failed` with class `partial`, never
// `blocked` (which is for moderation refusals).
#include <doctest/doctest.h>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

std::string relay_provider(const Sim& sim) {
    return provider_json("relay", "openai", sim.url() + "/v1",
                         {"gpt-image-2", "imagen-4.0-generate-preview-05-20"});
}

}  // namespace

TEST_CASE("relay: a chat-shaped images answer gives its images, linked or inline") {
    Sim sim;
    DaemonEnv env({relay_provider(sim)});
    env.enqueue(
        job_line("linked", "two foxes #chatshape", "gpt-image-2", 2) +
        job_line("inline", "two owls #chatshape #datauri", "imagen-4.0-generate-preview-05-20", 2));
    env.run_until_idle();
    CHECK(env.job_state("linked") == "succeeded");
    CHECK(env.job_state("inline") == "succeeded");
    env.check_outputs("linked", 2);
    env.check_outputs("inline", 2);
    CHECK(env.attempts("linked") == std::vector<std::string>{"ok||"});
    CHECK(env.attempts("inline") == std::vector<std::string>{"ok||"});
    CHECK(sim.stat("requests") == 2);
    // The linked images were downloaded once each (not their plain download links too).
    CHECK(sim.stat("files_served") == 2);
    CHECK(sim.stat("images") == 4);  // every image paid for is kept
    CHECK(env.number("SELECT count(*) FROM outputs") == 4);
    // The chat shape's usage is the attempt's usage.
    for (const auto& usage : env.rows("SELECT usage FROM attempts"))
        CHECK(usage.find("\"prompt_tokens\"") != std::string::npos);
}

TEST_CASE("relay: answers always short end the job failed with class partial, not blocked") {
    for (std::string prompt :
         {"eight foxes #fail=partial", "eight foxes #chatshape #fail=partial"}) {
        INFO(prompt);
        Sim sim;
        DaemonEnv env({relay_provider(sim)}, fast_retry(4, 2));
        env.enqueue(job_line("short", prompt, "gpt-image-2", 8));
        env.run_until_idle();
        // 8 asked: 4, then 2 of the 4 left, then 1 of the 2 left; the top-ups are used up.
        CHECK(env.job_state("short") == "failed");
        CHECK(env.requests("short") == std::vector<std::string>{"failed|8|7"});
        CHECK(env.value("SELECT last_error_class FROM requests") == "partial");
        CHECK(env.value("SELECT error FROM jobs").find("1 of 2") != std::string::npos);
        auto att = env.attempts("short");
        REQUIRE(att.size() == 3);
        for (const auto& a : att) CHECK(a.rfind("partial|partial|", 0) == 0);
        CHECK(DaemonEnv::split(env.counters("short"))[2] == "2");
        // Every image paid for is kept.
        CHECK(sim.stat("images") == 7);
        CHECK(env.number("SELECT count(*) FROM outputs") == 7);
        CHECK(env.value("SELECT images_done FROM jobs") == "7");
    }
}
