// Migration 002: outputs.path is UNIQUE; paths shared by several outputs of an older database
// are kept on the newest row only (its image is the file on disk).
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include "jobs/migrations.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

// A database at schema version 1 with outputs 1..4; 1, 2 and 4 share a path (written by the
// naming of version 1, e.g. keys "a b" and "a_b"), 3 has its own.
void make_version1(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    REQUIRE(migrations().at(0).name == "001_init.sql");
    db.exec(migrations()[0].sql);
    db.exec("PRAGMA user_version = 1");
    db.exec(R"(
        INSERT INTO batches(id, name) VALUES (1, 'b');
        INSERT INTO jobs(id, batch_id, key, state, prompt, model, n, images_done)
            VALUES (1, 1, 'a b', 'succeeded', 'p', 'gpt-image-2', 2, 2),
                   (2, 1, 'a_b', 'succeeded', 'p', 'gpt-image-2', 2, 2);
        INSERT INTO requests(id, job_id, seq, first_index, provider, n, images_done, state)
            VALUES (1, 1, 0, 0, 'p1', 2, 2, 'succeeded'), (2, 2, 0, 0, 'p1', 2, 2, 'succeeded');
        INSERT INTO outputs(id, job_id, request_id, idx, path, bytes, sha256, mime)
            VALUES (1, 1, 1, 0, 'out/b/a_b-0.png', 10, 'aa', 'image/png'),
                   (2, 2, 2, 0, 'out/b/a_b-0.png', 11, 'bb', 'image/png'),
                   (3, 1, 1, 1, 'out/b/a_b-1.png', 12, 'cc', 'image/png'),
                   (4, 2, 2, 1, 'out/b/a_b-0.png', 13, 'dd', 'image/png');
    )");
}

}  // namespace

TEST_CASE("migration 002: duplicate paths of an old database keep only the newest row") {
    TempDir dir;
    const auto path = dir.file("old.db");
    make_version1(path);
    Store s(path);
    CHECK(s.schema_version() >= 2);
    SQLite::Statement q(s.db(), "SELECT id, path FROM outputs ORDER BY id");
    std::vector<std::string> rows;
    while (q.executeStep())
        rows.push_back(q.getColumn(0).getString() + " " + q.getColumn(1).getString());
    CHECK(rows == std::vector<std::string>{"1 out/b/a_b-0.png#overwritten-1",
                                           "2 out/b/a_b-0.png#overwritten-2", "3 out/b/a_b-1.png",
                                           "4 out/b/a_b-0.png"});
}

TEST_CASE("migration 002: no two outputs can record the same path") {
    TempDir dir;
    Store s(dir.file("new.db"));
    auto enq = s.enqueue("b", {item("one", 2, 2)});
    const auto job = std::to_string(enq.job_ids.at(0));
    const std::string insert =
        "INSERT INTO outputs(job_id, request_id, idx, path, bytes, sha256, mime) VALUES (" + job +
        ", 1, ?, 'out/b/x-0.png', 1, 'aa', 'image/png')";
    SQLite::Statement first(s.db(), insert);
    first.bind(1, 0);
    first.exec();
    SQLite::Statement second(s.db(), insert);
    second.bind(1, 1);
    CHECK_THROWS_WITH_AS(second.exec(), doctest::Contains("UNIQUE constraint failed: outputs.path"),
                         SQLite::Exception);
}
