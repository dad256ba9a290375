// A batch's own budget (schema 008, batches.max_usd): set and cleared in the store, read with
// the spend the budgets count, and replacing the config's max_usd_per_batch for that batch.
#include <doctest/doctest.h>

#include <SQLiteCpp/Transaction.h>

#include "jobs/budget.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

constexpr double kNoon = 1795435200;  // 2026-11-23 12:00:00 UTC

// Bills every queued request at usd each.
void bill_all(Store& s, double usd) {
    auto claimed = s.claim("p1", "run-1", 100, 1e12, 60);
    std::vector<Completion> cs;
    for (const auto& r : claimed) {
        auto c = completion(r, "run-1", 1);
        c.billed = true;
        c.cost_usd = usd;
        c.cost_basis = CostBasis::per_call;
        cs.push_back(std::move(c));
    }
    s.apply(cs);
}

}  // namespace

TEST_CASE("store: set_batch_budget creates, changes and clears a batch's own budget") {
    TempDir dir;
    Store s(dir.file("a.db"));
    CHECK_FALSE(s.batch_budget("night"));
    // An unknown batch is left alone unless asked to create it.
    CHECK_FALSE(s.set_batch_budget("night", 5.0, false));
    CHECK(s.batch_names().empty());

    auto c = s.set_batch_budget("night", 5.0);
    REQUIRE(c);
    CHECK_FALSE(c->existed);
    CHECK_FALSE(c->before);
    CHECK(s.batch_budget("night") == 5.0);

    c = s.set_batch_budget("night", 0.0, false);
    REQUIRE(c);
    CHECK(c->existed);
    CHECK(c->before == 5.0);
    CHECK(s.batch_budget("night") == 0.0);

    c = s.set_batch_budget("night", std::nullopt);
    REQUIRE(c);
    CHECK(c->before == 0.0);
    CHECK_FALSE(s.batch_budget("night"));
    // A negative budget is refused by the schema itself.
    CHECK_THROWS(s.db().exec("UPDATE batches SET max_usd = -1 WHERE name = 'night'"));
}

TEST_CASE("store: set_batch_budget writes into the caller's transaction") {
    TempDir dir;
    Store s(dir.file("a.db"));
    {
        SQLite::Transaction txn(s.db(), SQLite::TransactionBehavior::IMMEDIATE);
        REQUIRE(s.set_batch_budget("night", 2.0));
        s.enqueue("night", {item("a")});
        // Not committed: rolled back with the caller's transaction.
    }
    CHECK(s.batch_names().empty());
    CHECK_FALSE(s.batch_budget("night"));
}

TEST_CASE("store: budget_spend reads the own budgets of batches asked for and of open ones") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("done", {item("a")});
    bill_all(s, 0.25);
    s.set_batch_budget("done", 1.0);  // no open work: only read when asked for
    s.enqueue("open", {item("b"), item("c")});
    s.set_batch_budget("open", 0.5);
    s.enqueue("plain", {item("d")});  // open, no budget of its own

    auto sp = s.budget_spend("run-1", 0, {});
    CHECK(sp.batch_max_usd == std::map<std::string, double>{{"open", 0.5}});
    CHECK(sp.batch_usd == std::map<std::string, double>{{"open", 0.0}});
    CHECK(sp.open_batches == std::set<std::string>{"open"});

    sp = s.budget_spend("run-1", 0, {"done", "plain"});
    CHECK(sp.batch_max_usd == std::map<std::string, double>{{"done", 1.0}, {"open", 0.5}});
    CHECK(sp.batch_usd.at("done") == doctest::Approx(0.25));
    CHECK(sp.batch_usd.count("plain") == 1);
    CHECK(sp.open_batches == std::set<std::string>{"open", "plain"});

    // Once its jobs are done, a batch is no longer read unless asked for.
    bill_all(s, 0.1);
    sp = s.budget_spend("run-1", 0, {});
    CHECK(sp.batch_max_usd.empty());
    CHECK(sp.open_batches.empty());
}

TEST_CASE("budget: a batch's own budget replaces the config's per-batch budget, both ways") {
    BudgetConfig cfg;
    cfg.max_usd_per_batch = 1.0;
    BudgetLedger l;
    l.configure(cfg);
    const double day = budget_day_start(cfg, kNoon);
    l.snapshot(day, 0, 0, {{"low", 0.2}, {"high", 1.5}, {"plain", 0.9}},
               {{"low", 0.25}, {"high", 3.0}});
    CHECK(l.any());
    CHECK(l.limit(BudgetKind::batch, "low") == 0.25);
    CHECK(l.limit(BudgetKind::batch, "plain") == 1.0);
    // Below the config's: 0.2 + 0.1 > 0.25.
    auto h = l.check("low", 0.1, kNoon);
    REQUIRE(h);
    CHECK(h->kind == BudgetKind::batch);
    CHECK(h->limit_usd == 0.25);
    // Above it: 1.5 spent is past the config's 1.0, within the batch's 3.0.
    CHECK_FALSE(l.check("high", 1.0, kNoon));
    CHECK(l.check("high", 1.6, kNoon));
    // The others keep the config's.
    CHECK(l.check("plain", 0.2, kNoon));
    CHECK_FALSE(l.check("plain", 0.1, kNoon));
}

TEST_CASE("budget: a batch's own budget applies without any budget in the config; 0 stops it") {
    BudgetLedger l;
    CHECK_FALSE(l.any());
    l.snapshot(budget_day_start(l.config(), kNoon), 0, 0, {{"zero", 0}, {"free", 0}},
               {{"zero", 0.0}});
    CHECK(l.any());
    auto h = l.check("zero", 0.01, kNoon);
    REQUIRE(h);
    CHECK(h->key() == "batch:zero");
    CHECK(l.check("zero", std::nullopt, kNoon));  // unpriced: held too
    CHECK_FALSE(l.check("free", std::nullopt, kNoon));
    // Cleared at the next snapshot: nothing holds.
    l.snapshot(budget_day_start(l.config(), kNoon), 0, 0, {{"zero", 0}}, {});
    CHECK_FALSE(l.any());
    CHECK_FALSE(l.check("zero", 0.01, kNoon));
}

TEST_CASE("store: budget_spend reads only the sums asked for") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("own", {item("a")});
    s.enqueue("plain", {item("b")});
    s.set_batch_budget("own", 1.0);
    bill_all(s, 0.25);
    s.enqueue("own", {item("c")});
    s.enqueue("plain", {item("d")});
    BudgetRead none;
    none.day = none.run = none.batches = false;
    auto sp = s.budget_spend("run-1", 0, {"plain"}, none);
    CHECK(sp.day_usd == 0);
    CHECK(sp.run_usd == 0);
    // A batch with a budget of its own reads its spend; the others read 0.
    CHECK(sp.batch_usd.at("own") == doctest::Approx(0.25));
    CHECK(sp.batch_usd.at("plain") == 0);
    sp = s.budget_spend("run-1", 0, {"plain"});
    CHECK(sp.day_usd == doctest::Approx(0.5));
    CHECK(sp.run_usd == doctest::Approx(0.5));
    CHECK(sp.batch_usd.at("plain") == doctest::Approx(0.25));
}
