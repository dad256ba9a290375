// Spend (billed attempts' costs) and projections of what is queued (schema 006).
#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {
namespace {

// " AND ..." conditions on attempts a for filter; binds in the same order.
std::string attempt_conditions(const SpendFilter& f, bool batch_known) {
    std::string sql;
    if (f.since) sql += " AND a.finished_at >= ?";
    if (f.owner) sql += " AND a.owner = ?";
    if (f.provider) sql += " AND a.provider = ?";
    if (f.batch && batch_known) sql += " AND a.job_id IN (SELECT id FROM jobs WHERE batch_id = ?)";
    return sql;
}
void bind_attempt_conditions(SQLite::Statement& q, const SpendFilter& f,
                             std::optional<std::int64_t> batch_id) {
    int i = 1;
    if (f.since) q.bind(i++, *f.since);
    if (f.owner) q.bind(i++, *f.owner);
    if (f.provider) q.bind(i++, *f.provider);
    if (f.batch && batch_id) q.bind(i++, *batch_id);
}

Spend spend_of(SQLite::Statement& q, int first) {
    Spend s;
    s.usd = q.getColumn(first).getDouble();
    s.billed_attempts = q.getColumn(first + 1).getInt64();
    s.unpriced = q.getColumn(first + 2).getInt64();
    s.estimated = q.getColumn(first + 3).getInt64();
    return s;
}

constexpr const char* kSums =
    "total(a.cost_usd), count(*), count(*) - count(a.cost_usd), "
    "total(a.cost_basis = 'worst_case')";

}  // namespace

Spend Store::spend(const SpendFilter& filter) {
    std::optional<std::int64_t> batch_id;
    if (filter.batch) {
        batch_id = impl_->find_batch(*filter.batch);
        if (!batch_id) return {};
    }
    auto q = impl_->prep(std::string("SELECT ") + kSums + " FROM attempts a WHERE a.billed = 1" +
                         attempt_conditions(filter, true));
    bind_attempt_conditions(*q, filter, batch_id);
    Spend s;
    if (q->executeStep()) s = spend_of(*q, 0);
    return s;
}

std::vector<SpendRow> Store::spend_by(const SpendFilter& filter) {
    std::optional<std::int64_t> batch_id;
    if (filter.batch) {
        batch_id = impl_->find_batch(*filter.batch);
        if (!batch_id) return {};
    }
    auto q = impl_->prep(std::string("SELECT coalesce(b.name, ''), a.provider, j.model, ") + kSums +
                         " FROM attempts a JOIN jobs j ON j.id = a.job_id "
                         "LEFT JOIN batches b ON b.id = j.batch_id WHERE a.billed = 1" +
                         attempt_conditions(filter, true) + " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    bind_attempt_conditions(*q, filter, batch_id);
    std::vector<SpendRow> out;
    while (q->executeStep()) {
        SpendRow r;
        r.batch = text(*q, 0);
        r.provider = text(*q, 1);
        r.model = text(*q, 2);
        r.spend = spend_of(*q, 3);
        out.push_back(std::move(r));
    }
    return out;
}

QueuedCost Store::queued_cost(const SpendFilter& filter, const QueuedPricer& price, bool running) {
    std::optional<std::int64_t> batch_id;
    if (filter.batch) {
        batch_id = impl_->find_batch(*filter.batch);
        if (!batch_id) return {};
    }
    std::string sql =
        "SELECT r.provider, j.model, j.params, r.n - r.images_done, "
        "round(avg(length(CAST(j.prompt AS BLOB)))), count(*) "
        "FROM requests r JOIN jobs j ON j.id = r.job_id WHERE r.state ";
    sql += running ? "IN ('queued', 'running')" : "= 'queued'";
    if (batch_id) sql += " AND j.batch_id = ?";
    if (filter.provider) sql += " AND r.provider = ?";
    // Costs are linear in the prompt's size: a group priced at its mean prompt costs what its
    // requests cost one by one.
    sql += " GROUP BY 1, 2, 3, 4";
    std::vector<QueuedGroup> groups;
    {
        auto q = impl_->prep(sql);
        int i = 1;
        if (batch_id) q->bind(i++, *batch_id);
        if (filter.provider) q->bind(i++, *filter.provider);
        while (q->executeStep()) {
            QueuedGroup g;
            g.provider = text(*q, 0);
            g.model = text(*q, 1);
            g.params_json = text(*q, 2);
            g.n = q->getColumn(3).getInt();
            g.prompt_bytes = static_cast<std::int64_t>(q->getColumn(4).getDouble());
            g.requests = q->getColumn(5).getInt64();
            groups.push_back(std::move(g));
        }
    }
    // Priced once the statement is done (the pricer may take its time).
    QueuedCost out;
    for (const auto& g : groups) {
        if (g.n <= 0) continue;
        out.requests += g.requests;
        const Projection p = price ? price(g) : Projection{};
        if (!p.worst) {
            out.unpriced += g.requests;
            continue;
        }
        out.worst_usd += *p.worst * static_cast<double>(g.requests);
        out.typical_usd += p.typical.value_or(*p.worst) * static_cast<double>(g.requests);
    }
    return out;
}

}  // namespace imgbatch::jobs
