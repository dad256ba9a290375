// Store: opening and migrating, enqueue, pending rows inserted by SQL, provider state.
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <algorithm>

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
        "VALUES ('an owl', 'gpt-image-2', 1, '{\"size\":\"auto\"}', 7)");
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
    CHECK(p[2].parse_error == "field 'params': must be a JSON object, got \"[1]\"");
    CHECK(p[3].parse_error == "field 'metadata': must be a JSON object, got \"nope\"");
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
    CHECK(jobs[2].error == "field 'params': must be a JSON object, got \"[1]\"");
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

// ---- bad rows inserted by SQL: each is rejected with a reason naming its field, alone ----

namespace {

// The parse error pending_jobs gives the row inserted with `values` for `columns` (next to a
// good row, which must stay well-formed).
std::string row_error(const std::string& columns, const std::string& values) {
    TempDir dir;
    Store s(dir.file("rows.db"));
    s.db().exec("INSERT INTO jobs(prompt, model) VALUES ('good before', 'gpt-image-2')");
    // A user's sqlite3 shell does not enforce foreign keys.
    s.db().exec("PRAGMA foreign_keys = OFF");
    s.db().exec("INSERT INTO jobs(" + columns + ") VALUES (" + values + ")");
    s.db().exec("PRAGMA foreign_keys = ON");
    s.db().exec("INSERT INTO jobs(prompt, model) VALUES ('good after', 'gpt-image-2')");
    auto p = s.pending_jobs(10);
    REQUIRE(p.size() == 3);
    CHECK(p[0].parse_error == "");
    CHECK(p[0].spec.prompt == "good before");
    CHECK(p[2].parse_error == "");
    CHECK(p[2].spec.prompt == "good after");
    return p[1].parse_error;
}

}  // namespace

TEST_CASE("store: n that is not an integer in range is named, never rounded or wrapped") {
    const std::string cols = "prompt, model, n";
    CHECK(row_error(cols, "'x', 'gpt-image-2', 4294967297") ==
          "field 'n': out of range, got 4294967297");
    CHECK(row_error(cols, "'x', 'gpt-image-2', -4294967295") ==
          "field 'n': out of range, got -4294967295");
    CHECK(row_error(cols, "'x', 'gpt-image-2', 2.7") == "field 'n': must be an integer, got 2.7");
    CHECK(row_error(cols, "'x', 'gpt-image-2', 'three'") ==
          "field 'n': must be an integer, got \"three\"");
    CHECK(row_error(cols, "'x', 'gpt-image-2', x'03'") ==
          "field 'n': must be an integer, got a blob of 1 bytes");
    // A whole number written as text or real is stored as an integer by SQLite: fine.
    CHECK(row_error(cols, "'x', 'gpt-image-2', '3'") == "");
    CHECK(row_error(cols, "'x', 'gpt-image-2', 3.0") == "");
    // 0 and negative numbers are read as they are; validation names them (see below).
    CHECK(row_error(cols, "'x', 'gpt-image-2', 0") == "");
    CHECK(row_error(cols, "'x', 'gpt-image-2', -2") == "");
}

TEST_CASE("store: priority, text columns and batch_id of the wrong type are named") {
    CHECK(row_error("prompt, model, priority", "'x', 'gpt-image-2', 'high'") ==
          "field 'priority': must be an integer, got \"high\"");
    CHECK(row_error("prompt, model, priority", "'x', 'gpt-image-2', 1e12") ==
          "field 'priority': out of range, got 1000000000000");
    CHECK(row_error("prompt, model", "x'00ff', 'gpt-image-2'") ==
          "field 'prompt': must be text, got a blob of 2 bytes");
    CHECK(row_error("prompt, model", "'x', x'41'") ==
          "field 'model': must be text, got a blob of 1 bytes");
    CHECK(row_error("prompt, model, provider", "'x', 'gpt-image-2', x'41'") ==
          "field 'provider': must be text, got a blob of 1 bytes");
    CHECK(row_error("prompt, model, key", "'x', 'gpt-image-2', x'41'") ==
          "field 'key': must be text, got a blob of 1 bytes");
    CHECK(row_error("prompt, model, batch_id", "'x', 'gpt-image-2', 999") ==
          "field 'batch_id': no batch with id 999");
    CHECK(row_error("prompt, model, batch_id", "'x', 'gpt-image-2', 'night'") ==
          "field 'batch_id': must be the id of a batch (an integer), got \"night\"");
    // Numbers in text columns are stored as text by SQLite: a prompt of 42 is the text "42".
    CHECK(row_error("prompt, model", "42, 'gpt-image-2'") == "");
}

TEST_CASE("store: params and metadata must be JSON objects without reserved fields") {
    CHECK(row_error("prompt, model, params", "'x', 'gpt-image-2', '[1]'") ==
          "field 'params': must be a JSON object, got \"[1]\"");
    CHECK(row_error("prompt, model, params", "'x', 'gpt-image-2', 'not json'") ==
          "field 'params': must be a JSON object, got \"not json\"");
    CHECK(row_error("prompt, model, params", "'x', 'gpt-image-2', x'7b7d'") ==
          "field 'params': must be a JSON object, got a blob of 2 bytes");
    CHECK(row_error("prompt, model, params", "'x', 'gpt-image-2', '{\"n\": 4}'") ==
          "field 'params.n': use the column 'n'");
    CHECK(row_error("prompt, model, params", "'x', 'gpt-image-2', '{\"prompt\": \"y\"}'") ==
          "field 'params.prompt': use the column 'prompt'");
    CHECK(row_error("prompt, model, metadata", "'x', 'gpt-image-2', 'nope'") ==
          "field 'metadata': must be a JSON object, got \"nope\"");
    CHECK(row_error("prompt, model, metadata", "'x', 'gpt-image-2', '3'") ==
          "field 'metadata': must be a JSON object, got \"3\"");
    // A long value is cut in the message.
    const std::string err =
        row_error("prompt, model, params", "'x', 'gpt-image-2', '" + std::string(500, 'a') + "'");
    CHECK(err.rfind("field 'params': must be a JSON object, got \"aaaa", 0) == 0);
    CHECK(err.size() < 120);
    CHECK(err.find("...") != std::string::npos);
}

TEST_CASE("store: a plan that breaks a constraint rejects its row only") {
    TempDir dir;
    Store s(dir.file("plan.db"));
    s.db().exec("INSERT INTO jobs(prompt, model) VALUES ('one', 'gpt-image-2')");
    s.db().exec("PRAGMA foreign_keys = OFF");
    s.db().exec("INSERT INTO jobs(prompt, model, batch_id) VALUES ('two', 'gpt-image-2', 77)");
    s.db().exec("PRAGMA foreign_keys = ON");
    s.db().exec("INSERT INTO jobs(prompt, model) VALUES ('three', 'gpt-image-2')");
    // Plans made as if every row were fine: the row of the dangling batch cannot be queued.
    std::vector<PlanDecision> plans;
    for (const auto& p : s.pending_jobs(10)) plans.push_back({p.id, "", "p1", {{0, 0, 1}}});
    REQUIRE(plans.size() == 3);
    CHECK_NOTHROW(s.apply_plans(plans));
    auto jobs = s.list_jobs({});
    REQUIRE(jobs.size() == 3);
    CHECK(jobs[0].state == "queued");
    CHECK(jobs[1].state == "rejected");
    CHECK(jobs[1].error.find("could not be planned") != std::string::npos);
    CHECK(jobs[1].error.find("FOREIGN KEY") != std::string::npos);
    CHECK(jobs[2].state == "queued");
    CHECK(sql_int(s, "SELECT COUNT(*) FROM requests") == 2);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM requests WHERE job_id = " +
                         std::to_string(jobs[1].id)) == 0);
}

TEST_CASE("store: planning a pending row clears counters a SQL insert may have set") {
    Store s(":memory:");
    s.db().exec(
        "INSERT INTO jobs(prompt, model, images_done, error, finished_at) "
        "VALUES ('x', 'gpt-image-2', 5, 'old', 12)");
    auto p = s.pending_jobs(10);
    REQUIRE(p.size() == 1);
    s.apply_plans({{p[0].id, "", "p1", {{0, 0, 1}}}});
    auto j = s.list_jobs({}).at(0);
    CHECK(j.state == "queued");
    CHECK(j.images_done == 0);
    CHECK(j.error == "");
    CHECK(j.finished_at == 0);
}

TEST_CASE("store: queued or running rows inserted without requests are rejected") {
    TempDir dir;
    Store s(dir.file("orphans.db"));
    auto enq = s.enqueue("b", {item("enqueued")});  // queued, with its request
    s.db().exec(
        "INSERT INTO jobs(prompt, model, state) VALUES "
        "('q', 'gpt-image-2', 'queued'), ('r', 'gpt-image-2', 'running'), "
        "('s', 'gpt-image-2', 'succeeded'), ('c', 'gpt-image-2', 'cancelled'), "
        "('p', 'gpt-image-2', 'pending')");
    // Queued by SQL with its request (what bench/memory.sh does): runnable, kept.
    s.db().exec(
        "INSERT INTO jobs(prompt, model, provider, state) VALUES ('full', 'gpt-image-2', 'p1', "
        "'queued'); INSERT INTO requests(job_id, seq, first_index, provider, n) "
        "VALUES (last_insert_rowid(), 0, 0, 'p1', 1)");
    auto rejected = s.reject_unplanned(1000);
    REQUIRE(rejected.size() == 2);
    const auto state = [&](const std::string& prompt) {
        return sql_text(s, "SELECT state FROM jobs WHERE prompt = '" + prompt + "'");
    };
    const auto error = [&](const std::string& prompt) {
        return sql_text(s, "SELECT error FROM jobs WHERE prompt = '" + prompt + "'");
    };
    CHECK(state("q") == "rejected");
    CHECK(error("q") ==
          "field 'state': inserted as 'queued' without requests (insert rows as 'pending', the "
          "default)");
    CHECK(state("r") == "rejected");
    CHECK(error("r").find("'running'") != std::string::npos);
    CHECK(sql_int(s, "SELECT finished_at > 0 FROM jobs WHERE prompt = 'q'") == 1);
    CHECK(rejected[0].job_id == sql_int(s, "SELECT id FROM jobs WHERE prompt = 'q'"));
    CHECK(rejected[0].reason == error("q"));
    CHECK(state("enqueued") == "queued");
    CHECK(state("full") == "queued");
    CHECK(state("s") == "succeeded");
    CHECK(state("c") == "cancelled");
    CHECK(state("p") == "pending");
    CHECK(enq.job_ids.size() == 1);

    // Rows already checked are not read again; new ones are.
    CHECK(s.reject_unplanned(1000).empty());
    s.db().exec("INSERT INTO jobs(prompt, model, state) VALUES ('q2', 'gpt-image-2', 'queued')");
    CHECK(s.reject_unplanned(1000).size() == 1);
    CHECK(state("q2") == "rejected");
}

TEST_CASE("store: the check for rows without requests goes in bounded steps") {
    TempDir dir;
    Store s(dir.file("steps.db"));
    s.db().exec("INSERT INTO jobs(prompt, model, state) VALUES ('a', 'gpt-image-2', 'queued')");
    for (int i = 0; i < 30; ++i) s.enqueue("b", {item("x" + std::to_string(i))});
    s.db().exec(
        "INSERT INTO jobs(id, prompt, model, state) VALUES "
        "(1000000, 'far', 'gpt-image-2', 'queued')");
    std::size_t rejected = 0;
    int calls = 0;
    for (; calls < 100; ++calls) {
        auto r = s.reject_unplanned(10);  // at most 10 rows read per call
        rejected += r.size();
        if (sql_int(s,
                    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND prompt IN "
                    "('a', 'far')") == 0)
            break;
    }
    CHECK(rejected == 2);
    CHECK(calls >= 3);  // 32 rows, 10 a call
    CHECK(sql_int(s, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'") == 30);
}

// ---- enqueue in chunks (imgbatch enqueue streams its input) ----

TEST_CASE("store: enqueue of many items keeps every item's requests and reports duplicates") {
    TempDir dir;
    Store s(dir.file("many.db"));
    auto first = s.enqueue("b0", {item("old 7", 1, 1, "k7"), item("old 151", 1, 1, "k151")});
    REQUIRE(first.job_ids.size() == 2);
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 257; ++i) {
        const std::string key = i % 5 == 0 ? "" : "k" + std::to_string(i);
        items.push_back(item("p" + std::to_string(i), i % 7 + 1, 3, key, i % 3));
    }
    items.push_back(item("repeat of k1", 1, 1, "k1"));
    auto r = s.enqueue("b1", items);
    REQUIRE(r.duplicates.size() == 3);
    CHECK(r.duplicates[0].item == 7);
    CHECK(r.duplicates[0].existing_job == first.job_ids[0]);
    CHECK(r.duplicates[1].item == 151);
    CHECK(r.duplicates[1].existing_job == first.job_ids[1]);
    CHECK(r.duplicates[2].item == 257);
    CHECK(r.duplicates[2].existing_job == 0);  // repeated in the call
    REQUIRE(r.job_ids.size() == 255);
    CHECK(std::is_sorted(r.job_ids.begin(), r.job_ids.end()));
    // Each stored job has its own prompt, n, priority and requests.
    std::size_t k = 0;
    for (int i = 0; i < 257; ++i) {
        if (i == 7 || i == 151) continue;
        const auto id = std::to_string(r.job_ids[k++]);
        INFO("item " << i << " job " << id);
        CHECK(sql_text(s, "SELECT prompt FROM jobs WHERE id = " + id) == "p" + std::to_string(i));
        CHECK(sql_text(s, "SELECT coalesce(key, '') FROM jobs WHERE id = " + id) ==
              (i % 5 == 0 ? "" : "k" + std::to_string(i)));
        CHECK(sql_int(s, "SELECT n FROM jobs WHERE id = " + id) == i % 7 + 1);
        const int n = i % 7 + 1;
        CHECK(sql_int(s, "SELECT count(*) FROM requests WHERE job_id = " + id) == (n + 2) / 3);
        CHECK(sql_int(s, "SELECT sum(n) FROM requests WHERE job_id = " + id) == n);
        CHECK(sql_int(s, "SELECT max(first_index) FROM requests WHERE job_id = " + id) ==
              ((n + 2) / 3 - 1) * 3);
        CHECK(sql_int(s, "SELECT min(priority) FROM requests WHERE job_id = " + id) == i % 3);
    }
    CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 257);
    CHECK(s.find_job_by_key("k151") == first.job_ids[1]);
    CHECK(s.find_job_by_key("k152") == r.job_ids[150]);
    CHECK_FALSE(s.find_job_by_key("nope").has_value());
}

TEST_CASE("store: enqueue inside the caller's transaction commits or rolls back with it") {
    TempDir dir;
    Store s(dir.file("txn.db"));
    {
        SQLite::Transaction all(s.db(), SQLite::TransactionBehavior::IMMEDIATE);
        s.enqueue("b", {item("a", 2, 1, "ka")});
        auto r = s.enqueue("b", {item("b"), item("dup", 1, 1, "ka")});
        CHECK(r.job_ids.size() == 1);
        REQUIRE(r.duplicates.size() == 1);
        CHECK(r.duplicates[0].existing_job > 0);
        CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 2);
        // dropped without commit: rolled back
    }
    CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 0);
    CHECK(sql_int(s, "SELECT count(*) FROM requests") == 0);
    CHECK(s.batch_names().empty());
    {
        SQLite::Transaction all(s.db(), SQLite::TransactionBehavior::IMMEDIATE);
        s.enqueue("b", {item("a", 2, 1, "ka")});
        s.enqueue("b", {item("b")});
        all.commit();
    }
    CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 2);
    CHECK(sql_int(s, "SELECT count(*) FROM requests") == 3);
}

TEST_CASE("store: a failing enqueue inside the caller's transaction leaves its earlier work") {
    TempDir dir;
    Store s(dir.file("fail.db"));
    SQLite::Transaction all(s.db(), SQLite::TransactionBehavior::IMMEDIATE);
    s.enqueue("b", {item("kept")});
    auto bad = item("two requests of seq 0", 2, 1);
    bad.plan[1].seq = 0;  // UNIQUE (job_id, seq)
    CHECK_THROWS(s.enqueue("b", {item("lost"), bad}));
    CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 1);
    CHECK(sql_text(s, "SELECT prompt FROM jobs") == "kept");
    all.commit();
    CHECK(sql_int(s, "SELECT count(*) FROM jobs") == 1);
}
