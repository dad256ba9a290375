// Gemini Batch Mode through the real binary against `imgbatch sim`: inline requests and an
// uploaded file (Files API) end to end, per-line errors through the gemini answer parser,
// expiry, whole-batch failure, kill -9 after the create and while polling, cancel. Every test
// counts the images the sim served against the images kept.
#include "tests/integration/batch_fixture.hpp"

using namespace imgbatch::test;

namespace {

const std::string kFlash = "gemini-2.5-flash-image";
const std::string kPro = "gemini-3-pro-image-preview";

const BatchVendor kGemini{"gemini_batches", kFlash, "fox",
                          [](const Sim& sim, const std::string& extra) {
                              return provider_json("gem", "gemini", sim.url() + "/v1beta",
                                                   {kFlash, kPro}, batch_options(extra));
                          }};

long long path_count(const Sim& sim, const std::string& path) {
    const std::string s = sim.stats_json();
    auto k = s.find("\"" + path + "\":");
    if (k == std::string::npos) return 0;
    return std::stoll(s.substr(k + path.size() + 3));
}

}  // namespace

TEST_CASE("gemini batch: inline requests, one vendor batch a model, results inline") {
    Sim sim({"--batch-ms", "200", "--api-key", "g-secret"});
    TempDir keys;
    const std::string key_file = keys.file("key");
    write_file(key_file, "g-secret\n");
    DaemonEnv env({kGemini.provider(sim, "\"api_key_file\": " + json_str(key_file))});
    env.enqueue(kGemini.jobs(4) +
                job_line("two", "two foxes", kPro, 2, R"("params": {"aspect_ratio": "16:9"})"));
    auto r = env.run_until_idle();
    INFO(DaemonEnv::tail(r.err));
    check_all_done(env, 4);
    CHECK(env.job_state("two") == "succeeded");
    env.check_outputs("two", 2);
    CHECK(env.attempts("k0") == std::vector<std::string>{"ok||"});
    // One vendor batch per model: 4 flash lines, 2 pro lines.
    CHECK(env.value("SELECT group_concat(state || '|' || vendor_status || '|' || requests || '|' "
                    "|| input_file_id, ',') FROM (SELECT * FROM vendor_batches ORDER BY id)") ==
          "done|BATCH_STATE_SUCCEEDED|4|inline,done|BATCH_STATE_SUCCEEDED|2|inline");
    CHECK(env.value("SELECT vendor_id FROM vendor_batches LIMIT 1").starts_with("batches/"));
    CHECK(kGemini.stat(sim, "created") == 2);
    CHECK(kGemini.stat(sim, "lines") == 6);
    CHECK(sim.stat("images") == 6);
    // No direct call, no upload.
    CHECK(sim.stats_json().find(":generateContent\"") == std::string::npos);
    CHECK(path_count(sim, "/upload/v1beta/files") == 0);
    // usageMetadata of each line is kept as a direct call's.
    CHECK(env.value("SELECT usage FROM attempts LIMIT 1").find("promptTokenCount") !=
          std::string::npos);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: file mode uploads the JSONL and downloads the responses file") {
    Sim sim({"--batch-ms", "200"});
    DaemonEnv env({kGemini.provider(sim, R"("batch_input": "file")")});
    env.enqueue(kGemini.jobs(5));
    env.run_until_idle();
    check_all_done(env, 5);
    CHECK(env.value("SELECT input_file_id FROM vendor_batches").starts_with("files/"));
    CHECK(env.value("SELECT output_file_id FROM vendor_batches").starts_with("files/"));
    CHECK(path_count(sim, "/upload/v1beta/files") == 2);  // start, then upload + finalize
    CHECK(path_count(sim, "/download/v1beta/files") == 1);
    CHECK(kGemini.stat(sim, "created") == 1);
    CHECK(sim.stat("images") == 5);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: per-line refusals, invalid and server errors are the request's") {
    batch_line_errors(
        kGemini, fast_retry(4, 0), "bad #fail=finish:IMAGE_SAFETY",
        [](const Sim&, const DaemonEnv& env) {
            CHECK(env.attempts("mod") == std::vector<std::string>{"error|moderation|200"});
        });
}

TEST_CASE("gemini batch: an expired batch keeps what completed and returns the rest") {
    batch_expiry(kGemini, 3, 1, "BATCH_STATE_EXPIRED");
}

TEST_CASE("gemini batch: a failed batch is a server error of each line, retried") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({kGemini.provider(sim, "")}, fast_retry(2, 0));
    env.enqueue(job_line("a", "one", kFlash, 1) + job_line("b", "two #batchfail", kFlash, 1));
    env.run_until_idle();
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") ==
          "BATCH_STATE_FAILED");
    CHECK(env.attempts("a").front() == "error|server|0");
    CHECK(env.job_state("b") == "failed");
    CHECK(env.number("SELECT count(*) FROM outputs") == 0);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: a create whose answer was lost is adopted, not submitted again") {
    batch_lost_create(kGemini, [](const Sim&, const DaemonEnv& env) {
        CHECK(env.value("SELECT vendor_id FROM vendor_batches").starts_with("batches/"));
    });
}

TEST_CASE("gemini batch: kill -9 while polling resumes the same vendor batch") {
    batch_kill_at(kGemini, {"--batch-ms", "1500"}, R"("batch_input": "file")", "submitted",
                  "while polling");
}

TEST_CASE("gemini batch: cancel cancels the vendor batch and keeps what it made") {
    batch_cancel(kGemini, "BATCH_STATE_CANCELLED");
}

TEST_CASE("gemini batch: a responses file larger than max_response_bytes streams to disk") {
    batch_large_results(kGemini, R"("batch_input": "file", "max_response_bytes": 8192)",
                        [](const Sim& sim, const DaemonEnv&) {
                            CHECK(path_count(sim, "/download/v1beta/files") == 1);
                        });
}

TEST_CASE("gemini batch: with batch_retry_direct a failed line is retried as a direct call") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({kGemini.provider(sim, R"("batch_retry_direct": "gemd")"),
                   provider_json("gemd", "gemini", sim.url() + "/v1beta", {kFlash})},
                  fast_retry(4, 0));
    env.enqueue(job_line("ok", "fine", kFlash, 1) +
                job_line("srv", "flaky #fail=500*1", kFlash, 1) +
                job_line("pro", "pro flaky #fail=500*1", kPro, 1));
    auto r = env.run_until_idle();
    INFO(DaemonEnv::tail(r.err));
    CHECK(env.job_state("ok") == "succeeded");
    CHECK(env.job_state("srv") == "succeeded");
    CHECK(env.job_state("pro") == "succeeded");
    CHECK(env.attempts("srv") == std::vector<std::string>{"error|server|500", "ok||"});
    // The retry of srv was a direct call on gemd, within the same attempt budget.
    CHECK(env.rows("SELECT provider FROM attempts WHERE job_id = " + env.job_id("srv") +
                   " ORDER BY id") == std::vector<std::string>{"gem", "gemd"});
    CHECK(env.counters("srv") == "2|0|0");
    // gemd does not serve the pro model: that retry went in a later vendor batch.
    CHECK(env.rows("SELECT provider FROM attempts WHERE job_id = " + env.job_id("pro") +
                   " ORDER BY id") == std::vector<std::string>{"gem", "gem"});
    CHECK(path_count(sim, "/v1beta/models/" + kFlash + ":generateContent") == 1);
    CHECK(r.err.find("retry_provider=gemd") != std::string::npos);
    check_batch_kept(env, sim);
}
