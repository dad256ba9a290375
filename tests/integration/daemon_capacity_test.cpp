// Paid capacity is not left idle: a lane's slot frees when the answer is in, not when its
// files and records are done; every slot taken is given back exactly once; `--until-idle`
// exits as soon as the last request is recorded.
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;

TEST_CASE("capacity: the next call starts while the last answer's commit waits for the database") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 1)")});
    env.enqueue(job_line("a", "first fox #slow=1500", "gpt-image-2", 1) +
                job_line("b", "second fox #slow=300", "gpt-image-2", 1));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 1; }, 20));
    bool second_started = false;
    {
        // Another program holds the write lock: the first answer cannot be recorded.
        SQLite::Database other(env.db, SQLite::OPEN_READWRITE);
        other.exec("PRAGMA busy_timeout = 10000");
        other.exec("BEGIN IMMEDIATE");
        // The lane's only slot is free once the first answer is in: the second call starts.
        second_started = wait_for([&] { return sim.stat("requests") >= 2; }, 8);
        other.exec("COMMIT");
    }
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err(), 6000));
    CHECK(second_started);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    env.check_outputs("a", 1);
    env.check_outputs("b", 1);
    CHECK(sim.stat("images") == 2);
    CHECK(sim.stat("requests") == 2);
    CHECK(sim.stat("max_in_flight") == 1);  // the limit held
}

TEST_CASE("capacity: a request claimed again while its old attempt runs leaks no lane slot") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 2)")});
    env.enqueue(job_line("a", "requeued fox #slow=2500", "gpt-image-2", 1));
    auto daemon = env.start_run();
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 1; }, 20));
    // Something outside the daemon puts the running request back in the queue (as another
    // daemon's expiry or an operator would): the daemon claims it again while its first
    // attempt still runs.
    env.exec(
        "UPDATE requests SET state = 'queued', lease_owner = NULL, lease_until = NULL "
        "WHERE state = 'running'");
    REQUIRE(wait_for([&] { return sim.stat("requests") >= 2; }, 10));
    REQUIRE(wait_for([&] { return env.job_state("a") == "succeeded"; }, 20));
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 0; }, 10));
    sleep_s(0.5);  // both attempts ended
    sim.reset();
    // Both slots of the lane are free again: two new calls run side by side.
    env.enqueue(job_line("c", "third fox #slow=2000", "gpt-image-2", 1) +
                    job_line("d", "fourth fox #slow=2000", "gpt-image-2", 1),
                "b2");
    bool both = wait_for([&] { return sim.stat("in_flight") >= 2; }, 10);
    daemon->signal(SIGTERM);
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err(), 6000));
    CHECK(both);
    REQUIRE(code.has_value());
}

TEST_CASE("capacity: run --until-idle exits once the last request is recorded, not a poll later") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 2)")});
    // A long poll interval: the idle check must not wait for the next tick.
    std::string text = read_file(env.config);
    auto at = text.find("\"poll_interval_s\": 0.1");
    REQUIRE(at != std::string::npos);
    text.replace(at, std::string("\"poll_interval_s\": 0.1").size(), "\"poll_interval_s\": 60");
    write_file(env.config, text);
    env.enqueue(job_line("a", "idle fox #slow=500", "gpt-image-2", 1));
    auto daemon = env.start_run({"--until-idle"});
    auto code = daemon->wait(20);  // the next tick would be 60 s after the start
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err(), 6000));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    env.check_outputs("a", 1);
}
