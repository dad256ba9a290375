// Rows inserted by SQL that the daemon cannot run: each is `rejected` with a reason naming its
// field, and only that row; the good rows around them run as usual and `run --until-idle`
// exits 0.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

struct BadRow {
    std::string prompt;   // identifies the row
    std::string columns;  // after prompt
    std::string values;
    std::string reason;  // a part of jobs.error
};

}  // namespace

TEST_CASE("sql rows: every bad row is rejected with its reason, the good ones run") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    REQUIRE(env.cli({"init"}).code == 0);
    const std::vector<BadRow> bad{
        {"dangling batch", "model, batch_id", "'gpt-image-2', 4242",
         "field 'batch_id': no batch with id 4242"},
        {"batch by name", "model, batch_id", "'gpt-image-2', 'night'",
         "field 'batch_id': must be the id of a batch (an integer), got \"night\""},
        {"n too big", "model, n", "'gpt-image-2', 4294967297",
         "field 'n': out of range, got 4294967297"},
        {"n real", "model, n", "'gpt-image-2', 2.7", "field 'n': must be an integer, got 2.7"},
        {"n text", "model, n", "'gpt-image-2', 'two'",
         "field 'n': must be an integer, got \"two\""},
        {"n zero", "model, n", "'gpt-image-2', 0", "field 'n': must be between 1 and"},
        {"n negative", "model, n", "'gpt-image-2', -3", "field 'n': must be between 1 and"},
        {"params array", "model, params", "'gpt-image-2', '[1, 2]'",
         "field 'params': must be a JSON object, got \"[1, 2]\""},
        {"params junk", "model, params", "'gpt-image-2', 'size=big'",
         "field 'params': must be a JSON object, got \"size=big\""},
        {"metadata text", "model, metadata", "'gpt-image-2', 'sku 42'",
         "field 'metadata': must be a JSON object, got \"sku 42\""},
        {"priority text", "model, priority", "'gpt-image-2', 'urgent'",
         "field 'priority': must be an integer, got \"urgent\""},
        {"model blob", "model", "x'6770742d696d6167652d31'",
         "field 'model': must be text, got a blob of 11 bytes"},
        {"queued by hand", "model, state", "'gpt-image-2', 'queued'",
         "field 'state': inserted as 'queued' without requests"},
        {"running by hand", "model, state", "'gpt-image-2', 'running'",
         "field 'state': inserted as 'running' without requests"},
    };
    // A sqlite3 shell does not enforce foreign keys unless told to: a dangling batch_id gets in.
    std::string sql = "PRAGMA foreign_keys = OFF;";
    sql += "INSERT INTO jobs(prompt, model, n) VALUES ('good first', 'gpt-image-2', 2);";
    for (const auto& b : bad)
        sql += "INSERT INTO jobs(prompt, " + b.columns + ") VALUES ('" + b.prompt + "', " +
               b.values + ");";
    sql += "INSERT INTO jobs(prompt, model, n) VALUES ('good last', 'gpt-image-2', 3);";
    sql +=
        "INSERT INTO jobs(prompt, model, state) VALUES ('done by hand', 'gpt-image-2', "
        "'succeeded');";
    sql_exec(env.db, sql);

    RunResult r = env.cli({"run", "--until-idle"}, "", 40);
    INFO("run stderr (tail): " << DaemonEnv::tail(r.err));
    REQUIRE(r.code == 0);

    for (const auto& b : bad) {
        INFO("row '" << b.prompt << "'");
        auto row = env.rows("SELECT id, state, coalesce(error, '') FROM jobs WHERE prompt = " +
                            DaemonEnv::sql_str(b.prompt));
        REQUIRE(row.size() == 1);
        auto f = DaemonEnv::split(row[0]);
        CHECK(f[1] == "rejected");
        CHECK(f[2].find(b.reason) != std::string::npos);
        CHECK(env.number("SELECT count(*) FROM requests WHERE job_id = " + f[0]) == 0);
        // The daemon logs it, and `show` tells the reason.
        CHECK(r.err.find("event=job_rejected job=" + f[0] + " ") != std::string::npos);
        RunResult show = env.cli({"show", f[0]});
        CHECK(show.code == 0);
        CHECK(show.out.find(b.reason) != std::string::npos);
    }
    const std::string first = env.value("SELECT id FROM jobs WHERE prompt = 'good first'");
    const std::string last = env.value("SELECT id FROM jobs WHERE prompt = 'good last'");
    CHECK(env.value("SELECT state FROM jobs WHERE id = " + first) == "succeeded");
    CHECK(env.value("SELECT state FROM jobs WHERE id = " + last) == "succeeded");
    env.check_job_outputs(first, "job-" + first, 2);
    env.check_job_outputs(last, "job-" + last, 3);
    // A row inserted in a final state is left as it is.
    CHECK(env.value("SELECT state FROM jobs WHERE prompt = 'done by hand'") == "succeeded");
    // Every image the sim served is kept; nothing was asked for the bad rows.
    CHECK(sim.stat("images") == 5);
    CHECK(env.number("SELECT count(*) FROM outputs") == 5);
}

TEST_CASE("sql rows: a bad row inserted while the daemon runs does not stop planning") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    REQUIRE(env.cli({"init"}).code == 0);
    auto daemon = env.start_run();
    env.exec(
        "PRAGMA foreign_keys = OFF;"
        "INSERT INTO jobs(prompt, model, batch_id) VALUES ('lost batch', 'gpt-image-2', 99);"
        "INSERT INTO jobs(prompt, model, state) VALUES ('skipped pending', 'gpt-image-2', "
        "'queued');"
        "INSERT INTO jobs(prompt, model, n) VALUES ('a late fox', 'gpt-image-2', 2);");
    std::string state;
    for (int i = 0; i < 300 && state != "succeeded"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        state = env.value("SELECT state FROM jobs WHERE prompt = 'a late fox'");
    }
    CHECK(state == "succeeded");
    std::string other;
    for (int i = 0; i < 100 && other != "rejected"; ++i) {
        other = env.value("SELECT state FROM jobs WHERE prompt = 'skipped pending'");
        if (other != "rejected") std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(other == "rejected");
    CHECK(env.value("SELECT state FROM jobs WHERE prompt = 'lost batch'") == "rejected");
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    CHECK(code == std::optional<int>(0));
    CHECK(daemon->err().find("event=db_error") == std::string::npos);
    CHECK(sim.stat("images") == 2);
}
