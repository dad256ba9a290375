// Stopping and crashing: SIGTERM returns unfinished requests without using an attempt, and
// a daemon killed with SIGKILL at arbitrary moments loses no finished image and records
// none twice.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;

namespace {

// Waits until the sim has `want` calls in flight (false after timeout_s).
bool wait_in_flight(const Sim& sim, long long want, double timeout_s) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (Clock::now() < deadline) {
        if (sim.stat("in_flight") >= want) return true;
        sleep_s(0.02);
    }
    return false;
}

std::string slow_jobs(int count, int slow_ms) {
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += job_line("s" + std::to_string(i),
                          "slow fox " + std::to_string(i) + " #slow=" + std::to_string(slow_ms),
                          "gpt-image-2", 1);
    return lines;
}

}  // namespace

TEST_CASE("recovery: SIGTERM returns calls still running after the grace, unused") {
    Sim sim;
    const double grace = 1;
    DaemonEnv env({openai_provider(sim, "p")}, fast_retry(), grace);
    env.enqueue(slow_jobs(4, 4000));
    auto daemon = env.start_run();
    REQUIRE(wait_in_flight(sim, 4, 20));

    auto t0 = Clock::now();
    daemon->signal(SIGTERM);
    auto code = daemon->wait(grace + 10);
    double took = std::chrono::duration<double>(Clock::now() - t0).count();
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(took < grace + 10);

    CHECK(env.number("SELECT count(*) FROM requests WHERE state = 'running'") == 0);
    CHECK(env.number("SELECT count(*) FROM requests WHERE state = 'queued'") == 4);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'queued'") == 4);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome = 'returned'") == 4);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome != 'returned'") == 0);
    CHECK(env.number("SELECT sum(attempts) FROM requests") == 0);  // nothing used up
    CHECK(env.number("SELECT count(*) FROM outputs") == 0);

    // The next run finishes the work; returned attempts are not counted in the export.
    env.run_until_idle(60);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
    for (int i = 0; i < 4; ++i) env.check_outputs("s" + std::to_string(i), 1);
    RunResult ex = env.cli({"export", "--format", "jsonl"});
    REQUIRE(ex.code == 0);
    std::regex attempts_re("\"attempts\"\\s*:\\s*([0-9]+)");
    int records = 0;
    for (auto it = std::sregex_iterator(ex.out.begin(), ex.out.end(), attempts_re);
         it != std::sregex_iterator(); ++it, ++records)
        CHECK((*it)[1].str() == "1");
    CHECK(records == 4);
}

TEST_CASE("recovery: SIGTERM lets calls that end within the grace finish normally") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")}, fast_retry(), 30);
    env.enqueue(slow_jobs(4, 800));
    auto daemon = env.start_run();
    REQUIRE(wait_in_flight(sim, 4, 20));
    daemon->signal(SIGTERM);
    auto code = daemon->wait(40);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome = 'returned'") == 0);
    CHECK(env.number("SELECT count(*) FROM requests WHERE state = 'running'") == 0);
    for (int i = 0; i < 4; ++i) env.check_outputs("s" + std::to_string(i), 1);
}

TEST_CASE("recovery: SIGKILL at arbitrary moments loses and duplicates nothing") {
    Sim sim({"--latency-ms", "150", "--jitter-ms", "150"});
    // Short timeouts keep the leases of killed daemons short (timeouts + 60 s).
    DaemonEnv env({openai_provider(sim, "p", R"("timeout_s": 2, "connect_timeout_s": 1)")});
    const int jobs = 80, n = 2;
    std::string lines;
    for (int i = 0; i < jobs; ++i)
        lines +=
            job_line("k" + std::to_string(i), "crash fox " + std::to_string(i), "gpt-image-2", n);
    env.enqueue(lines);

    std::mt19937 rng(20240601);
    std::uniform_real_distribution<double> moment(0.05, 1.2);
    for (int round = 0; round < 7; ++round) {
        auto daemon = env.start_run();
        sleep_s(moment(rng));
        daemon->signal(SIGKILL);
        REQUIRE(daemon->wait(10).has_value());
    }
    MESSAGE(
        "after the kills: " << env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
                            << " jobs succeeded, "
                            << env.number("SELECT count(*) FROM requests WHERE state = 'running'")
                            << " requests under a dead lease");

    // The final run requeues the leases of the killed daemons when they expire (timeouts +
    // 60 s) and finishes everything.
    env.run_until_idle(180);

    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == jobs);
    CHECK(env.number("SELECT count(*) FROM requests WHERE state != 'succeeded'") == 0);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE images_done != n") == 0);
    CHECK(env.number("SELECT count(*) FROM outputs") == jobs * n);
    CHECK(env.number("SELECT count(DISTINCT path) FROM outputs") == jobs * n);
    for (int i = 0; i < jobs; ++i) env.check_outputs("k" + std::to_string(i), n);

    // No image on disk that the database does not know (temporary files aside).
    std::set<std::string> recorded;
    for (const auto& p : env.rows("SELECT path FROM outputs"))
        recorded.insert(std::filesystem::weakly_canonical(p).string());
    int unrecorded = 0, tmp = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(env.out)) {
        if (!e.is_regular_file()) continue;
        std::string name = e.path().filename().string();
        if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
            ++tmp;
            continue;
        }
        if (!recorded.count(std::filesystem::weakly_canonical(e.path()).string())) {
            ++unrecorded;
            MESSAGE("unrecorded file " << e.path().string());
        }
    }
    CHECK(unrecorded == 0);
    MESSAGE(tmp << " temporary files left");
    CHECK(env.value("PRAGMA integrity_check") == "ok");
}
