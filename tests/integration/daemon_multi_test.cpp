// Several daemons and one database: a second daemon is refused unless every daemon asks for
// company, never takes a live daemon's requests (whatever PID namespace it runs in), and the
// provider's limits hold over all of them.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;

namespace {

std::string slow_jobs(const std::string& prefix, int count, int slow_ms) {
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines +=
            job_line(prefix + std::to_string(i),
                     prefix + " fox " + std::to_string(i) + " #slow=" + std::to_string(slow_ms),
                     "gpt-image-2", 1);
    return lines;
}

// A pid that no process of this PID namespace has.
const int kForeignPid = 77777;

// Runs `imgbatch args...` in a new PID namespace (as the daemon of a container on the same
// host would run) with pid kForeignPid there. Empty when this machine cannot do that.
std::unique_ptr<Process> start_in_pid_namespace(const DaemonEnv& env,
                                                const std::vector<std::string>& args) {
    if (run_shell("unshare --pid --fork --mount-proc true") != 0) return nullptr;
    std::string cmd = "echo " + std::to_string(kForeignPid - 1) +
                      " > /proc/sys/kernel/ns_last_pid && " + imgbatch_bin() + " --config " +
                      env.config;
    for (const auto& a : args) cmd += " " + a;
    return std::make_unique<Process>(std::vector<std::string>{"/usr/bin/unshare", "--pid", "--fork",
                                                              "--mount-proc", "sh", "-c", cmd},
                                     std::vector<std::string>{}, env.dir.path(), "", /*raw=*/true);
}

}  // namespace

TEST_CASE("multi: a second daemon is refused and names the running one") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(slow_jobs("a", 4, 2000));
    auto first = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 4; }, 20));

    RunResult second = env.cli({"run", "--until-idle"}, "", 30);
    CHECK(second.code == 2);
    CHECK(second.err.find("another daemon is running") != std::string::npos);
    CHECK(second.err.find("pid " + std::to_string(first->pid())) != std::string::npos);

    REQUIRE(first->wait(60) == std::optional<int>(0));
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
    CHECK(sim.stat("requests") == 4);
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
    // The first one stopped cleanly: the next run starts.
    CHECK(env.value("SELECT count(*) FROM daemons WHERE stopped_at IS NULL") == "0");
    RunResult third = env.cli({"run", "--until-idle"}, "", 30);
    CHECK(third.code == 0);
}

TEST_CASE("multi: a daemon in another PID namespace is not taken for dead") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    REQUIRE(::kill(kForeignPid, 0) != 0);  // no such process here
    env.enqueue(slow_jobs("ns", 4, 3000));
    auto first = start_in_pid_namespace(env, {"run", "--until-idle", "--allow-multiple"});
    if (!first) {
        MESSAGE("unshare --pid is not available here: skipped");
        return;
    }
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 4; }, 20));
    CHECK(env.value("SELECT pid FROM daemons WHERE stopped_at IS NULL") ==
          std::to_string(kForeignPid));

    // A second daemon on this host starts beside it: the leases of the first are not its to
    // take, though no process here has the first one's pid.
    RunResult second = env.cli({"run", "--until-idle", "--allow-multiple"}, "", 30);
    INFO("second: " << DaemonEnv::tail(second.err));
    CHECK(second.code == 0);
    CHECK(second.err.find("event=owner_gone") == std::string::npos);

    REQUIRE(first->wait(60).has_value());
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
    for (int i = 0; i < 4; ++i) env.check_outputs("ns" + std::to_string(i), 1);
    CHECK(sim.stat("requests") == 4);  // nothing asked for twice
    CHECK(sim.stat("images") == 4);
}

TEST_CASE("multi: a daemon killed with SIGKILL gives its requests back at once") {
    Sim sim;
    // Long leases: only the free lock file can explain a quick requeue.
    DaemonEnv env({openai_provider(sim, "p", R"("timeout_s": 120)")});
    env.enqueue(slow_jobs("k", 2, 1500));
    auto first = env.start_run({"--allow-multiple"});
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 2; }, 20));
    first->signal(SIGKILL);
    REQUIRE(first->wait(10).has_value());

    auto t0 = Clock::now();
    RunResult second = env.cli({"run", "--until-idle"}, "", 60);
    INFO("second: " << DaemonEnv::tail(second.err));
    CHECK(second.code == 0);
    CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 40);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 2);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE error_code = 'lease_expired'") == 2);
}

TEST_CASE("multi: daemons started with --allow-multiple share the provider's concurrency") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 3)")});
    env.enqueue(slow_jobs("c", 18, 600));
    auto a = env.start_run({"--until-idle", "--allow-multiple"});
    auto b = env.start_run({"--until-idle", "--allow-multiple"});
    REQUIRE(a->wait(90) == std::optional<int>(0));
    REQUIRE(b->wait(90) == std::optional<int>(0));
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 18);
    CHECK(sim.stat("max_in_flight") <= 3);
    CHECK(sim.stat("requests") == 18);
    // Both took part.
    CHECK(env.number("SELECT count(DISTINCT owner) FROM daemons") == 2);
}

TEST_CASE("pauses: only the probe's answer resumes a provider; a user's pause stays") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 2)")},
                  R"({"max_attempts": 4, "base_delay_s": 0.05, "max_delay_s": 0.5,
                      "auth_probe_s": 0.3})");
    // A: a slow good call. B: refused for its key, slowly, every time; its first refusal
    // pauses the provider, and B is then the probe, still on the wire when A succeeds.
    env.enqueue(job_line("a", "slow good #slow=3000", "gpt-image-2", 1) +
                job_line("b", "bad key #fail=auth #slow=1500", "gpt-image-2", 1));
    RunResult r = env.cli({"run", "--max-seconds", "5"}, "", 30);
    INFO("stderr: " << DaemonEnv::tail(r.err));
    CHECK(r.code == 0);
    CHECK(env.job_state("a") == "succeeded");
    CHECK(r.err.find("event=provider_paused") != std::string::npos);
    // A's success during B's probe is no proof that the key works.
    CHECK(r.err.find("event=provider_resumed") == std::string::npos);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "1");
}
