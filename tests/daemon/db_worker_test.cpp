#include "daemon/db_worker.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <future>
#include <thread>

namespace asio = boost::asio;
namespace jobs = imgbatch::jobs;
using imgbatch::daemon::DbWorker;

namespace {

struct TempDb {
    TempDb() {
        char tmpl[] = "/tmp/imgbatch-dbw-XXXXXX";
        dir = ::mkdtemp(tmpl);
        path = dir + "/t.db";
    }
    ~TempDb() { std::filesystem::remove_all(dir); }
    std::string dir, path;
};

void enqueue_jobs(const std::string& path, int count) {
    jobs::Store store(path);
    std::vector<jobs::EnqueueItem> items;
    for (int i = 0; i < count; ++i) {
        jobs::EnqueueItem item;
        item.spec.prompt = "p" + std::to_string(i);
        item.spec.model = "gpt-image-1";
        item.spec.n = 1;
        item.provider = "sim";
        item.plan = jobs::plan_requests(1, 1);
        items.push_back(std::move(item));
    }
    store.enqueue("b", items);
}

struct Results {
    std::vector<bool> applied;
    std::thread::id thread;
};

asio::awaitable<void> complete_all(DbWorker* db, std::vector<jobs::Completion> comps,
                                   Results* out) {
    for (auto& c : comps) {
        bool ok = co_await db->complete(std::move(c));
        out->applied.push_back(ok);
        out->thread = std::this_thread::get_id();
    }
}

asio::awaitable<void> complete_one(DbWorker* db, jobs::Completion c, Results* out) {
    bool ok = co_await db->complete(std::move(c));
    out->applied.push_back(ok);
    out->thread = std::this_thread::get_id();
}

jobs::Completion done(const jobs::ClaimedRequest& r, const std::string& owner) {
    jobs::Completion c;
    c.request_id = r.request_id;
    c.attempt_no = r.attempt_no;
    c.owner = owner;
    c.started_at = c.finished_at = jobs::unix_now();
    c.next = jobs::Next::retry;  // no outputs needed: back to the queue
    c.count_attempt = true;
    return c;
}

}  // namespace

TEST_CASE("calls run on the DB thread and results come back on the io thread") {
    TempDb t;
    enqueue_jobs(t.path, 3);
    // Declared before the worker: its thread may still be inside asio::post when a
    // coroutine resumes, so it must be joined before the io_context is destroyed.
    asio::io_context io;
    DbWorker db(t.path);
    std::vector<jobs::ClaimedRequest> claimed;
    std::thread::id db_thread, back_thread;
    asio::co_spawn(
        io,
        [](DbWorker* db, std::vector<jobs::ClaimedRequest>* out, std::thread::id* dbt,
           std::thread::id* back) -> asio::awaitable<void> {
            auto claim = [dbt](jobs::Store& st) {
                *dbt = std::this_thread::get_id();
                return st.claim("sim", "me", 10, jobs::unix_now(), 60);
            };
            *out = co_await db->call<std::vector<jobs::ClaimedRequest>>(std::move(claim));
            *back = std::this_thread::get_id();
        }(&db, &claimed, &db_thread, &back_thread),
        asio::detached);
    io.run();
    CHECK(claimed.size() == 3);
    CHECK(back_thread == std::this_thread::get_id());
    CHECK(db_thread != std::this_thread::get_id());
}

TEST_CASE("exceptions thrown on the DB thread reach the awaiting coroutine") {
    TempDb t;
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path);
    std::string caught;
    asio::co_spawn(
        io,
        [](DbWorker* db, std::string* caught) -> asio::awaitable<void> {
            try {
                auto boom = [](jobs::Store&) -> int { throw std::runtime_error("boom"); };
                co_await db->call<int>(std::move(boom));
            } catch (const std::exception& e) {
                *caught = e.what();
            }
        }(&db, &caught),
        asio::detached);
    io.run();
    CHECK(caught == "boom");
}

TEST_CASE("completions queued together are applied in one group commit") {
    TempDb t;
    enqueue_jobs(t.path, 5);
    int placed = 0, synced = 0;
    DbWorker::FileHooks hooks{[&placed](jobs::Completion&) {
                                  ++placed;
                                  return true;
                              },
                              [&synced] { ++synced; },
                              {}};
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, hooks);
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 5);

    // Hold the DB thread so that every completion is queued before it looks.
    std::promise<void> release;
    auto gate = release.get_future().share();
    db.post([gate](jobs::Store&) { gate.wait(); });

    Results results;
    for (auto& r : claimed)
        asio::co_spawn(io, complete_one(&db, done(r, "me"), &results), asio::detached);
    // A stale one: wrong owner.
    asio::co_spawn(io, complete_one(&db, done(claimed[0], "someone-else"), &results),
                   asio::detached);
    // Let the coroutines enqueue, then open the gate.
    io.poll();
    std::size_t groups_before = db.groups();
    release.set_value();
    io.run();
    REQUIRE(results.applied.size() == 6);
    CHECK(db.groups() == groups_before + 1);
    CHECK(db.completions() == 6);
    int ok = 0;
    for (bool b : results.applied) ok += b ? 1 : 0;
    CHECK(ok == 5);
    CHECK(placed == 5);
    CHECK(synced >= 1);
    CHECK(results.thread == std::this_thread::get_id());
    auto queued = db.call_sync([](jobs::Store& st) {
        return st.claim("sim", "me2", 10, jobs::unix_now() + 1, 60).size();
    });
    CHECK(queued == 5);
}

TEST_CASE("stale completions have their files discarded") {
    TempDb t;
    enqueue_jobs(t.path, 1);
    int discarded = 0;
    DbWorker::FileHooks hooks{{}, {}, [&discarded](const jobs::Completion&) { ++discarded; }};
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, hooks);
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 1);
    Results results;
    std::vector<jobs::Completion> comps{done(claimed[0], "me"), done(claimed[0], "me")};
    asio::co_spawn(io, complete_all(&db, std::move(comps), &results), asio::detached);
    io.run();
    REQUIRE(results.applied.size() == 2);
    CHECK(results.applied[0]);
    CHECK_FALSE(results.applied[1]);  // the lease is gone after the first
    CHECK(discarded == 1);
}

asio::awaitable<void> complete_catching(DbWorker* db, jobs::Completion c,
                                        std::vector<std::string>* errors) {
    try {
        co_await db->complete(std::move(c));
    } catch (const std::exception& e) {
        errors->push_back(e.what());
    }
}

TEST_CASE("a sync error stops the group's commit: nothing of it is recorded") {
    TempDb t;
    enqueue_jobs(t.path, 2);
    int discarded = 0;
    DbWorker::FileHooks hooks{[](jobs::Completion&) { return true; },
                              [] { throw std::runtime_error("fsync /out/b: Input/output error"); },
                              [&discarded](const jobs::Completion&) { ++discarded; }};
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, hooks);
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 2);
    std::vector<std::string> errors;
    for (const auto& r : claimed)
        asio::co_spawn(io, complete_catching(&db, done(r, "me"), &errors), asio::detached);
    io.run();
    CHECK(errors == std::vector<std::string>{"fsync /out/b: Input/output error",
                                             "fsync /out/b: Input/output error"});
    auto recorded = db.call_sync([](jobs::Store& st) {
        return st.db().execAndGet("SELECT count(*) FROM attempts").getInt();
    });
    CHECK(recorded == 0);
    CHECK(discarded == 2);
}
