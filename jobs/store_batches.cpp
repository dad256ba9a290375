// Vendor batches: the chunk of requests recorded before anything is created at the vendor,
// its state as the batch runner moves it on, and the lines not recorded yet.
#include <algorithm>
#include <charconv>

#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

namespace {

constexpr const char* kOwnerPrefix = "vbatch:";

constexpr const char* kRowColumns =
    "id, provider, chunk, state, vendor_id, vendor_status, requests, completed, failed, "
    "applied, bytes, input_file_id, output_file_id, error_file_id, message, created_at, "
    "updated_at, finished_at";

VendorBatchRow read_row(SQLite::Statement& q) {
    VendorBatchRow r;
    r.id = q.getColumn(0).getInt64();
    r.provider = text(q, 1);
    r.chunk = text(q, 2);
    r.state = text(q, 3);
    r.vendor_id = text(q, 4);
    r.vendor_status = text(q, 5);
    r.requests = q.getColumn(6).getInt64();
    r.completed = q.getColumn(7).getInt64();
    r.failed = q.getColumn(8).getInt64();
    r.applied = q.getColumn(9).getInt64();
    r.bytes = q.getColumn(10).getInt64();
    r.input_file_id = text(q, 11);
    r.output_file_id = text(q, 12);
    r.error_file_id = text(q, 13);
    r.message = text(q, 14);
    r.created_at = q.getColumn(15).getDouble();
    r.updated_at = q.getColumn(16).getDouble();
    r.finished_at = q.getColumn(17).isNull() ? 0 : q.getColumn(17).getDouble();
    return r;
}

// The job's fields a claim carries.
// The first 13 columns of the claim's RETURNING too (claim_sql), whose priority comes last.
constexpr const char* kLineColumns =
    "r.id, r.job_id, r.seq, r.first_index, r.n, r.images_done, r.attempt_no, r.attempts, "
    "r.rate_limited, r.moderation, r.provider, r.timeouts, r.provider_failures";

ClaimedRequest read_line(StoreDb& impl, SQLite::Statement& q) {
    ClaimedRequest r;
    r.request_id = q.getColumn(0).getInt64();
    r.job_id = q.getColumn(1).getInt64();
    r.seq = q.getColumn(2).getInt();
    r.first_index = q.getColumn(3).getInt();
    r.n = q.getColumn(4).getInt();
    r.images_done = q.getColumn(5).getInt();
    r.attempt_no = q.getColumn(6).getInt();
    r.attempts = q.getColumn(7).getInt();
    r.rate_limited = q.getColumn(8).getInt();
    r.moderation = q.getColumn(9).getInt();
    r.provider = text(q, 10);
    r.timeouts = q.getColumn(11).getInt();
    r.provider_failures = q.getColumn(12).getInt();
    (void)impl;
    return r;
}

}  // namespace

std::string vendor_batch_owner(std::int64_t id) {
    return kOwnerPrefix + std::to_string(id);
}

std::optional<std::int64_t> vendor_batch_of_owner(std::string_view owner) {
    if (!owner.starts_with(kOwnerPrefix)) return std::nullopt;
    owner.remove_prefix(std::string_view(kOwnerPrefix).size());
    std::int64_t id = 0;
    auto [p, ec] = std::from_chars(owner.data(), owner.data() + owner.size(), id);
    if (ec != std::errc() || p != owner.data() + owner.size() || id <= 0) return std::nullopt;
    return id;
}

std::string custom_id(std::int64_t request_id, int attempt_no) {
    return "r" + std::to_string(request_id) + "-a" + std::to_string(attempt_no);
}

bool parse_custom_id(std::string_view s, std::int64_t& request_id, int& attempt_no) {
    if (!s.starts_with('r')) return false;
    auto dash = s.find("-a");
    if (dash == std::string_view::npos) return false;
    auto a = s.substr(1, dash - 1), b = s.substr(dash + 2);
    auto [p1, e1] = std::from_chars(a.data(), a.data() + a.size(), request_id);
    auto [p2, e2] = std::from_chars(b.data(), b.data() + b.size(), attempt_no);
    return e1 == std::errc() && e2 == std::errc() && p1 == a.data() + a.size() &&
           p2 == b.data() + b.size() && !a.empty() && !b.empty() && request_id > 0;
}

std::string Store::database_instance() {
    auto q = impl_->prep("SELECT id FROM database_instance LIMIT 1");
    return q->executeStep() ? text(*q, 0) : std::string();
}

std::optional<Store::OpenedVendorBatch> Store::open_vendor_batch(
    std::string_view provider, int limit, double now, double lease_s,
    const std::vector<std::string>& skip_batches) {
    if (limit <= 0) return std::nullopt;
    auto txn = impl_->write_txn();
    {
        // Nothing ready: no row.
        auto q = impl_->prep(
            "SELECT 1 FROM requests WHERE state = 'queued' AND provider = ? AND not_before <= ? "
            "LIMIT 1");
        q->bind(1, std::string(provider));
        q->bind(2, now);
        if (!q->executeStep()) return std::nullopt;
    }
    OpenedVendorBatch out;
    const std::string instance = database_instance();
    {
        auto q = impl_->prep(
            "INSERT INTO vendor_batches(provider, chunk, state, created_at, updated_at) "
            "VALUES (?, ?, 'preparing', ?, ?)");
        // The chunk name needs the id: a placeholder first, unique per transaction.
        q->bind(1, std::string(provider));
        q->bind(2, "new-" + std::to_string(now));
        q->bind(3, now);
        q->bind(4, now);
        q->exec();
    }
    const std::int64_t id = impl_->db.getLastInsertRowid();
    const std::string chunk = instance + "-" + std::to_string(id);
    {
        auto q = impl_->prep("UPDATE vendor_batches SET chunk = ? WHERE id = ?");
        q->bind(1, chunk);
        q->bind(2, id);
        q->exec();
    }
    {
        std::string sql(claim_sql());
        if (!skip_batches.empty()) {
            // Requests of the batches skipped (held by their budget) stay queued.
            std::string names;
            for (std::size_t i = 0; i < skip_batches.size(); ++i)
                names += (i ? ", ?" : "?") + std::to_string(6 + i);
            sql.insert(sql.find(" ORDER BY priority"),
                       " AND NOT EXISTS (SELECT 1 FROM jobs j JOIN batches b ON b.id = j.batch_id "
                       "WHERE j.id = requests.job_id AND b.name IN (" +
                           names + "))");
        }
        auto q = impl_->prep(sql);
        q->bind(1, vendor_batch_owner(id));
        q->bind(2, now + lease_s);
        q->bind(3, std::string(provider));
        q->bind(4, now);
        q->bind(5, limit);
        for (std::size_t i = 0; i < skip_batches.size(); ++i)
            q->bind(static_cast<int>(6 + i), skip_batches[i]);
        while (q->executeStep()) out.requests.push_back(read_line(*impl_, *q));
    }
    if (out.requests.empty()) return std::nullopt;  // only skipped ones: nothing recorded
    std::sort(out.requests.begin(), out.requests.end(),
              [](const ClaimedRequest& a, const ClaimedRequest& b) {
                  return a.request_id < b.request_id;
              });
    for (auto& r : out.requests) {
        fill_job(*impl_, r);
        {
            auto q = impl_->prep(
                "INSERT INTO vendor_batch_requests(vendor_batch_id, request_id, attempt_no) "
                "VALUES (?, ?, ?)");
            q->bind(1, id);
            q->bind(2, r.request_id);
            q->bind(3, r.attempt_no);
            q->exec();
        }
        auto q = impl_->prep(
            "UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'queued'");
        q->bind(1, now);
        q->bind(2, r.job_id);
        q->exec();
    }
    {
        auto q = impl_->prep("UPDATE vendor_batches SET requests = ? WHERE id = ?");
        q->bind(1, static_cast<std::int64_t>(out.requests.size()));
        q->bind(2, id);
        q->exec();
    }
    txn.commit();
    out.batch = *vendor_batch(id);
    return out;
}

void Store::drop_from_vendor_batch(std::int64_t id, const std::vector<LeasedAttempt>& attempts,
                                   double now) {
    if (attempts.empty()) return;
    // One transaction: a request is never left leased to a vendor batch it is not in.
    auto txn = impl_->write_txn();
    impl_->unmap_vendor_batch_lines(id, attempts, now);
    txn.commit();
}

int StoreDb::unmap_vendor_batch_lines(std::int64_t id, const std::vector<LeasedAttempt>& lines,
                                      double now) {
    for (const auto& a : lines) {
        auto q =
            prep("DELETE FROM vendor_batch_requests WHERE vendor_batch_id = ? AND request_id = ?");
        q->bind(1, id);
        q->bind(2, a.request_id);
        q->exec();
    }
    const int changed = unclaim_rows(vendor_batch_owner(id), lines, now);
    auto q = prep(
        "UPDATE vendor_batches SET requests = (SELECT count(*) FROM vendor_batch_requests "
        "WHERE vendor_batch_id = ?1), updated_at = ?2 WHERE id = ?1");
    q->bind(1, id);
    q->bind(2, now);
    q->exec();
    return changed;
}

void Store::update_vendor_batch(const VendorBatchRow& r) {
    const double now = unix_now();
    const bool final = r.state == kVbDone || r.state == kVbAbandoned;
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "UPDATE vendor_batches SET state = ?, vendor_id = ?, vendor_status = ?, completed = ?, "
        "failed = ?, applied = ?, bytes = ?, input_file_id = ?, output_file_id = ?, "
        "error_file_id = ?, message = ?, updated_at = ?, "
        "finished_at = CASE WHEN ? THEN coalesce(finished_at, ?) ELSE NULL END WHERE id = ?");
    q->bind(1, r.state);
    bind_text_or_null(*q, 2, r.vendor_id);
    bind_text_or_null(*q, 3, r.vendor_status);
    q->bind(4, r.completed);
    q->bind(5, r.failed);
    q->bind(6, r.applied);
    q->bind(7, r.bytes);
    bind_text_or_null(*q, 8, r.input_file_id);
    bind_text_or_null(*q, 9, r.output_file_id);
    bind_text_or_null(*q, 10, r.error_file_id);
    bind_text_or_null(*q, 11, r.message);
    q->bind(12, now);
    q->bind(13, final ? 1 : 0);
    q->bind(14, now);
    q->bind(15, r.id);
    q->exec();
    txn.commit();
}

std::optional<VendorBatchRow> Store::vendor_batch(std::int64_t id) {
    auto q =
        impl_->prep(std::string("SELECT ") + kRowColumns + " FROM vendor_batches WHERE id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return std::nullopt;
    return read_row(*q);
}

std::vector<VendorBatchRow> Store::open_vendor_batches(std::string_view provider) {
    auto q = impl_->prep(std::string("SELECT ") + kRowColumns +
                         " FROM vendor_batches WHERE state NOT IN ('done', 'abandoned') "
                         "AND (?1 = '' OR provider = ?1) ORDER BY id");
    q->bind(1, std::string(provider));
    std::vector<VendorBatchRow> out;
    while (q->executeStep()) out.push_back(read_row(*q));
    return out;
}

std::vector<ClaimedRequest> Store::vendor_batch_lines(std::int64_t id, std::int64_t after,
                                                      int limit) {
    auto q = impl_->prep(std::string("SELECT ") + kLineColumns +
                         " FROM vendor_batch_requests m JOIN requests r ON r.id = m.request_id "
                         "WHERE m.vendor_batch_id = ?1 AND m.request_id > ?2 "
                         "AND r.state = 'running' AND r.lease_owner = ?3 "
                         "AND r.attempt_no = m.attempt_no ORDER BY m.request_id LIMIT ?4");
    q->bind(1, id);
    q->bind(2, after);
    q->bind(3, vendor_batch_owner(id));
    q->bind(4, limit);
    std::vector<ClaimedRequest> out;
    while (q->executeStep()) out.push_back(read_line(*impl_, *q));
    q->reset();
    for (auto& r : out) fill_job(*impl_, r);
    return out;
}

std::vector<ClaimedRequest> Store::vendor_batch_lines(
    std::int64_t id, const std::vector<std::int64_t>& request_ids) {
    std::vector<ClaimedRequest> out;
    auto q = impl_->prep(std::string("SELECT ") + kLineColumns +
                         " FROM vendor_batch_requests m JOIN requests r ON r.id = m.request_id "
                         "WHERE m.vendor_batch_id = ?1 AND m.request_id = ?2 "
                         "AND r.state = 'running' AND r.lease_owner = ?3 "
                         "AND r.attempt_no = m.attempt_no");
    const std::string owner = vendor_batch_owner(id);
    for (auto rid : request_ids) {
        q->reset();
        q->bind(1, id);
        q->bind(2, rid);
        q->bind(3, owner);
        if (q->executeStep()) out.push_back(read_line(*impl_, *q));
    }
    q->reset();
    for (auto& r : out) fill_job(*impl_, r);
    return out;
}

bool Store::vendor_batch_cancelled(std::int64_t id) {
    auto q = impl_->prep(
        "SELECT count(*), coalesce(sum(j.state = 'cancelled'), 0) FROM vendor_batch_requests m "
        "JOIN requests r ON r.id = m.request_id JOIN jobs j ON j.id = r.job_id "
        "WHERE m.vendor_batch_id = ?1 AND r.state = 'running' AND r.lease_owner = ?2 "
        "AND r.attempt_no = m.attempt_no");
    q->bind(1, id);
    q->bind(2, vendor_batch_owner(id));
    if (!q->executeStep()) return false;
    const auto open = q->getColumn(0).getInt64();
    return open > 0 && q->getColumn(1).getInt64() == open;
}

std::vector<AttemptVendorBatch> Store::job_vendor_batches(std::int64_t job_id) {
    auto q = impl_->prep(
        "SELECT m.request_id, m.attempt_no, v.id, v.vendor_id, v.state, v.vendor_status "
        "FROM requests r JOIN vendor_batch_requests m ON m.request_id = r.id "
        "JOIN vendor_batches v ON v.id = m.vendor_batch_id WHERE r.job_id = ? "
        "ORDER BY m.request_id, m.attempt_no");
    q->bind(1, job_id);
    std::vector<AttemptVendorBatch> out;
    while (q->executeStep())
        out.push_back({q->getColumn(0).getInt64(), q->getColumn(1).getInt(),
                       q->getColumn(2).getInt64(), text(*q, 3), text(*q, 4), text(*q, 5)});
    return out;
}

void move_to_provider(StoreDb& impl, std::int64_t request_id, std::int64_t job_id,
                      const std::string& provider) {
    {
        auto q = impl.prep("UPDATE requests SET provider = ? WHERE id = ?");
        q->bind(1, provider);
        q->bind(2, request_id);
        q->exec();
    }
    // The job names the provider that serves it now (status, show, export, the report); each
    // attempt keeps the provider it called.
    auto q = impl.prep("UPDATE jobs SET provider = ? WHERE id = ?");
    q->bind(1, provider);
    q->bind(2, job_id);
    q->exec();
}

}  // namespace imgbatch::jobs
