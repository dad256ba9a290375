#pragma once
// The scenarios both vendor batch modes go through (daemon_batch_test.cpp: OpenAI Batch,
// daemon_gemini_batch_test.cpp: Gemini Batch Mode), run through the real binary against
// `imgbatch sim`. A vendor is described once (BatchVendor); each scenario makes its sim and
// daemon, runs the common steps and checks, and calls back for the vendor's own checks. Every
// scenario ends with check_batch_kept: the images the sim served against the images kept.
#include <signal.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/integration/batch_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

namespace imgbatch::test {

// The provider options of batch mode with quick polls, then extra (more "key": value pairs).
inline std::string batch_options(const std::string& extra = "") {
    std::string e = R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2)";
    if (!extra.empty()) e += ", " + extra;
    return e;
}

// A vendor's batch mode as the scenarios use it.
struct BatchVendor {
    std::string section;  // the sim's /sim/stats section of this vendor's batches
    std::string model;    // the model of the scenarios' jobs
    std::string word;     // the jobs' prompts: "<word> <i>"
    // The provider entry in batch mode: batch_options(extra) on the sim.
    std::function<std::string(const Sim&, const std::string& extra)> provider;

    // A counter of the vendor's batches in /sim/stats (created, lines, creates_lost).
    long long stat(const Sim& sim, const std::string& name) const {
        return sim_section_stat(sim, section, name);
    }
    // count jobs k0, k1, ... of one image each, prompt "<word> <i><extra>".
    std::string jobs(int count, const std::string& extra = "") const {
        std::string s;
        for (int i = 0; i < count; ++i)
            s +=
                job_line("k" + std::to_string(i), word + " " + std::to_string(i) + extra, model, 1);
        return s;
    }
};

// The vendor's own checks of a scenario, after the common ones and before check_batch_kept.
using BatchChecks = std::function<void(const Sim&, const DaemonEnv&)>;

// Jobs k0 .. k<count-1> succeeded, one file each.
inline void check_all_done(const DaemonEnv& env, int count) {
    for (int i = 0; i < count; ++i) {
        INFO("job k" << i);
        CHECK(env.job_state("k" + std::to_string(i)) == "succeeded");
        env.check_outputs("k" + std::to_string(i), 1);
    }
}

// Starts the daemon, waits for cond, kills it with SIGKILL, then runs it until idle.
inline void kill_when(const DaemonEnv& env, const std::function<bool()>& cond, const char* what) {
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

// Jobs ok (fine), mod (mod_prompt: refused), inv (#fail=invalid), srv (#fail=500*1): each
// line's error is its request's, classified as a direct call's; srv is retried and succeeds.
inline void batch_line_errors(const BatchVendor& v, const std::string& retry,
                              const std::string& mod_prompt, const BatchChecks& more = {}) {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({v.provider(sim, "")}, retry);
    env.enqueue(job_line("ok", "fine", v.model, 1) + job_line("mod", mod_prompt, v.model, 1) +
                job_line("inv", "odd #fail=invalid", v.model, 1) +
                job_line("srv", "flaky #fail=500*1", v.model, 1));
    env.run_until_idle();
    CHECK(env.job_state("ok") == "succeeded");
    CHECK(env.job_state("mod") == "blocked");
    CHECK(env.job_state("inv") == "failed");
    CHECK(env.job_state("srv") == "succeeded");
    CHECK(env.attempts("inv") == std::vector<std::string>{"error|invalid_request|400"});
    CHECK(env.attempts("srv") == std::vector<std::string>{"error|server|500", "ok||"});
    env.check_outputs("ok", 1);
    env.check_outputs("srv", 1);
    if (more) more(sim, env);
    check_batch_kept(env, sim);
}

// Jobs a, b, c, ... (prompts "one", "two", ...; count of them) with #expire on the one at
// expire_at (0-based): the batch expires (vendor status expired_status); every job succeeds,
// the first with one attempt, the expiring one and those after it returned first.
inline void batch_expiry(const BatchVendor& v, int count, int expire_at,
                         const std::string& expired_status, const BatchChecks& more = {}) {
    static const char* const kPrompts[] = {"one", "two", "three", "four", "five"};
    REQUIRE(count <= 5);
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({v.provider(sim, "")});
    std::string jobs;
    for (int i = 0; i < count; ++i)
        jobs += job_line(std::string(1, static_cast<char>('a' + i)),
                         std::string(kPrompts[i]) + (i == expire_at ? " #expire" : ""), v.model, 1);
    env.enqueue(jobs);
    env.run_until_idle();
    for (int i = 0; i < count; ++i) {
        const std::string k(1, static_cast<char>('a' + i));
        INFO("job " << k);
        CHECK(env.job_state(k) == "succeeded");
        env.check_outputs(k, 1);
        CHECK(env.attempts(k) == (i < expire_at ? std::vector<std::string>{"ok||"}
                                                : std::vector<std::string>{"returned||", "ok||"}));
    }
    CHECK(env.value("SELECT vendor_status FROM vendor_batches ORDER BY id LIMIT 1") ==
          expired_status);
    if (more) more(sim, env);
    check_batch_kept(env, sim);
}

// Four jobs; the daemon is killed (SIGKILL) once the vendor batch's state is state, then run
// until idle: every job done once, one vendor batch created.
inline void batch_kill_at(const BatchVendor& v, const std::vector<std::string>& sim_args,
                          const std::string& provider_extra, const std::string& state,
                          const char* what, const BatchChecks& more = {}) {
    Sim sim(sim_args);
    DaemonEnv env({v.provider(sim, provider_extra)});
    env.enqueue(v.jobs(4));
    kill_when(
        env, [&] { return env.value("SELECT state FROM vendor_batches LIMIT 1") == state; }, what);
    check_all_done(env, 4);
    CHECK(v.stat(sim, "created") == 1);
    if (more) more(sim, env);
    check_batch_kept(env, sim);
}

// The daemon dies in the window between the vendor's create and its record (#createlost: the
// create's answer never comes): the batch is adopted after the restart, not submitted again.
inline void batch_lost_create(const BatchVendor& v, const BatchChecks& more = {}) {
    Sim sim({"--batch-ms", "300"});
    DaemonEnv env({v.provider(sim, R"("timeout_s": 2)")});
    env.enqueue(v.jobs(3) + job_line("lost", "lost answer #createlost", v.model, 1));
    kill_when(
        env, [&] { return v.stat(sim, "creates_lost") == 1; }, "after the create");
    check_all_done(env, 3);
    env.check_outputs("lost", 1);
    CHECK(v.stat(sim, "created") == 1);
    if (more) more(sim, env);
    check_batch_kept(env, sim);
}

// `imgbatch cancel --batch b` while the vendor batch runs: the daemon cancels it (vendor status
// cancelled_status), the jobs are cancelled and what was made is kept. while_open runs once the
// batch is submitted, before the cancel.
inline void batch_cancel(const BatchVendor& v, const std::string& cancelled_status,
                         const BatchChecks& while_open = {}) {
    Sim sim({"--batch-ms", "3000"});
    DaemonEnv env({v.provider(sim, "")});
    env.enqueue(v.jobs(6));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(
        wait_for([&] { return env.value("SELECT state FROM vendor_batches") == "submitted"; }, 30));
    if (while_open) while_open(sim, env);
    RunResult c = env.cli({"cancel", "--batch", "b"});
    INFO(c.err);
    REQUIRE(c.code == 0);
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=vendor_batch_cancel ") != std::string::npos);
    CHECK(env.value("SELECT vendor_status FROM vendor_batches") == cancelled_status);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'cancelled'") == 6);
    check_batch_kept(env, sim);
}

// 40 jobs whose results (with provider_extra's "max_response_bytes": 8192) are larger than
// one answer may hold: the results file streams to disk and every job is done.
inline void batch_large_results(const BatchVendor& v, const std::string& provider_extra,
                                const BatchChecks& more = {}) {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({v.provider(sim, provider_extra)});
    env.enqueue(v.jobs(40));
    env.run_until_idle();
    check_all_done(env, 40);
    // The images alone (base64 in the file is larger still) exceed what one answer may hold.
    CHECK(env.number("SELECT sum(bytes) FROM outputs") > 8192);
    if (more) more(sim, env);
    check_batch_kept(env, sim);
}

}  // namespace imgbatch::test
