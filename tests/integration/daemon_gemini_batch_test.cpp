// Gemini Batch Mode through the real binary against `imgbatch sim`: inline requests and an
// uploaded file (Files API) end to end, per-line errors through the gemini answer parser,
// expiry, whole-batch failure, kill -9 after the create and while polling, cancel. Every test
// counts the images the sim served against the images kept.
#include <signal.h>

#include "tests/integration/batch_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

const std::string kFlash = "gemini-2.5-flash-image";
const std::string kPro = "gemini-3-pro-image-preview";

std::string gemini_batch_provider(const Sim& sim, const std::string& extra = "") {
    std::string e = R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2)";
    if (!extra.empty()) e += ", " + extra;
    return provider_json("gem", "gemini", sim.url() + "/v1beta", {kFlash, kPro}, e);
}

long long gstat(const Sim& sim, const std::string& name) {
    return sim_section_stat(sim, "gemini_batches", name);
}

long long path_count(const Sim& sim, const std::string& path) {
    const std::string s = sim.stats_json();
    auto k = s.find("\"" + path + "\":");
    if (k == std::string::npos) return 0;
    return std::stoll(s.substr(k + path.size() + 3));
}

std::string jobs_of(int count, const std::string& extra = "") {
    std::string s;
    for (int i = 0; i < count; ++i)
        s += job_line("k" + std::to_string(i), "fox " + std::to_string(i) + extra, kFlash, 1);
    return s;
}

void check_all_done(const DaemonEnv& env, int count) {
    for (int i = 0; i < count; ++i) {
        INFO("job k" << i);
        CHECK(env.job_state("k" + std::to_string(i)) == "succeeded");
        env.check_outputs("k" + std::to_string(i), 1);
    }
}

void kill_when(const DaemonEnv& env, const std::function<bool()>& cond, const char* what) {
    INFO("kill -9 " << what);
    {
        auto daemon = env.start_run();
        bool reached = wait_for(cond, 60);
        INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
        REQUIRE(reached);
        daemon->signal(SIGKILL);
        REQUIRE(daemon->wait(10));
    }
    env.run_until_idle();
}

}  // namespace

TEST_CASE("gemini batch: inline requests, one vendor batch a model, results inline") {
    Sim sim({"--batch-ms", "200", "--api-key", "g-secret"});
    TempDir keys;
    const std::string key_file = keys.file("key");
    write_file(key_file, "g-secret\n");
    DaemonEnv env({gemini_batch_provider(sim, "\"api_key_file\": " + json_str(key_file))});
    env.enqueue(jobs_of(4) +
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
    CHECK(gstat(sim, "created") == 2);
    CHECK(gstat(sim, "lines") == 6);
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
    DaemonEnv env({gemini_batch_provider(sim, R"("batch_input": "file")")});
    env.enqueue(jobs_of(5));
    env.run_until_idle();
    check_all_done(env, 5);
    CHECK(env.value("SELECT input_file_id FROM vendor_batches").starts_with("files/"));
    CHECK(env.value("SELECT output_file_id FROM vendor_batches").starts_with("files/"));
    CHECK(path_count(sim, "/upload/v1beta/files") == 2);  // start, then upload + finalize
    CHECK(path_count(sim, "/download/v1beta/files") == 1);
    CHECK(gstat(sim, "created") == 1);
    CHECK(sim.stat("images") == 5);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: per-line refusals, invalid and server errors are the request's") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({gemini_batch_provider(sim)}, fast_retry(4, 0));
    env.enqueue(job_line("ok", "fine", kFlash, 1) +
                job_line("mod", "bad #fail=finish:IMAGE_SAFETY", kFlash, 1) +
                job_line("inv", "odd #fail=invalid", kFlash, 1) +
                job_line("srv", "flaky #fail=500*1", kFlash, 1));
    env.run_until_idle();
    CHECK(env.job_state("ok") == "succeeded");
    CHECK(env.job_state("mod") == "blocked");
    CHECK(env.job_state("inv") == "failed");
    CHECK(env.job_state("srv") == "succeeded");
    CHECK(env.attempts("mod") == std::vector<std::string>{"error|moderation|200"});
    CHECK(env.attempts("inv") == std::vector<std::string>{"error|invalid_request|400"});
    CHECK(env.attempts("srv") == std::vector<std::string>{"error|server|500", "ok||"});
    env.check_outputs("ok", 1);
    env.check_outputs("srv", 1);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: an expired batch keeps what completed and returns the rest") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({gemini_batch_provider(sim)});
    env.enqueue(job_line("a", "one", kFlash, 1) + job_line("b", "two #expire", kFlash, 1) +
                job_line("c", "three", kFlash, 1));
    env.run_until_idle();
    for (const char* k : {"a", "b", "c"}) {
        CHECK(env.job_state(k) == "succeeded");
        env.check_outputs(k, 1);
    }
    CHECK(env.attempts("a") == std::vector<std::string>{"ok||"});
    CHECK(env.attempts("b") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") ==
          "BATCH_STATE_EXPIRED");
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: a failed batch is a server error of each line, retried") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({gemini_batch_provider(sim)}, fast_retry(2, 0));
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
    Sim sim({"--batch-ms", "300"});
    DaemonEnv env({gemini_batch_provider(sim, R"("timeout_s": 2)")});
    env.enqueue(jobs_of(3) + job_line("lost", "lost answer #createlost", kFlash, 1));
    kill_when(
        env, [&] { return gstat(sim, "creates_lost") == 1; }, "after the create");
    check_all_done(env, 3);
    env.check_outputs("lost", 1);
    CHECK(gstat(sim, "created") == 1);
    CHECK(env.value("SELECT vendor_id FROM vendor_batches").starts_with("batches/"));
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: kill -9 while polling resumes the same vendor batch") {
    Sim sim({"--batch-ms", "1500"});
    DaemonEnv env({gemini_batch_provider(sim, R"("batch_input": "file")")});
    env.enqueue(jobs_of(4));
    kill_when(
        env, [&] { return env.value("SELECT state FROM vendor_batches LIMIT 1") == "submitted"; },
        "while polling");
    check_all_done(env, 4);
    CHECK(gstat(sim, "created") == 1);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: cancel cancels the vendor batch and keeps what it made") {
    Sim sim({"--batch-ms", "3000"});
    DaemonEnv env({gemini_batch_provider(sim)});
    env.enqueue(jobs_of(6));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(
        wait_for([&] { return env.value("SELECT state FROM vendor_batches") == "submitted"; }, 30));
    RunResult c = env.cli({"cancel", "--batch", "b"});
    INFO(c.err);
    REQUIRE(c.code == 0);
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=vendor_batch_cancel ") != std::string::npos);
    CHECK(env.value("SELECT vendor_status FROM vendor_batches") == "BATCH_STATE_CANCELLED");
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'cancelled'") == 6);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: a responses file larger than max_response_bytes streams to disk") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env(
        {gemini_batch_provider(sim, R"("batch_input": "file", "max_response_bytes": 8192)")});
    env.enqueue(jobs_of(40));
    env.run_until_idle();
    check_all_done(env, 40);
    // The images alone (base64 in the file is larger still) exceed what one answer may hold.
    CHECK(env.number("SELECT sum(bytes) FROM outputs") > 8192);
    CHECK(path_count(sim, "/download/v1beta/files") == 1);
    check_batch_kept(env, sim);
}

TEST_CASE("gemini batch: with batch_retry_direct a failed line is retried as a direct call") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({gemini_batch_provider(sim, R"("batch_retry_direct": "gemd")"),
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
