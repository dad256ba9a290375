// Budget holds (schema 007), the spend budgets count, and batches' own budgets (schema 008).
#include <sqlite3.h>

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
                                const std::vector<std::string>& batches, BudgetRead what) {
    // One read transaction: the three sums see the same database.
    SQLite::Transaction txn(impl_->db, SQLite::TransactionBehavior::DEFERRED);
    BudgetSpend out;
    if (what.day) {
        SpendFilter day;
        day.since = day_start;
        out.day_usd = spend(day).usd;
    }
    if (what.run) {
        SpendFilter run;
        run.owner = std::string(owner);
        out.run_usd = spend(run).usd;
    }
    // The batches asked for, and those with open work and a budget of their own.
    std::set<std::string> names(batches.begin(), batches.end());
    {
        auto q = impl_->prep(
            "SELECT b.name FROM batches b WHERE b.max_usd IS NOT NULL AND EXISTS (SELECT 1 FROM "
            "jobs j WHERE j.batch_id = b.id AND j.state IN ('pending', 'queued', 'running'))");
        while (q->executeStep()) names.insert(text(*q, 0));
    }
    for (const auto& b : names) {
        out.batch_usd[b] = 0;
        auto q = impl_->prep(
            "SELECT b.max_usd, EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.state "
            "IN ('pending', 'queued', 'running')) FROM batches b WHERE b.name = ?");
        q->bind(1, b);
        if (!q->executeStep()) continue;
        const auto max = optional_double(*q, 0);
        if (max) out.batch_max_usd[b] = *max;
        if (q->getColumn(1).getInt() != 0) out.open_batches.insert(b);
        q->reset();  // before the spend read below
        if (max || what.batches) {
            SpendFilter f;
            f.batch = b;
            out.batch_usd[b] = spend(f).usd;
        }
    }
    txn.commit();
    return out;
}

std::optional<BatchBudgetChange> Store::set_batch_budget(std::string_view batch,
                                                         std::optional<double> max_usd,
                                                         bool create) {
    // Our own transaction, or the caller's (enqueue --strict).
    std::optional<SQLite::Transaction> txn;
    if (sqlite3_get_autocommit(impl_->db.getHandle()) != 0)
        txn.emplace(impl_->db, SQLite::TransactionBehavior::IMMEDIATE);
    BatchBudgetChange change;
    {
        auto q = impl_->prep("SELECT max_usd FROM batches WHERE name = ?");
        q->bind(1, std::string(batch));
        change.existed = q->executeStep();
        if (change.existed) change.before = optional_double(*q, 0);
    }
    if (!change.existed && !create) return std::nullopt;
    const std::int64_t id = impl_->batch_id(batch);
    {
        auto q = impl_->prep("UPDATE batches SET max_usd = ? WHERE id = ?");
        if (max_usd)
            q->bind(1, *max_usd);
        else
            q->bind(1);
        q->bind(2, id);
        q->exec();
    }
    if (txn) txn->commit();
    return change;
}

std::optional<double> Store::batch_budget(std::string_view batch) {
    auto q = impl_->prep("SELECT max_usd FROM batches WHERE name = ?");
    q->bind(1, std::string(batch));
    if (!q->executeStep()) return std::nullopt;
    return optional_double(*q, 0);
}

int Store::return_vendor_batch_lines(std::int64_t id, const std::vector<LeasedAttempt>& lines,
                                     double now) {
    if (lines.empty()) return 0;
    auto txn = impl_->write_txn();
    const int changed = impl_->unmap_vendor_batch_lines(id, lines, now);
    {
        // Nothing was sent for a chunk left without a line.
        auto q = impl_->prep(
            "DELETE FROM vendor_batches WHERE id = ?1 AND state = 'preparing' AND requests = 0");
        q->bind(1, id);
        q->exec();
    }
    txn.commit();
    return changed;
}

}  // namespace imgbatch::jobs
