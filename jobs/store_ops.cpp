// User operations on jobs: cancel and retry.
#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

namespace {

// Ids of the jobs matching filter whose state is one of states (an SQL list), in id order.
std::vector<std::int64_t> matching_jobs(SQLite::Database& db, const JobFilter& filter,
                                        const char* states) {
    std::string sql = "SELECT j.id FROM jobs j WHERE j.state IN (";
    sql += states;
    sql += ")";
    append_filter(sql, filter);
    sql += " ORDER BY j.id";
    if (filter.limit > 0) sql += " LIMIT " + std::to_string(filter.limit);
    SQLite::Statement q(db, sql);
    int index = 1;
    bind_filter(q, index, filter);
    std::vector<std::int64_t> ids;
    while (q.executeStep()) ids.push_back(q.getColumn(0).getInt64());
    return ids;
}

}  // namespace

int Store::cancel(const JobFilter& filter) {
    const double now = unix_now();
    auto txn = impl_->write_txn();
    const auto ids = matching_jobs(impl_->db, filter, "'pending', 'queued', 'running'");
    for (auto id : ids) {
        {
            // Running requests continue; their images are kept when they complete.
            auto q = impl_->prep(
                "UPDATE requests SET state = 'cancelled' WHERE job_id = ? AND state = 'queued'");
            q->bind(1, id);
            q->exec();
        }
        auto q = impl_->prep(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ?");
        q->bind(1, now);
        q->bind(2, now);
        q->bind(3, id);
        q->exec();
    }
    txn.commit();
    return static_cast<int>(ids.size());
}

int Store::retry(const JobFilter& filter) {
    const double now = unix_now();
    auto txn = impl_->write_txn();
    const auto ids = matching_jobs(impl_->db, filter, "'failed', 'blocked', 'cancelled'");
    for (auto id : ids) {
        {
            auto q = impl_->prep(
                "UPDATE requests SET state = 'queued', attempts = 0, rate_limited = 0, "
                "moderation = 0, timeouts = 0, provider_failures = 0, not_before = 0, "
                "lease_owner = NULL, lease_until = NULL, "
                "last_error_class = NULL, last_error_code = NULL, last_http_status = NULL, "
                "last_error_message = NULL "
                "WHERE job_id = ? AND state IN ('failed', 'blocked', 'cancelled')");
            q->bind(1, id);
            q->exec();
        }
        {
            auto q = impl_->prep(
                "UPDATE jobs SET state = 'queued', error = NULL, finished_at = NULL, "
                "updated_at = ? WHERE id = ?");
            q->bind(1, now);
            q->bind(2, id);
            q->exec();
        }
        // A cancelled job may still have a request running: then the job is running.
        impl_->settle_job(id, now);
    }
    txn.commit();
    return static_cast<int>(ids.size());
}

}  // namespace imgbatch::jobs
