// Batch mode through the real binary against `imgbatch sim`: OpenAI Files + Batches end to
// end, per-line errors, expiry, whole-batch failure, kill -9 at each step, cancel. Every test
// counts the images the sim served against the images kept.
#include <signal.h>

#include "tests/integration/batch_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

std::string batch_provider(const Sim& sim, const std::string& extra = "") {
    std::string e = R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2)";
    if (!extra.empty()) e += ", " + extra;
    return openai_provider(sim, "oa", e);
}

long long batch_stat(const Sim& sim, const std::string& name) {
    return sim_section_stat(sim, "batches", name);
}

std::string jobs_of(int count, const std::string& prefix = "k", const std::string& extra = "") {
    std::string s;
    for (int i = 0; i < count; ++i)
        s += job_line(prefix + std::to_string(i), "picture " + std::to_string(i) + extra,
                      "gpt-image-1", 1);
    return s;
}

}  // namespace

TEST_CASE("batch mode: requests go through one vendor batch and are recorded as direct calls") {
    Sim sim({"--batch-ms", "200"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(jobs_of(5) + job_line("two", "two pictures", "gpt-image-1", 2));
    auto r = env.run_until_idle();
    for (int i = 0; i < 5; ++i) {
        CHECK(env.job_state("k" + std::to_string(i)) == "succeeded");
        env.check_outputs("k" + std::to_string(i), 1);
        CHECK(env.attempts("k" + std::to_string(i)) == std::vector<std::string>{"ok||"});
    }
    env.check_outputs("two", 2);
    CHECK(env.value("SELECT state || '|' || vendor_status || '|' || requests || '|' || completed "
                    "FROM vendor_batches") == "done|completed|6|6");
    CHECK(batch_stat(sim, "created") == 1);
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
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({batch_provider(sim)}, fast_retry(4, 1));
    env.enqueue(job_line("ok", "fine", "gpt-image-1", 1) +
                job_line("mod", "bad #fail=moderation", "gpt-image-1", 1) +
                job_line("inv", "odd #fail=invalid", "gpt-image-1", 1) +
                job_line("srv", "flaky #fail=500*1", "gpt-image-1", 1));
    env.run_until_idle();
    CHECK(env.job_state("ok") == "succeeded");
    CHECK(env.job_state("mod") == "blocked");
    CHECK(env.job_state("inv") == "failed");
    CHECK(env.job_state("srv") == "succeeded");
    CHECK(env.attempts("inv") == std::vector<std::string>{"error|invalid_request|400"});
    CHECK(env.attempts("srv") == std::vector<std::string>{"error|server|500", "ok||"});
    auto mod = env.attempts("mod");
    REQUIRE(mod.size() == 2);  // moderation_retries 1: one retry in a later vendor batch
    CHECK(mod[0] == "error|moderation|400");
    env.check_outputs("ok", 1);
    env.check_outputs("srv", 1);
    CHECK(env.number("SELECT count(*) FROM vendor_batches") >= 2);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: an expired batch keeps what completed and returns the rest") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(job_line("a", "one", "gpt-image-1", 1) + job_line("b", "two", "gpt-image-1", 1) +
                job_line("c", "three #expire", "gpt-image-1", 1) +
                job_line("d", "four", "gpt-image-1", 1));
    env.run_until_idle();
    for (const char* k : {"a", "b", "c", "d"}) {
        CHECK(env.job_state(k) == "succeeded");
        env.check_outputs(k, 1);
    }
    CHECK(env.attempts("a") == std::vector<std::string>{"ok||"});
    CHECK(env.attempts("c") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(env.attempts("d") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(env.counters("c") == "1|0|0");  // the return used no attempt
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") == "expired");
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: a failed batch fails the line it names and returns the others") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(job_line("a", "one", "gpt-image-1", 1) +
                job_line("b", "two #batchfail", "gpt-image-1", 1) +
                job_line("c", "three", "gpt-image-1", 1));
    env.run_until_idle();
    CHECK(env.job_state("a") == "succeeded");
    CHECK(env.job_state("b") == "failed");
    CHECK(env.job_state("c") == "succeeded");
    CHECK(env.attempts("b") == std::vector<std::string>{"error|invalid_request|0"});
    CHECK(env.attempts("a") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") == "failed");
    check_batch_kept(env, sim);
}

namespace {

// Starts the daemon, waits for cond, kills it with SIGKILL, then runs it until idle.
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

void check_all_done(const DaemonEnv& env, int count) {
    for (int i = 0; i < count; ++i) {
        INFO("job k" << i);
        CHECK(env.job_state("k" + std::to_string(i)) == "succeeded");
        env.check_outputs("k" + std::to_string(i), 1);
    }
}

}  // namespace

TEST_CASE("batch mode: kill -9 before the upload is answered") {
    Sim sim({"--batch-ms", "100", "--latency-ms", "700"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(jobs_of(4));
    kill_when(
        env, [&] { return env.value("SELECT state FROM vendor_batches LIMIT 1") == "preparing"; },
        "while uploading");
    check_all_done(env, 4);
    CHECK(batch_stat(sim, "created") == 1);
    CHECK(env.number("SELECT count(*) FROM vendor_batches") == 1);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: kill -9 after the upload, before the create") {
    Sim sim({"--batch-ms", "100", "--latency-ms", "700"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(jobs_of(4));
    kill_when(
        env, [&] { return env.value("SELECT state FROM vendor_batches LIMIT 1") == "uploaded"; },
        "after the upload");
    check_all_done(env, 4);
    CHECK(batch_stat(sim, "created") == 1);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: a create whose answer was lost is adopted, not submitted again") {
    Sim sim({"--batch-ms", "300"});
    DaemonEnv env({batch_provider(sim, R"("timeout_s": 2)")});
    env.enqueue(jobs_of(3) + job_line("lost", "lost answer #createlost", "gpt-image-1", 1));
    // The daemon dies in the window between the vendor's create and its record.
    kill_when(
        env, [&] { return batch_stat(sim, "creates_lost") == 1; }, "after the create");
    check_all_done(env, 3);
    env.check_outputs("lost", 1);
    CHECK(batch_stat(sim, "created") == 1);
    CHECK(env.value("SELECT vendor_id FROM vendor_batches") != "");
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: kill -9 while polling resumes the same vendor batch") {
    Sim sim({"--batch-ms", "1500"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(jobs_of(4));
    kill_when(
        env, [&] { return env.value("SELECT state FROM vendor_batches LIMIT 1") == "submitted"; },
        "while polling");
    check_all_done(env, 4);
    CHECK(batch_stat(sim, "created") == 1);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: kill -9 while the output is applied records every line once") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({batch_provider(sim)});
    const int count = 300;
    env.enqueue(jobs_of(count));
    kill_when(
        env,
        [&] {
            auto n = env.number("SELECT count(*) FROM outputs");
            return n > 0 && n < count - 50;
        },
        "while applying");
    check_all_done(env, count);
    CHECK(batch_stat(sim, "created") == 1);
    CHECK(env.number("SELECT count(*) FROM attempts") == count);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: cancel cancels the vendor batch and keeps what it made") {
    Sim sim({"--batch-ms", "3000"});
    DaemonEnv env({batch_provider(sim)});
    env.enqueue(jobs_of(6));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(
        wait_for([&] { return env.value("SELECT state FROM vendor_batches") == "submitted"; }, 30));
    // status and providers list the open vendor batch.
    RunResult status = env.cli({"status"});
    CHECK(status.out.find("vendor batches:") != std::string::npos);
    CHECK(status.out.find(env.value("SELECT vendor_id FROM vendor_batches")) != std::string::npos);
    RunResult providers = env.cli({"providers", "--json"});
    CHECK(providers.out.find("\"vendor_batches\":[{") != std::string::npos);
    RunResult c = env.cli({"cancel", "--batch", "b"});
    INFO(c.err);
    REQUIRE(c.code == 0);
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=vendor_batch_cancel ") != std::string::npos);
    CHECK(env.value("SELECT vendor_status FROM vendor_batches") == "cancelled");
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'cancelled'") == 6);
    check_batch_kept(env, sim);
}

TEST_CASE("batch mode: an output file larger than max_response_bytes streams to disk") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({batch_provider(sim, R"("max_response_bytes": 8192)")});
    env.enqueue(jobs_of(40));
    env.run_until_idle();
    check_all_done(env, 40);
    CHECK(env.number("SELECT sum(bytes) FROM outputs") > 8192);
    CHECK(batch_stat(sim, "created") == 1);
    check_batch_kept(env, sim);
}
