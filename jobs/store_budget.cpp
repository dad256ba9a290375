// Budget holds (schema 007) and the spend budgets count.
#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

void Store::set_budget_holds(std::string_view owner, const std::vector<BudgetHoldRow>& holds) {
    auto txn = impl_->write_txn();
    {
        auto q = impl_->prep("DELETE FROM budget_holds WHERE owner = ?");
        q->bind(1, std::string(owner));
        q->exec();
    }
    for (const auto& h : holds) {
        auto q = impl_->prep(
            "INSERT OR REPLACE INTO budget_holds(owner, provider, budget, batch, limit_usd, "
            "spent_usd, need_usd, since) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        q->bind(1, std::string(owner));
        q->bind(2, h.provider);
        q->bind(3, h.budget);
        q->bind(4, h.batch);
        q->bind(5, h.limit_usd);
        q->bind(6, h.spent_usd);
        if (h.need_usd)
            q->bind(7, *h.need_usd);
        else
            q->bind(7);
        q->bind(8, h.since);
        q->exec();
    }
    txn.commit();
}

std::vector<BudgetHoldRow> Store::budget_holds() {
    std::vector<BudgetHoldRow> out;
    auto q = impl_->prep(
        "SELECT h.owner, h.provider, h.budget, h.batch, h.limit_usd, h.spent_usd, h.need_usd, "
        "h.since FROM budget_holds h JOIN daemons d ON d.owner = h.owner "
        "WHERE d.stopped_at IS NULL ORDER BY h.provider, h.since");
    while (q->executeStep()) {
        BudgetHoldRow h;
        h.owner = text(*q, 0);
        h.provider = text(*q, 1);
        h.budget = text(*q, 2);
        h.batch = text(*q, 3);
        h.limit_usd = q->getColumn(4).getDouble();
        h.spent_usd = q->getColumn(5).getDouble();
        h.need_usd = optional_double(*q, 6);
        h.since = q->getColumn(7).getDouble();
        out.push_back(std::move(h));
    }
    return out;
}

BudgetSpend Store::budget_spend(std::string_view owner, double day_start,
                                const std::vector<std::string>& batches) {
    // One read transaction: the three sums see the same database.
    SQLite::Transaction txn(impl_->db, SQLite::TransactionBehavior::DEFERRED);
    BudgetSpend out;
    SpendFilter day;
    day.since = day_start;
    out.day_usd = spend(day).usd;
    SpendFilter run;
    run.owner = std::string(owner);
    out.run_usd = spend(run).usd;
    for (const auto& b : batches) {
        SpendFilter f;
        f.batch = b;
        out.batch_usd[b] = spend(f).usd;
    }
    txn.commit();
    return out;
}

}  // namespace imgbatch::jobs
