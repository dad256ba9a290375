// Batch mode through the real binary against `imgbatch sim`: OpenAI Files + Batches end to
// end, per-line errors, expiry, whole-batch failure, kill -9 at each step, cancel. Every test
// counts the images the sim served against the images kept.
#include "tests/integration/batch_fixture.hpp"

using namespace imgbatch::test;

namespace {

const std::string kModel = "gpt-image-2";

const BatchVendor kOpenAI{"batches", kModel, "picture",
                          [](const Sim& sim, const std::string& extra) {
                              return openai_provider(sim, "oa", batch_options(extra));
                          }};

}  // namespace

TEST_CASE("batch mode: requests go through one vendor batch and are recorded as direct calls") {
    Sim sim({"--batch-ms", "200"});
    DaemonEnv env({kOpenAI.provider(sim, "")});
    env.enqueue(kOpenAI.jobs(5) + job_line("two", "two pictures", kModel, 2));
    auto r = env.run_until_idle();
    for (int i = 0; i < 5; ++i) {
        CHECK(env.job_state("k" + std::to_string(i)) == "succeeded");
        env.check_outputs("k" + std::to_string(i), 1);
        CHECK(env.attempts("k" + std::to_string(i)) == std::vector<std::string>{"ok||"});
    }
    env.check_outputs("two", 2);
    CHECK(env.value("SELECT state || '|' || vendor_status || '|' || requests || '|' || completed "
                    "FROM vendor_batches") == "done|completed|6|6");
    CHECK(kOpenAI.stat(sim, "created") == 1);
    CHECK(sim.stat("images") == 7);
    // No direct call was made.
    CHECK(sim.stats_json().find("/images/generations") == std::string::npos);
    CHECK(r.err.find("event=vendor_batch ") != std::string::npos);
    // show names the vendor batch of each attempt.
    RunResult show = env.cli({"show", env.job_id("k0")});
    CHECK(show.out.find("vendor batches of the attempts:") != std::string::npos);
    CHECK(show.out.find(env.value("SELECT vendor_id FROM vendor_batches")) != std::string::npos);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: per-line moderation, invalid and server errors are the request's") {
    batch_line_errors(kOpenAI, fast_retry(4, 1), "bad #fail=moderation",
                      [](const Sim&, const DaemonEnv& env) {
                          auto mod = env.attempts("mod");
                          // moderation_retries 1: one retry in a later vendor batch
                          REQUIRE(mod.size() == 2);
                          CHECK(mod[0] == "error|moderation|400");
                          CHECK(env.number("SELECT count(*) FROM vendor_batches") >= 2);
                      });
}

TEST_CASE("batch mode: an expired batch keeps what completed and returns the rest") {
    batch_expiry(kOpenAI, 4, 2, "expired", [](const Sim&, const DaemonEnv& env) {
        CHECK(env.counters("c") == "1|0|0");  // the return used no attempt
    });
}

TEST_CASE("batch mode: a failed batch fails the line it names and returns the others") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({kOpenAI.provider(sim, "")});
    env.enqueue(job_line("a", "one", kModel, 1) + job_line("b", "two #batchfail", kModel, 1) +
                job_line("c", "three", kModel, 1));
    env.run_until_idle();
    CHECK(env.job_state("a") == "succeeded");
    CHECK(env.job_state("b") == "failed");
    CHECK(env.job_state("c") == "succeeded");
    CHECK(env.attempts("b") == std::vector<std::string>{"error|invalid_request|0"});
    CHECK(env.attempts("a") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") == "failed");
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: kill -9 before the upload is answered") {
    batch_kill_at(kOpenAI, {"--batch-ms", "100", "--latency-ms", "700"}, "", "preparing",
                  "while uploading", [](const Sim&, const DaemonEnv& env) {
                      CHECK(env.number("SELECT count(*) FROM vendor_batches") == 1);
                  });
}

TEST_CASE("batch mode: kill -9 after the upload, before the create") {
    batch_kill_at(kOpenAI, {"--batch-ms", "100", "--latency-ms", "700"}, "", "uploaded",
                  "after the upload");
}

TEST_CASE("batch mode: a create whose answer was lost is adopted, not submitted again") {
    batch_lost_create(kOpenAI, [](const Sim&, const DaemonEnv& env) {
        CHECK(env.value("SELECT vendor_id FROM vendor_batches") != "");
    });
}

TEST_CASE("batch mode: kill -9 while polling resumes the same vendor batch") {
    batch_kill_at(kOpenAI, {"--batch-ms", "1500"}, "", "submitted", "while polling");
}

TEST_CASE("batch mode: kill -9 while the output is applied records every line once") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({kOpenAI.provider(sim, "")});
    const int count = 300;
    env.enqueue(kOpenAI.jobs(count));
    kill_when(
        env,
        [&] {
            auto n = env.number("SELECT count(*) FROM outputs");
            return n > 0 && n < count - 50;
        },
        "while applying");
    check_all_done(env, count);
    CHECK(kOpenAI.stat(sim, "created") == 1);
    CHECK(env.number("SELECT count(*) FROM attempts") == count);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: cancel cancels the vendor batch and keeps what it made") {
    batch_cancel(kOpenAI, "cancelled", [](const Sim&, const DaemonEnv& env) {
        // status and providers list the open vendor batch.
        RunResult status = env.cli({"status"});
        CHECK(status.out.find("vendor batches:") != std::string::npos);
        CHECK(status.out.find(env.value("SELECT vendor_id FROM vendor_batches")) !=
              std::string::npos);
        RunResult providers = env.cli({"providers", "--json"});
        CHECK(providers.out.find("\"vendor_batches\":[{") != std::string::npos);
    });
}

TEST_CASE("batch mode: an output file larger than max_response_bytes streams to disk") {
    batch_large_results(
        kOpenAI, R"("max_response_bytes": 8192)",
        [](const Sim& sim, const DaemonEnv&) { CHECK(kOpenAI.stat(sim, "created") == 1); });
}
