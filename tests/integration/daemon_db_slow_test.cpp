// Database trouble during a run: another program holding the write lock for longer than the
// busy timeout must not cost a single paid image, nor make the daemon ask for one twice.
// (Slow: holds the database for 30 s.)
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;

namespace {}  // namespace

TEST_CASE("db: a write lock held past the busy timeout loses no image and pays nothing twice") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 8)")});
    const int jobs = 12;
    std::string lines;
    for (int i = 0; i < jobs; ++i)
        lines += job_line("k" + std::to_string(i),
                          "locked fox " + std::to_string(i) + " #slow=1500", "gpt-image-2", 1);
    env.enqueue(lines);

    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("in_flight") >= 8; }, 20));
    {
        // Another program (a feeder's bulk insert, an open sqlite3 shell) takes the write
        // lock and keeps it for 30 s: the answers of the 8 calls in flight arrive meanwhile.
        SQLite::Database other(env.db, SQLite::OPEN_READWRITE);
        other.exec("PRAGMA busy_timeout = 10000");
        other.exec("BEGIN IMMEDIATE");
        sleep_s(30);
        // The database thread takes claims before a group commit, each waiting out the
        // 10 s busy timeout: on a loaded machine the first try of the commit may come only
        // at the end of the 30 s. The lock is kept until that try has failed.
        CHECK(wait_for(
            [&] { return daemon->err().find("event=commit_failed") != std::string::npos; }, 40));
        other.exec("COMMIT");
    }
    auto code = daemon->wait(90);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err(), 6000));
    REQUIRE(code.has_value());
    CHECK(*code == 0);

    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == jobs);
    for (int i = 0; i < jobs; ++i) env.check_outputs("k" + std::to_string(i), 1);
    // Every image the provider generated was kept; none was asked for twice.
    CHECK(sim.stat("images") == jobs);
    CHECK(sim.stat("requests") == jobs);
    CHECK(env.number("SELECT count(*) FROM outputs") == jobs);
    CHECK(env.number("SELECT count(*) FROM attempts") == jobs);
}
