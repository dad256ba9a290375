// Store: opening and migrating, enqueue, pending rows inserted by SQL, provider state.
#include <doctest/doctest.h>

#include "jobs/migrations.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

TEST_CASE("store: a new database is migrated and reopening it changes nothing") {
    TempDir dir;
    const auto path = dir.file("a.db");
    const int latest = static_cast<int>(migrations().size());
    REQUIRE(latest >= 1);
    {
        Store s(path);
        CHECK(s.schema_version() == latest);
        CHECK(sql_text(s, "PRAGMA journal_mode") == "wal");
        CHECK(sql_int(s, "PRAGMA foreign_keys") == 1);
        CHECK(sql_int(s, "PRAGMA synchronous") == 2);  // FULL
        s.enqueue("b", {item("one")});
    }
    Store again(path);
    CHECK(again.schema_version() == latest);
    CHECK(sql_int(again, "SELECT COUNT(*) FROM jobs") == 1);
    CHECK(again.batch_names() == std::vector<std::string>{"b"});
}

TEST_CASE("store: a database newer than the program is refused, naming the path") {
    TempDir dir;
    const auto path = dir.file("new.db");
    {
        SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        raw.exec("PRAGMA user_version = 99");
    }
    try {
        Store s(path);
        FAIL("opened a newer database");
    } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        CHECK(msg.find(path) != std::string::npos);
        CHECK(msg.find("schema version 99 is newer than this imgbatch") != std::string::npos);
    }
}

TEST_CASE("store: an unopenable path is named in the error") {
    TempDir dir;
    const auto path = dir.file("missing/dir/x.db");
    try {
        Store s(path);
        FAIL("opened a database in a missing directory");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
}

TEST_CASE("store: enqueue inserts queued jobs with their requests") {
    Store s(":memory:");
    auto it = item("a cat", 5, 2, "k1", 3);
    it.spec.metadata["owner"] = "me";
    auto r = s.enqueue("night", {it, item("a dog")});
    CHECK(r.batch == "night");
    CHECK(r.batch_id > 0);
    REQUIRE(r.job_ids.size() == 2);
    CHECK(r.duplicates.empty());

    auto jobs = s.list_jobs({});
    REQUIRE(jobs.size() == 2);
    CHECK(jobs[0].id == r.job_ids[0]);
    CHECK(jobs[0].state == "queued");
    CHECK(jobs[0].batch == "night");
    CHECK(jobs[0].key == "k1");
    CHECK(jobs[0].provider == "p1");
    CHECK(jobs[0].n == 5);
    CHECK(jobs[0].priority == 3);
    CHECK(jobs[0].params_json == R"({"size":"1024x1024"})");
    CHECK(jobs[0].metadata_json == R"({"owner":"me"})");
    CHECK(sql_text(s, "SELECT metadata FROM jobs WHERE id = " + std::to_string(r.job_ids[1])) ==
          "NULL");

    auto d = s.job_detail(r.job_ids[0]);
    REQUIRE(d);
    REQUIRE(d->requests.size() == 3);
    CHECK(d->requests[2].first_index == 4);
    CHECK(d->requests[2].n == 1);
    CHECK(d->requests[0].state == "queued");
    CHECK(sql_int(s, "SELECT MIN(priority) FROM requests WHERE job_id = " +
                         std::to_string(r.job_ids[0])) == 3);

    // A second enqueue into the same batch reuses it.
    auto r2 = s.enqueue("night", {item("a bird")});
    CHECK(r2.batch_id == r.batch_id);
}

TEST_CASE("store: keys already stored or repeated in the call are duplicates") {
    Store s(":memory:");
    auto first = s.enqueue("b1", {item("x", 1, 1, "k1")});
    auto r = s.enqueue(
        "b2", {item("y", 1, 1, "k2"), item("z", 1, 1, "k1"), item("w", 1, 1, "k2"), item("v")});
    CHECK(r.job_ids.size() == 2);  // k2 (first) and v
    REQUIRE(r.duplicates.size() == 2);
    CHECK(r.duplicates[0].item == 1);
    CHECK(r.duplicates[0].existing_job == first.job_ids[0]);
    CHECK(r.duplicates[1].item == 2);
    CHECK(r.duplicates[1].existing_job == 0);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM jobs") == 3);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM requests") == 3);
}

TEST_CASE("store: rows inserted by plain SQL are pending and planned") {
    Store s(":memory:");
    s.db().exec("INSERT INTO jobs(prompt, model, n) VALUES ('a fox', 'dall-e-3', 2)");
    s.db().exec(
        "INSERT INTO jobs(prompt, model, n, params, priority) "
        "VALUES ('an owl', 'gpt-image-1', 1, '{\"size\":\"auto\"}', 7)");
    s.db().exec("INSERT INTO jobs(prompt, model, params) VALUES ('bad', 'm', '[1]')");
    s.db().exec("INSERT INTO jobs(prompt, model, metadata) VALUES ('bad2', 'm', 'nope')");
    CHECK_FALSE(s.idle());

    auto p = s.pending_jobs(10);
    REQUIRE(p.size() == 4);
    CHECK(p[0].spec.prompt == "a fox");
    CHECK(p[0].spec.model == "dall-e-3");
    CHECK(p[0].spec.n == 2);
    CHECK(p[0].spec.params.empty());
    CHECK(p[0].parse_error.empty());
    CHECK(p[1].spec.priority == 7);
    CHECK(p[1].spec.params.at("size").as_string() == "auto");
    CHECK(p[2].parse_error == "field 'params': not a JSON object");
    CHECK(p[3].parse_error == "field 'metadata': not a JSON object");
    CHECK(s.pending_jobs(1).size() == 1);

    std::vector<PlanDecision> plans(3);
    plans[0] = {p[0].id, "", "p1", {{0, 0, 1}, {1, 1, 1}}};
    plans[1] = {p[1].id, "", "p2", {{0, 0, 1}}};
    plans[2] = {p[2].id, p[2].parse_error, "", {}};
    s.apply_plans(plans);
    s.apply_plans(plans);  // already planned: nothing changes

    auto jobs = s.list_jobs({});
    CHECK(jobs[0].state == "queued");
    CHECK(jobs[0].provider == "p1");
    CHECK(jobs[0].batch == "sql");
    CHECK(jobs[1].provider == "p2");
    CHECK(jobs[2].state == "rejected");
    CHECK(jobs[2].error == "field 'params': not a JSON object");
    CHECK(jobs[2].finished_at > 0);
    CHECK(jobs[3].state == "pending");
    CHECK(sql_int(s, "SELECT COUNT(*) FROM requests") == 3);
    CHECK(sql_int(s, "SELECT priority FROM requests WHERE provider = 'p2'") == 7);
    CHECK(s.pending_jobs(10).size() == 1);
}

TEST_CASE("store: a pending row keeps the batch it was inserted with") {
    Store s(":memory:");
    s.enqueue("mine", {});
    s.db().exec(
        "INSERT INTO jobs(prompt, model, batch_id) "
        "VALUES ('x', 'm', (SELECT id FROM batches WHERE name = 'mine'))");
    auto p = s.pending_jobs(10);
    REQUIRE(p.size() == 1);
    s.apply_plans({{p[0].id, "", "p1", {{0, 0, 1}}}});
    CHECK(s.list_jobs({})[0].batch == "mine");
    CHECK(s.batch_names() == std::vector<std::string>{"mine"});  // no 'sql' batch made
}

TEST_CASE("store: provider pause state is upserted") {
    Store s(":memory:");
    CHECK(s.provider_states().empty());
    s.set_provider_paused("p1", true, "quota: insufficient_quota", 5000);
    s.set_provider_paused("p2", true, "user", 0);
    auto st = s.provider_states();
    REQUIRE(st.size() == 2);
    CHECK(st[0].name == "p1");
    CHECK(st[0].paused);
    CHECK(st[0].reason == "quota: insufficient_quota");
    CHECK(st[0].probe_at == 5000);
    CHECK(st[0].paused_at > 0);
    CHECK(st[1].probe_at == 0);

    s.set_provider_paused("p1", false, "", 0);
    st = s.provider_states();
    REQUIRE(st.size() == 2);
    CHECK_FALSE(st[0].paused);
    CHECK(st[0].reason.empty());
}

TEST_CASE("store: next_ready and idle") {
    Store s(":memory:");
    CHECK(s.idle());
    s.enqueue("b", {item("a"), item("b")});
    CHECK_FALSE(s.idle());
    CHECK_FALSE(s.next_ready("p1", 100));
    s.db().exec("UPDATE requests SET not_before = 500 WHERE id = 1");
    s.db().exec("UPDATE requests SET not_before = 300 WHERE id = 2");
    CHECK(s.next_ready("p1", 100) == 300);
    CHECK(s.next_ready("p1", 300) == 500);
    CHECK_FALSE(s.next_ready("p2", 100));
    s.db().exec("UPDATE requests SET state = 'succeeded'");
    CHECK(s.idle());
}
