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
