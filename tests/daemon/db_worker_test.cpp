#include "daemon/engine/db_worker.hpp"
#include "daemon/engine/supervise.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
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
        item.spec.model = "gpt-image-2";
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

// Holds the DB thread until the promise is set: what is queued meanwhile is seen at once.
std::promise<void> hold_db_thread(DbWorker& db) {
    std::promise<void> release;
    db.post([gate = release.get_future().share()](jobs::Store&) { gate.wait(); });
    return release;
}

// A worker on a database of `jobs` one-image jobs, all claimed by "me".
struct ClaimedDb {
    ClaimedDb(int jobs, DbWorker::FileHooks hooks) {
        enqueue_jobs(t.path, jobs);
        db = std::make_unique<DbWorker>(t.path, std::move(hooks));
        claimed = db->call_sync(
            [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    }
    TempDb t;
    std::unique_ptr<DbWorker> db;
    std::vector<jobs::ClaimedRequest> claimed;
};

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
    int placed = 0, synced = 0;
    asio::io_context io;  // outlives the worker (see above)
    ClaimedDb c(5, {[&placed](jobs::Completion&) { ++placed; }, [&synced] { ++synced; }, {}, {}});
    DbWorker& db = *c.db;
    auto& claimed = c.claimed;
    REQUIRE(claimed.size() == 5);

    // Hold the DB thread so that every completion is queued before it looks.
    std::promise<void> release = hold_db_thread(db);

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

TEST_CASE("call_first runs before the completions queued with it; call runs after them") {
    std::vector<std::string> order;  // DB thread only, read after io.run()
    asio::io_context io;
    ClaimedDb c(3, {[&order](jobs::Completion&) { order.push_back("place"); }, {}, {}, {}});
    DbWorker& db = *c.db;
    auto& claimed = c.claimed;
    REQUIRE(claimed.size() == 3);
    std::promise<void> release = hold_db_thread(db);

    Results results;
    for (auto& r : claimed)
        asio::co_spawn(io, complete_one(&db, done(r, "me"), &results), asio::detached);
    auto later = [&db, &order]() -> asio::awaitable<void> {
        auto fn = [&order](jobs::Store&) {
            order.push_back("call");
            return 1;
        };
        co_await db.call<int>(std::move(fn));
    };
    auto first = [&db, &order]() -> asio::awaitable<void> {
        auto fn = [&order](jobs::Store&) {
            order.push_back("call_first");
            return 1;
        };
        co_await db.call_first<int>(std::move(fn));
    };
    asio::co_spawn(io, later(), asio::detached);
    asio::co_spawn(io, first(), asio::detached);  // queued last, runs first
    io.poll();
    release.set_value();
    io.run();
    REQUIRE(results.applied.size() == 3);
    CHECK(order == std::vector<std::string>{"call_first", "place", "place", "place", "call"});
}

TEST_CASE("stale completions have their files discarded") {
    TempDb t;
    enqueue_jobs(t.path, 1);
    int discarded = 0;
    DbWorker::FileHooks hooks{{}, {}, {}, [&discarded](const jobs::Completion&) { ++discarded; }};
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

namespace {

DbWorker::RetryOptions fast_retries() {
    DbWorker::RetryOptions o;
    o.first_delay = std::chrono::milliseconds(20);
    o.max_delay = std::chrono::milliseconds(100);
    o.stop_wait = std::chrono::milliseconds(2000);
    return o;
}

}  // namespace

TEST_CASE("a commit that fails while another program holds the database is retried") {
    TempDb t;
    enqueue_jobs(t.path, 3);
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, {}, fast_retries());
    db.call_sync([](jobs::Store& st) {
        st.db().exec("PRAGMA busy_timeout = 50");
        return 0;
    });
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 3);

    SQLite::Database other(t.path, SQLite::OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    Results results;
    for (auto& r : claimed)
        asio::co_spawn(io, complete_one(&db, done(r, "me"), &results), asio::detached);
    // The completions fail against the lock and wait; nothing is lost meanwhile.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (db.failed_commits() < 2 && std::chrono::steady_clock::now() < deadline) {
        io.poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(db.failed_commits() >= 2);
    CHECK(db.held() <= 3);  // 3 waiting, or fewer while one is being tried
    CHECK(results.applied.empty());
    other.exec("COMMIT");
    io.run();
    REQUIRE(results.applied.size() == 3);
    CHECK(results.applied == std::vector<bool>{true, true, true});
    CHECK(db.held() == 0);
    auto back = db.call_sync([](jobs::Store& st) {
        return st.claim("sim", "me2", 10, jobs::unix_now() + 1, 60).size();
    });
    CHECK(back == 3);
}

TEST_CASE("one completion that cannot be placed does not sink the others of its group") {
    TempDb t;
    enqueue_jobs(t.path, 4);
    std::atomic<int> failures_left{3};
    std::int64_t bad_request = 0;
    std::atomic<int> unplaced{0};
    DbWorker::FileHooks hooks{[&](jobs::Completion& c) {
                                  if (c.request_id == bad_request && failures_left-- > 0)
                                      throw std::runtime_error("rename: Is a directory");
                              },
                              {},
                              [&unplaced](const jobs::Completion&) { ++unplaced; },
                              {}};
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, hooks, fast_retries());
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 4);
    bad_request = claimed[2].request_id;

    std::promise<void> release = hold_db_thread(db);
    Results results;
    for (auto& r : claimed)
        asio::co_spawn(io, complete_one(&db, done(r, "me"), &results), asio::detached);
    io.poll();
    release.set_value();
    io.run();
    REQUIRE(results.applied.size() == 4);
    CHECK(results.applied == std::vector<bool>{true, true, true, true});
    CHECK(failures_left.load() < 0);  // the bad one was tried until it placed
    CHECK(unplaced.load() >= 2);      // the group's renames were undone when it failed
    CHECK(db.failed_commits() >= 3);
}

TEST_CASE("a stop with a completion still unrecorded fails it after the stop wait") {
    TempDb t;
    enqueue_jobs(t.path, 1);
    asio::io_context io;  // outlives the worker (see above)
    auto opts = fast_retries();
    opts.stop_wait = std::chrono::milliseconds(200);
    DbWorker db(t.path, {}, opts);
    db.call_sync([](jobs::Store& st) {
        st.db().exec("PRAGMA busy_timeout = 20");
        return 0;
    });
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    SQLite::Database other(t.path, SQLite::OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    std::string caught;
    asio::co_spawn(
        io,
        [](DbWorker* db, jobs::Completion c, std::string* caught) -> asio::awaitable<void> {
            try {
                co_await db->complete(std::move(c));
            } catch (const std::exception& e) {
                *caught = e.what();
            }
        }(&db, done(claimed[0], "me"), &caught),
        asio::detached);
    while (db.failed_commits() < 1) {
        io.poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    db.stop();
    io.run();
    CHECK(caught.find("stopped before") != std::string::npos);
    other.exec("ROLLBACK");
}

TEST_CASE("a sync error stops the group's commit until a sync succeeds") {
    TempDb t;
    enqueue_jobs(t.path, 2);
    std::atomic<int> sync_failures{2};
    std::atomic<int> discarded{0};
    DbWorker::FileHooks hooks{[](jobs::Completion&) {},
                              [&sync_failures] {
                                  if (sync_failures-- > 0)
                                      throw std::runtime_error("fsync /out/b: Input/output error");
                              },
                              {},
                              [&discarded](const jobs::Completion&) { ++discarded; }};
    asio::io_context io;  // outlives the worker (see above)
    DbWorker db(t.path, hooks, fast_retries());
    auto claimed = db.call_sync(
        [](jobs::Store& st) { return st.claim("sim", "me", 10, jobs::unix_now(), 60); });
    REQUIRE(claimed.size() == 2);
    Results results;
    for (const auto& r : claimed)
        asio::co_spawn(io, complete_one(&db, done(r, "me"), &results), asio::detached);
    io.run();
    CHECK(results.applied == std::vector<bool>{true, true});
    CHECK(db.failed_commits() == 2);
    CHECK(discarded.load() == 0);
    auto recorded = db.call_sync([](jobs::Store& st) {
        return st.db().execAndGet("SELECT count(*) FROM attempts").getInt();
    });
    CHECK(recorded == 2);  // once each: the failed tries left nothing behind
}

namespace {

bool wait_until(const std::function<bool()>& cond) {
    for (int i = 0; i < 1000; ++i) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

}  // namespace

TEST_CASE("watchdog: a DB thread stuck in one step is not alive; waiting for work is") {
    using imgbatch::daemon::db_thread_alive;
    TempDb t;
    DbWorker w(t.path);
    std::uint64_t last = w.steps();
    // Idle (waiting for work): alive, look after look.
    REQUIRE(wait_until([&] { return !w.busy(); }));
    CHECK(db_thread_alive(w, last));
    CHECK(db_thread_alive(w, last));

    std::promise<void> release;
    std::atomic<bool> entered{false};
    w.post([&entered, gate = release.get_future().share()](imgbatch::jobs::Store&) {
        entered = true;
        gate.wait();  // a step that does not end (a hung disk, a lock never granted)
    });
    REQUIRE(wait_until([&] { return entered.load(); }));
    db_thread_alive(w, last);  // the look that sees the step begin may count earlier steps
    CHECK(w.busy());
    CHECK(!db_thread_alive(w, last));
    CHECK(!db_thread_alive(w, last));  // still the same step

    release.set_value();
    REQUIRE(wait_until([&] { return !w.busy(); }));
    CHECK(db_thread_alive(w, last));  // it moved
    // Later steps count too (the call's result comes back just before its step is counted).
    const std::uint64_t before = w.steps();
    CHECK(w.call_sync([](imgbatch::jobs::Store&) { return 7; }) == 7);
    REQUIRE(wait_until([&] { return w.steps() > before; }));
    CHECK(db_thread_alive(w, last));
}
