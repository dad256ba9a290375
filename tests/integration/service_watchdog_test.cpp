// What systemd sees of the daemon (README "Running under systemd", "Watchdog"): STATUS= with
// the queue, in flight, images and paused providers from the start; WATCHDOG=1 only when the
// unit asks for it ($WATCHDOG_USEC) and only while the database thread makes progress (a DB
// thread stuck in one step, here behind a write lock another program holds, stops them).
#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/notify_listener.hpp"

using namespace imgbatch::test;

namespace {

std::unique_ptr<Process> start_notified(const DaemonEnv& env, NotifyListener& notify,
                                        std::vector<std::string> extra_env = {}) {
    extra_env.push_back(notify.env());
    auto p = std::make_unique<Process>(std::vector<std::string>{"--config", env.config, "run"},
                                       extra_env, env.dir.path());
    INFO("notifications: " << notify.log());
    REQUIRE(notify.wait_for("READY=1", 30) == "READY=1");
    return p;
}

int count_of(const NotifyListener& notify, const std::string& message) {
    int n = 0;
    for (const auto& m : notify.messages()) n += m == message;
    return n;
}

}  // namespace

TEST_CASE("service: STATUS= from the start names the queue, in flight, images and pauses") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p"), google_provider(sim, "held")});
    env.enqueue(job_line("slow", "a slow heron #slow=6000", "gpt-image-2", 1) +
                job_line("g1", "a goose", "imagen-4.0-generate-001", 1) +
                job_line("g2", "a gull", "imagen-4.0-generate-001", 1));
    REQUIRE(env.cli({"pause", "held", "--reason", "maintenance"}).code == 0);
    NotifyListener notify(env.dir.path());
    auto daemon = start_notified(env, notify);
    INFO("notifications: " << notify.log());
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));

    // The first STATUS= comes at start, not after the first progress interval.
    std::string status = notify.wait_for("STATUS=queue ", 5);
    REQUIRE(!status.empty());
    CHECK(status.find(", in flight ") != std::string::npos);
    CHECK(status.find(", images 0") != std::string::npos);
    CHECK(status.find("paused: held (maintenance)") != std::string::npos);
    // The paused provider's two requests stay in the queue while the slow call is in flight.
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 1; }, 20));
    std::string busy = notify.wait_for("STATUS=queue 2, in flight 1, images 0, paused: held", 15);
    CHECK(!busy.empty());
    // Once the image is in, the count follows.
    CHECK(!notify.wait_for("STATUS=queue 2, in flight 0, images 1", 20).empty());
    // No WATCHDOG_USEC: no watchdog messages.
    CHECK(count_of(notify, "WATCHDOG=1") == 0);

    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}

TEST_CASE("service: WATCHDOG=1 stops while the DB thread is stuck and resumes after") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("fox", "a fox", "gpt-image-2", 1));
    NotifyListener notify(env.dir.path());
    // WatchdogSec=2: WATCHDOG=1 every 0.5 s while healthy.
    auto daemon = start_notified(env, notify, {"WATCHDOG_USEC=2000000"});
    INFO("notifications: " << notify.log());
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(notify.wait_for("WATCHDOG=1", 5) == "WATCHDOG=1");
    REQUIRE(notify.wait_for("WATCHDOG=1", 5) == "WATCHDOG=1");
    REQUIRE(wait_for([&] { return env.job_state("fox") == "succeeded"; }, 30));
    // A healthy start: the messages never stopped.
    CHECK(occurrences(daemon->err(), "event=watchdog_held") == 0);

    {
        // Another program holds the write lock: the daemon's next write (its heartbeat, every
        // 5 s) waits in busy_timeout (10 s), one step the DB thread cannot leave.
        SQLite::Database other(env.db, SQLite::OPEN_READWRITE);
        other.exec("BEGIN IMMEDIATE");
        REQUIRE(
            wait_for([&] { return occurrences(daemon->err(), "event=watchdog_held") == 1; }, 20));
        // The step lasts up to 10 s: for the 3 s after the daemon said so (longer than the
        // 2 s WatchdogSec, so systemd would kill it), nothing comes.
        // (What was sent before it said so is read first.)
        while (!notify.receive(0.3).empty()) {
        }
        const int before = count_of(notify, "WATCHDOG=1");
        notify.wait_for("WATCHDOG=1", 3);
        CHECK(count_of(notify, "WATCHDOG=1") == before);
        other.exec("ROLLBACK");
    }
    // The lock is gone: the step ends and the messages come again.
    CHECK(notify.wait_for("WATCHDOG=1", 15) == "WATCHDOG=1");
    CHECK(wait_for([&] { return occurrences(daemon->err(), "event=watchdog_resumed") == 1; }, 15));

    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}
