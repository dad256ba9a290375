// `imgbatch cancel`, `retry`, `providers`, `pause`, `resume` and the global options through the
// real binary.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/integration/harness.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {

// Four queued jobs: 1 and 2 in batch "a", 3 and 4 in batch "b".
struct Ops {
    TempDir dir;
    std::string db = dir.file("t.db");
    Ops() {
        write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "providers": [
            {"name": "oa", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
             "models": ["gpt-image-2"], "max_concurrency": 3, "requests_per_minute": 60},
            {"name": "gg", "api": "google", "base_url": "http://127.0.0.1:9/v1beta",
             "models": ["imagen-4.0-generate-001"]}]})");
        write_file(dir.file("p.txt"), "one\ntwo\n");
        REQUIRE((*this)({"enqueue", "p.txt", "--batch", "a", "--model", "gpt-image-2"}).code == 0);
        REQUIRE((*this)({"enqueue", "p.txt", "--batch", "b", "--model", "gpt-image-2"}).code == 0);
    }
    RunResult operator()(const std::vector<std::string>& args) const {
        return run(args, "", {}, dir.path());
    }
    std::string state(int job) const {
        return sql_value(db, "SELECT state FROM jobs WHERE id = " + std::to_string(job));
    }
};

}  // namespace

TEST_CASE("cancel by id and by batch; nothing selected is an error") {
    Ops o;
    auto r = o({"cancel"});
    CHECK(r.code == 2);
    CHECK(has(r.err, "--all"));
    CHECK(o.state(1) == "queued");

    r = o({"cancel", "1"});
    CHECK(r.code == 0);
    CHECK(r.out == "1 job cancelled\n");
    CHECK(o.state(1) == "cancelled");
    CHECK(sql_value(o.db, "SELECT state FROM requests WHERE job_id = 1") == "cancelled");
    CHECK(o.state(2) == "queued");

    r = o({"cancel", "1"});  // already final
    CHECK(r.code == 1);
    CHECK(has(r.err, "nothing to cancel"));

    r = o({"cancel", "--batch", "b"});
    CHECK(r.code == 0);
    CHECK(r.out == "2 jobs cancelled\n");
    CHECK(o.state(3) == "cancelled");
    CHECK(o.state(4) == "cancelled");
    CHECK(o.state(2) == "queued");

    r = o({"cancel", "--all"});
    CHECK(r.out == "1 job cancelled\n");
    CHECK(o.state(2) == "cancelled");
}

TEST_CASE("retry failed jobs, by state and id") {
    Ops o;
    sql_exec(o.db,
             "UPDATE jobs SET state = 'failed', error = 'x' WHERE id IN (1, 3);"
             "UPDATE requests SET state = 'failed', attempts = 6 WHERE job_id IN (1, 3);");
    auto r = o({"retry", "--state", "blocked"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "nothing to retry"));

    r = o({"retry", "1"});
    CHECK(r.code == 0);
    CHECK(r.out == "1 job queued again\n");
    CHECK(o.state(1) == "queued");
    CHECK(sql_value(o.db, "SELECT state || ',' || attempts FROM requests WHERE job_id = 1") ==
          "queued,0");
    CHECK(o.state(3) == "failed");

    r = o({"retry", "--batch", "b", "--state", "failed"});
    CHECK(r.code == 0);
    CHECK(o.state(3) == "queued");

    CHECK(o({"retry"}).code == 1);  // nothing left to retry
    CHECK(o({"retry", "--state", "queued"}).code == 2);
}

TEST_CASE("providers, pause and resume") {
    Ops o;
    auto r = o({"providers"});
    CHECK(r.code == 0);
    CHECK(r.out.rfind("NAME", 0) == 0);
    CHECK(has(r.out, "oa    openai  http://127.0.0.1:9/v1"));
    CHECK(has(r.out, "active"));

    r = o({"pause", "oa", "--reason", "maintenance"});
    CHECK(r.code == 0);
    CHECK(r.out == "provider oa paused (maintenance)\n");
    CHECK(sql_value(o.db, "SELECT paused || ',' || reason FROM provider_state WHERE name='oa'") ==
          "1,maintenance");

    r = o({"providers", "--json"});
    auto arr = json::parse(r.out).as_array();
    REQUIRE(arr.size() == 2);
    CHECK(arr[0].at("name") == "oa");
    CHECK(arr[0].at("api") == "openai");
    CHECK(arr[0].at("paused") == true);
    CHECK(arr[0].at("reason") == "maintenance");
    CHECK(arr[0].at("max_concurrency") == 3);
    CHECK(arr[0].at("requests_per_minute") == 60);
    CHECK(arr[0].at("queued") == 4);
    CHECK(arr[0].at("models") == json::parse(R"(["gpt-image-2"])"));
    CHECK(arr[1].at("paused") == false);
    CHECK(has(o({"providers"}).out, "paused (maintenance)"));
    CHECK(has(o({"status"}).out, "paused (maintenance)"));

    r = o({"resume", "oa"});
    CHECK(r.code == 0);
    CHECK(r.out == "provider oa resumed\n");
    CHECK(sql_value(o.db, "SELECT paused FROM provider_state WHERE name='oa'") == "0");

    r = o({"pause", "nope"});
    CHECK(r.code == 2);
    CHECK(has(r.err, "unknown provider 'nope' (configured: oa, gg)"));
    CHECK(o({"resume", "nope"}).code == 2);
}

TEST_CASE("global options: --version, --db, IMGBATCH_DB, IMGBATCH_CONFIG, defaults") {
    Ops o;
    auto r = o({"--version"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "imgbatch "));
    CHECK(o({}).code == 2);  // a command is required
    CHECK(o({"--help"}).code == 0);

    // --db overrides the config's database, and may follow the command.
    r = o({"init", "--db", "other.db"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "database other.db"));
    r = run({"jobs"}, "", {"IMGBATCH_DB=other.db"}, o.dir.path());
    CHECK(r.code == 0);
    CHECK(r.out == "ID  STATE  DONE/N  MODEL  PROVIDER  KEY  PROMPT\n");

    // IMGBATCH_CONFIG names the config; without any, built-in defaults (no providers).
    TempDir elsewhere;
    r = run({"providers"}, "", {"IMGBATCH_CONFIG=" + o.dir.file("imgbatch.json")},
            elsewhere.path());
    CHECK(r.code == 0);
    CHECK(has(r.out, "oa"));
    r = run({"providers"}, "", {}, elsewhere.path());
    CHECK(r.code == 0);
    CHECK(has(r.out, "no providers configured (built-in defaults)"));
    // Read commands need a database that exists.
    r = run({"status"}, "", {}, elsewhere.path());
    CHECK(r.code == 2);
    CHECK(has(r.err, "imgbatch.db"));
}
