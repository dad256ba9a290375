// Budgets: the decision before each call (spend + in flight + this call within every budget),
// the budget day, and the store's holds and spend read.
#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>

#include "jobs/budget.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

constexpr double kNoon = 1795435200;  // 2026-11-23 12:00:00 UTC

BudgetConfig day_budget(double usd) {
    BudgetConfig c;
    c.max_usd_per_day = usd;
    return c;
}

}  // namespace

TEST_CASE("budget: no budget set never holds, even an unpriced call") {
    BudgetLedger l;
    l.snapshot(budget_day_start(l.config(), kNoon), 100, 100, {});
    CHECK_FALSE(l.check("b", std::nullopt, kNoon));
    CHECK_FALSE(l.check("b", 1000.0, kNoon));
}

TEST_CASE("budget: spend + reserved + this call must stay within the day budget") {
    BudgetLedger l;
    l.configure(day_budget(1.0));
    l.snapshot(budget_day_start(l.config(), kNoon), 0.5, 0, {});
    CHECK_FALSE(l.check("b", 0.5, kNoon));  // exactly on the limit fits
    l.reserve(1, "b", 0.3);
    auto h = l.check("b", 0.3, kNoon);
    REQUIRE(h);
    CHECK(h->kind == BudgetKind::day);
    CHECK(h->key() == "day");
    CHECK(h->limit_usd == 1.0);
    CHECK(h->spent_usd == doctest::Approx(0.5));
    CHECK(h->reserved_usd == doctest::Approx(0.3));
    CHECK(h->need_usd == doctest::Approx(0.3));
    CHECK_FALSE(l.check("b", 0.2, kNoon));
    // The attempt cost less than its worst case: the real cost replaces the reservation.
    l.recorded(1, 0.1, kNoon);
    CHECK(l.reserved(BudgetKind::day, "") == 0);
    CHECK(l.spent(BudgetKind::day, "", kNoon) == doctest::Approx(0.6));
    CHECK_FALSE(l.check("b", 0.4, kNoon));
    CHECK(l.check("b", 0.41, kNoon));
    // The next snapshot includes the recorded attempt: not counted twice.
    l.snapshot(budget_day_start(l.config(), kNoon), 0.6, 0, {});
    CHECK(l.spent(BudgetKind::day, "", kNoon) == doctest::Approx(0.6));
}

TEST_CASE("budget: an attempt of unknown cost keeps its worst case; a release frees it") {
    BudgetLedger l;
    l.configure(day_budget(1.0));
    l.snapshot(budget_day_start(l.config(), kNoon), 0, 0, {});
    l.reserve(1, "b", 0.6);
    l.recorded(1, std::nullopt, kNoon);
    CHECK(l.spent(BudgetKind::day, "", kNoon) == doctest::Approx(0.6));
    l.reserve(2, "b", 0.4);
    CHECK(l.check("b", 0.01, kNoon));
    l.release(2);  // given back unsent
    CHECK_FALSE(l.check("b", 0.4, kNoon));
}

TEST_CASE("budget: an unpriced call is held by the first budget set") {
    BudgetLedger l;
    BudgetConfig c;
    c.max_usd_per_run = 5;
    l.configure(c);
    auto h = l.check("b", std::nullopt, kNoon);
    REQUIRE(h);
    CHECK(h->kind == BudgetKind::run);
    CHECK(h->unpriced);
}

TEST_CASE("budget: per batch counts only that batch, day and run everything") {
    BudgetLedger l;
    BudgetConfig c;
    c.max_usd_per_batch = 1;
    c.max_usd_per_run = 3;
    l.configure(c);
    l.snapshot(budget_day_start(c, kNoon), 0, 0.5, {{"a", 0.9}, {"b", 0.0}});
    CHECK(l.knows_batch("a"));
    CHECK_FALSE(l.knows_batch("c"));
    auto h = l.check("a", 0.2, kNoon);
    REQUIRE(h);
    CHECK(h->kind == BudgetKind::batch);
    CHECK(h->batch == "a");
    CHECK(h->key() == "batch:a");
    CHECK_FALSE(l.check("b", 0.2, kNoon));
    l.reserve(1, "b", 0.9);
    l.reserve(2, "a", 0.1);
    CHECK(l.reserved(BudgetKind::batch, "b") == doctest::Approx(0.9));
    CHECK(l.reserved(BudgetKind::run, "") == doctest::Approx(1.0));
    // run: 0.5 spent + 1.0 in flight + 1.6 > 3
    l.reserve(3, "c", 0.9);
    auto r = l.check("d", 0.7, kNoon);
    REQUIRE(r);
    CHECK(r->kind == BudgetKind::run);
    // Raising the budget (SIGHUP) lets it start.
    c.max_usd_per_run = 10;
    l.configure(c);
    CHECK_FALSE(l.check("d", 0.7, kNoon));
}

TEST_CASE("budget: a new day starts the day budget again") {
    BudgetConfig c = day_budget(1.0);
    BudgetLedger l;
    l.configure(c);
    const double day = budget_day_start(c, kNoon);
    CHECK(day == kNoon - 12 * 3600);
    l.snapshot(day, 1.0, 0, {});
    l.reserve(1, "b", 0.2);
    l.recorded(1, 0.2, kNoon);
    CHECK(l.check("b", 0.1, kNoon));
    const double tomorrow = kNoon + 13 * 3600;  // 01:00 the next day
    CHECK(l.spent(BudgetKind::day, "", tomorrow) == 0);
    CHECK_FALSE(l.check("b", 0.1, tomorrow));
}

TEST_CASE("budget: the day starts at day_starts, in UTC or local time") {
    BudgetConfig c;
    c.day_starts_min = 6 * 60 + 30;
    CHECK(budget_day_start(c, kNoon) == kNoon - 5.5 * 3600);
    CHECK(budget_day_start(c, kNoon - 6 * 3600) == kNoon - 5.5 * 3600 - 86400);  // 06:00
    c.day_utc = false;
    const char* old = std::getenv("TZ");
    std::string saved = old ? old : "";
    setenv("TZ", "America/New_York", 1);  // UTC-5 in November
    tzset();
    // 12:00 UTC is 07:00 in New York: the day began at 06:30 local, 11:30 UTC.
    CHECK(budget_day_start(c, kNoon) == kNoon - 0.5 * 3600);
    if (old)
        setenv("TZ", saved.c_str(), 1);
    else
        unsetenv("TZ");
    tzset();
}

TEST_CASE("store: budget holds of running daemons; budget spend by day, run and batch") {
    TempDir dir;
    Store s(dir.file("a.db"));
    DaemonRow d;
    d.owner = "run-1";
    d.started_at = 100;
    s.register_daemon(d, false, [](const DaemonRow&) { return false; });
    BudgetHoldRow h;
    h.provider = "p1";
    h.budget = "day";
    h.limit_usd = 1;
    h.spent_usd = 0.95;
    h.need_usd = 0.2;
    h.since = 200;
    s.set_budget_holds("run-1", {h});
    auto holds = s.budget_holds();
    REQUIRE(holds.size() == 1);
    CHECK(holds[0].owner == "run-1");
    CHECK(holds[0].budget == "day");
    CHECK(*holds[0].need_usd == 0.2);
    s.set_budget_holds("run-1", {});
    CHECK(s.budget_holds().empty());
    s.set_budget_holds("run-1", {h});
    s.daemon_stopped("run-1", 300);
    CHECK(s.budget_holds().empty());  // a stopped daemon holds nothing

    s.enqueue("night", {item("a"), item("b")});
    auto claimed = s.claim("p1", "run-1", 10, 1e12, 60);
    REQUIRE(claimed.size() == 2);
    std::vector<Completion> cs;
    for (std::size_t i = 0; i < claimed.size(); ++i) {
        auto c = completion(claimed[i], "run-1", 1);
        c.finished_at = i == 0 ? 1000 : 5000;
        c.billed = true;
        c.cost_usd = 0.25;
        c.cost_basis = CostBasis::tokens;
        cs.push_back(std::move(c));
    }
    s.apply(cs);
    auto sp = s.budget_spend("run-1", 2000, {"night", "other"});
    CHECK(sp.day_usd == doctest::Approx(0.25));
    CHECK(sp.run_usd == doctest::Approx(0.5));
    CHECK(sp.batch_usd["night"] == doctest::Approx(0.5));
    CHECK(sp.batch_usd["other"] == 0);
    CHECK(s.budget_spend("run-2", 0, {}).run_usd == 0);
}

TEST_CASE("store: claim_except leaves the requests of held batches queued") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("held", {item("a"), item("b")});
    s.enqueue("free", {item("c")});
    s.enqueue("also-held", {item("d")});
    auto got = s.claim_except("p1", "run-1", 10, 1e12, 60, 0, {"held", "also-held"});
    REQUIRE(got.size() == 1);
    CHECK(got[0].batch == "free");
    CHECK(s.claim_except("p1", "run-1", 10, 1e12, 60, 0, {"held", "also-held"}).empty());
    CHECK(s.claim("p1", "run-1", 10, 1e12, 60).size() == 3);
}

// ---- vendor batch lines (README "Budgets", vendor batches) ----

TEST_CASE("budget: vendor batch lines are admitted in order while they fit; a day hold stops") {
    BudgetLedger l;
    l.configure(day_budget(1.0));
    l.snapshot(budget_day_start(l.config(), kNoon), 0.1, 0, {});
    std::vector<BudgetHold> holds;
    // 0.1 spent + 0.3 + 0.3 fit; 0.5 more would cross 1.0; the 0.1 after it is not admitted
    // either (the calls behind a held one wait with it).
    auto ok = l.admit({{1, "a", 0.3}, {2, "a", 0.3}, {3, "b", 0.5}, {4, "b", 0.1}}, kNoon, holds);
    CHECK(ok == std::vector<bool>{true, true, false, false});
    REQUIRE(holds.size() == 1);
    CHECK(holds[0].kind == BudgetKind::day);
    CHECK(holds[0].spent_usd == doctest::Approx(0.1));
    CHECK(holds[0].reserved_usd == doctest::Approx(0.6));
    CHECK(holds[0].need_usd == doctest::Approx(0.5));
    CHECK(l.reserved(BudgetKind::day, "") == doctest::Approx(0.6));
    CHECK(l.reserved(BudgetKind::batch, "a") == doctest::Approx(0.6));
    CHECK(l.reserved(BudgetKind::batch, "b") == 0);
    // The reservations count for direct calls too.
    CHECK(l.check("c", 0.31, kNoon));
    CHECK_FALSE(l.check("c", 0.3, kNoon));
}

TEST_CASE("budget: a batch budget holds the lines of its batch only; unpriced lines hold") {
    BudgetLedger l;
    BudgetConfig c;
    c.max_usd_per_batch = 0.5;
    l.configure(c);
    l.snapshot(budget_day_start(c, kNoon), 0, 0, {{"a", 0.1}, {"b", 0}, {"u", 0}});
    std::vector<BudgetHold> holds;
    auto ok = l.admit({{1, "a", 0.3},
                       {2, "a", 0.2},
                       {3, "b", 0.4},
                       {4, "a", 0.05},
                       {5, "b", 0.2},
                       {6, "u", std::nullopt},
                       {7, "b", 0.1}},
                      kNoon, holds);
    CHECK(ok == std::vector<bool>{true, false, true, false, false, false, false});
    REQUIRE(holds.size() == 3);
    CHECK(holds[0].key() == "batch:a");
    CHECK(holds[0].spent_usd == doctest::Approx(0.1));
    CHECK(holds[0].reserved_usd == doctest::Approx(0.3));
    CHECK(holds[0].need_usd == doctest::Approx(0.2));
    CHECK(holds[1].key() == "batch:b");
    CHECK(holds[2].key() == "batch:u");
    CHECK(holds[2].unpriced);
    // No budget set: every line fits, unpriced ones too.
    BudgetLedger free;
    holds.clear();
    CHECK(free.admit({{1, "a", 5.0}, {2, "a", std::nullopt}}, kNoon, holds) ==
          std::vector<bool>{true, true});
    CHECK(holds.empty());
}

TEST_CASE("budget: reservations add up, are replaced, released and given back exactly") {
    BudgetLedger l;
    l.configure(day_budget(1.0));
    l.reserve(1, "a", 0.1);
    l.reserve(2, "a", 0.2);
    l.reserve(3, "b", 0.3);
    l.reserve(2, "a", 0.2);  // reserved again (rebuilt after a restart): counted once
    CHECK(l.reserved(BudgetKind::run, "") == doctest::Approx(0.6));
    CHECK(l.reserved(BudgetKind::batch, "a") == doctest::Approx(0.3));
    CHECK(l.release(2).value_or(-1) == doctest::Approx(0.2));
    CHECK_FALSE(l.release(2));
    CHECK_FALSE(l.release(99));
    CHECK(l.reserved(BudgetKind::batch, "a") == doctest::Approx(0.1));
    l.release(1);
    l.release(3);
    CHECK(l.reserved(BudgetKind::day, "") == 0);  // exactly: no drift from the subtractions
    CHECK(l.reserved(BudgetKind::batch, "a") == 0);
}

TEST_CASE("budget: a vendor batch line counts for the run beyond the next snapshot") {
    BudgetLedger l;
    BudgetConfig c;
    c.max_usd_per_run = 1;
    c.max_usd_per_day = 1;
    c.max_usd_per_batch = 1;
    l.configure(c);
    const double day = budget_day_start(c, kNoon);
    l.snapshot(day, 0, 0, {{"a", 0}});
    l.reserve(1, "a", 0.05);
    l.line_recorded("a", l.release(1).value_or(-1), kNoon);
    CHECK(l.spent(BudgetKind::run, "", kNoon) == doctest::Approx(0.05));
    CHECK(l.spent(BudgetKind::day, "", kNoon) == doctest::Approx(0.05));
    CHECK(l.spent(BudgetKind::batch, "a", kNoon) == doctest::Approx(0.05));
    // The database has the line now, for the day and the batch, but not as the run's (its
    // attempt is the vendor batch's): counted once each.
    l.snapshot(day, 0.05, 0, {{"a", 0.05}});
    CHECK(l.spent(BudgetKind::run, "", kNoon) == doctest::Approx(0.05));
    CHECK(l.spent(BudgetKind::day, "", kNoon) == doctest::Approx(0.05));
    CHECK(l.spent(BudgetKind::batch, "a", kNoon) == doctest::Approx(0.05));
}

TEST_CASE("budget: a new day does not release an open vendor batch's reservation") {
    BudgetLedger l;
    l.configure(day_budget(1.0));
    l.snapshot(budget_day_start(l.config(), kNoon), 0.4, 0, {});
    std::vector<BudgetHold> holds;
    CHECK(l.admit({{1, "a", 0.5}}, kNoon, holds) == std::vector<bool>{true});
    const double tomorrow = kNoon + 13 * 3600;
    CHECK(l.spent(BudgetKind::day, "", tomorrow) == 0);
    CHECK_FALSE(l.check("a", 0.5, tomorrow));
    CHECK(l.check("a", 0.51, tomorrow));  // 0.5 still reserved
}

TEST_CASE("store: a vendor batch skips held batches; lines a budget refuses go back unused") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("held", {item("a"), item("b")});
    s.enqueue("free", {item("c"), item("d"), item("e")});
    CHECK_FALSE(s.open_vendor_batch("p1", 10, unix_now(), 86400, {"held", "free"}));
    CHECK(s.open_vendor_batches().empty());  // nothing recorded
    auto opened = s.open_vendor_batch("p1", 10, unix_now(), 86400, {"held"});
    REQUIRE(opened);
    REQUIRE(opened->requests.size() == 3);
    for (const auto& r : opened->requests) CHECK(r.batch == "free");
    const auto id = opened->batch.id;
    const auto& r = opened->requests;
    CHECK(s.return_vendor_batch_lines(
              id, {{r[1].request_id, r[1].attempt_no}, {r[2].request_id, r[2].attempt_no}},
              unix_now()) == 2);
    CHECK(s.vendor_batch(id)->requests == 1);
    CHECK(s.vendor_batch_lines(id, 0, 100).size() == 1);
    CHECK(s.db()
              .execAndGet("SELECT count(*) FROM requests WHERE state = 'queued' AND "
                          "attempt_no = 0 AND attempts = 0")
              .getInt64() == 4);
    // The last line given back: the row goes (nothing was sent for it).
    CHECK(s.return_vendor_batch_lines(id, {{r[0].request_id, r[0].attempt_no}}, unix_now()) == 1);
    CHECK_FALSE(s.vendor_batch(id));
    CHECK(s.db().execAndGet("SELECT count(*) FROM vendor_batch_requests").getInt64() == 0);
    CHECK(s.db().execAndGet("SELECT count(*) FROM jobs WHERE state = 'queued'").getInt64() == 5);
}
