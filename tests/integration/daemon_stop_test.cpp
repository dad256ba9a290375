// Stopping and restarting the daemon without paying twice: systemd notifications while calls
// drain (STOPPING=1, EXTEND_TIMEOUT_USEC), the "auto" shutdown grace, a second signal, a claim
// on its way when the stop begins; and a provider paused for a wrong key that is probed again
// at start and on SIGHUP once the key is fixed.
#include <doctest/doctest.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"
#include "tests/integration/notify_listener.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;

namespace {

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
    std::string text = read_file(path);
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    write_file(path, text.replace(at, from.size(), to));
}

// DaemonEnv writes a number; these tests use the default, "auto".
void use_auto_grace(const DaemonEnv& env) {
    replace_in_file(env.config, "\"shutdown_grace_s\": " + std::to_string(10.0),
                    "\"shutdown_grace_s\": \"auto\"");
}

// `imgbatch run` (until signalled) with NOTIFY_SOCKET pointing at the listener; waits for
// READY=1.
std::unique_ptr<Process> start_notified(const DaemonEnv& env, NotifyListener& notify) {
    auto p = std::make_unique<Process>(std::vector<std::string>{"--config", env.config, "run"},
                                       std::vector<std::string>{notify.env()}, env.dir.path());
    INFO("notifications: " << notify.log());
    REQUIRE(notify.wait_for("READY=1", 30) == "READY=1");
    return p;
}

long long running(const DaemonEnv& env) {
    return env.number("SELECT count(*) FROM requests WHERE state = 'running'");
}

}  // namespace

TEST_CASE("stop: STOPPING=1 at SIGTERM, EXTEND_TIMEOUT_USEC while a slow call drains, image kept") {
    Sim sim;
    // Call deadlines 5 + 20 s: the "auto" grace waits for them (plus a margin).
    DaemonEnv env({openai_provider(sim, "p")});
    use_auto_grace(env);
    env.enqueue(job_line("heron", "a slow heron #slow=8000", "gpt-image-2", 2));
    NotifyListener notify(env.dir.path());
    auto daemon = start_notified(env, notify);
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 1; }, 20));

    daemon->signal(SIGTERM);
    INFO("notifications: " << notify.log());
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(notify.wait_for("STOPPING=1", 10) == "STOPPING=1");
    // Sent when the signal arrived, not at exit: the call is still on the wire.
    CHECK(sim.stat("images") == 0);
    std::string extend = notify.wait_for("EXTEND_TIMEOUT_USEC=", 10);
    REQUIRE(!extend.empty());
    CHECK(std::stoll(extend.substr(20)) >= 1'000'000);
    CHECK(sim.stat("images") == 0);  // still draining
    // Repeated (every 5 s) while the call drains: the call takes 8 s.
    CHECK(!notify.wait_for("EXTEND_TIMEOUT_USEC=", 15).empty());

    auto code = daemon->wait(40);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=stopping reason=SIGTERM in_flight=1 grace_s=55") !=
          std::string::npos);
    CHECK(env.job_state("heron") == "succeeded");
    env.check_outputs("heron", 2);
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
    CHECK(running(env) == 0);
    CHECK(env.attempts("heron") == std::vector<std::string>{"ok||"});
}

TEST_CASE("stop: a second SIGTERM stops at once; the call goes back to the queue unspent") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    use_auto_grace(env);
    env.enqueue(job_line("owl", "a very slow owl #slow=15000", "gpt-image-2", 1));
    NotifyListener notify(env.dir.path());
    auto daemon = start_notified(env, notify);
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 1; }, 20));

    daemon->signal(SIGTERM);
    INFO("notifications: " << notify.log());
    REQUIRE(notify.wait_for("STOPPING=1", 10) == "STOPPING=1");
    daemon->signal(SIGTERM);
    // The call would take 15 s more: the process must not wait for it.
    auto code = daemon->wait(8);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=stop_now reason=SIGTERM") != std::string::npos);
    CHECK(running(env) == 0);
    CHECK(env.job_state("owl") == "queued");
    CHECK(env.requests("owl") == std::vector<std::string>{"queued|1|0"});
    CHECK(env.counters("owl") == "0|0|0");  // no attempt used
    CHECK(env.attempts("owl") == std::vector<std::string>{"returned||"});
}

TEST_CASE("stop: a claim on its way to the database when SIGTERM arrives is given back") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("crane", "a crane", "gpt-image-2", 1));
    // Not claimable yet: the daemon polls with claims that find nothing.
    env.exec("UPDATE requests SET not_before = unixepoch() + 3600");
    NotifyListener notify(env.dir.path());
    auto daemon = start_notified(env, notify);

    // Another program holds the write lock: the daemon's next claim waits on it (busy
    // timeout) and, once the lock is released, finds the request made ready meanwhile.
    SQLite::Database holder(env.db, SQLite::OPEN_READWRITE);
    holder.exec("PRAGMA busy_timeout = 10000");
    holder.exec("BEGIN IMMEDIATE");
    holder.exec("UPDATE requests SET not_before = 0");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a claim is queued
    daemon->signal(SIGTERM);
    REQUIRE(wait_for([&] { return daemon->err().find("event=stopping") != std::string::npos; }, 5));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    holder.exec("COMMIT");

    auto code = daemon->wait(30);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(running(env) == 0);
    CHECK(env.job_state("crane") == "queued");
    CHECK(env.counters("crane") == "0|0|0");
    for (const auto& a : env.attempts("crane")) CHECK(a == "returned||");
    CHECK(sim.stat("images") == 0);

    // The next run does it.
    env.run_until_idle(60);
    CHECK(env.job_state("crane") == "succeeded");
    env.check_outputs("crane", 1);
}

TEST_CASE("restart: a provider paused for a wrong key is probed at start and runs its jobs") {
    Sim sim({"--api-key", "right-key"});
    TempDir keys;
    const std::string key_file = keys.file("p.key");
    write_file(key_file, "wrong-key\n");
    DaemonEnv env({openai_provider(sim, "p", "\"api_key_file\": " + json_str(key_file))});
    std::string lines;
    for (int i = 0; i < 3; ++i)
        lines +=
            job_line("k" + std::to_string(i), "a kestrel " + std::to_string(i), "gpt-image-2", 1);
    env.enqueue(lines);

    // Wrong key: 401, the provider is paused (next probe in an hour), the run ends.
    RunResult first = env.run_until_idle(60);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "1");
    CHECK(env.value("SELECT reason FROM provider_state WHERE name = 'p'").rfind("auth: ", 0) == 0);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'queued'") == 3);
    CHECK(sim.stat("401") >= 1);
    CHECK(sim.stat("images") == 0);

    // Fixed key: the new run probes at once and does every job.
    write_file(key_file, "right-key\n");
    RunResult second = env.run_until_idle(60);
    INFO("second run: " << DaemonEnv::tail(second.err));
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 3);
    for (int i = 0; i < 3; ++i) env.check_outputs("k" + std::to_string(i), 1);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "0");
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
    for (int i = 0; i < 3; ++i) CHECK(env.counters("k" + std::to_string(i)) == "1|0|0");
}

TEST_CASE("SIGHUP: a fixed api_key_file resumes the provider; a user's pause stays") {
    Sim sim({"--api-key", "right-key"});
    TempDir keys;
    write_file(keys.file("p.key"), "wrong-key\n");
    write_file(keys.file("u.key"), "right-key\n");
    DaemonEnv env({openai_provider(sim, "p", "\"api_key_file\": " + json_str(keys.file("p.key"))),
                   openai_provider(sim, "u", "\"api_key_file\": " + json_str(keys.file("u.key")))});
    std::string lines;
    for (int i = 0; i < 3; ++i)
        lines += job_line("k" + std::to_string(i), "a kite " + std::to_string(i), "gpt-image-2", 1,
                          R"("provider": "p")");
    lines += job_line("user", "a kite held back", "gpt-image-2", 1, R"("provider": "u")");
    env.enqueue(lines);
    REQUIRE(env.cli({"pause", "u"}).code == 0);

    auto daemon = env.start_run();
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    // Paused, and every call it made is recorded (the jobs are back in the queue).
    REQUIRE(wait_for(
        [&] {
            return env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "1" &&
                   env.number("SELECT count(*) FROM jobs WHERE state = 'queued'") == 4;
        },
        20));

    write_file(keys.file("p.key"), "right-key\n");
    daemon->signal(SIGHUP);
    CHECK(wait_for(
        [&] { return env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 3; },
        20));
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    for (int i = 0; i < 3; ++i) env.check_outputs("k" + std::to_string(i), 1);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "0");
    // Paused by the user: never probed.
    CHECK(env.job_state("user") == "queued");
    CHECK(env.number("SELECT count(*) FROM attempts WHERE provider = 'u'") == 0);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'u'") == "1");
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
}
