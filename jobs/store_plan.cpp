// Planning rows inserted by SQL: reading pending rows (every column checked for its type),
// queueing or rejecting them one by one, and rejecting rows that bypassed 'pending'.
#include <sqlite3.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <climits>

#include "jobs/store_impl.hpp"
#include "jobs/text.hpp"

namespace imgbatch::jobs {

namespace {

constexpr std::size_t kShownMax = 40;  // bytes of a bad value quoted in a message

// A value read from a row, for messages: 2.7, "abc" (cut), NULL, a blob of 3 bytes.
std::string shown_value(SQLite::Column c) {
    switch (c.getType()) {
        case SQLITE_NULL:
            return "NULL";
        case SQLITE_BLOB:
            return "a blob of " + std::to_string(c.getBytes()) + " bytes";
        case SQLITE_TEXT: {
            std::string t = c.getString();
            if (!is_clean_utf8(t)) return "text that is not valid UTF-8";
            if (t.size() > kShownMax) {
                std::size_t cut = kShownMax;
                while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
                t = t.substr(0, cut) + "...";
            }
            return boost::json::serialize(boost::json::string(t));
        }
        default:
            return c.getString();  // INTEGER or REAL as SQLite prints it
    }
}

std::string bad_field(std::string_view name, std::string_view what) {
    return "field '" + std::string(name) + "': " + std::string(what);
}

// The columns pending_jobs reads, in this order.
constexpr const char* kPendingSql =
    "SELECT j.id, j.prompt, j.model, j.provider, j.key, j.n, j.priority, j.params, j.metadata, "
    "j.batch_id, j.batch_id IS NULL OR EXISTS (SELECT 1 FROM batches b WHERE b.id = j.batch_id) "
    "FROM jobs j WHERE j.state = 'pending' ORDER BY j.id LIMIT ?";

// A text column; NULL reads as "" where allowed. Returns an error, or empty.
std::string read_text(SQLite::Statement& q, int col, std::string_view name, bool nullable,
                      std::string& out) {
    auto c = q.getColumn(col);
    const int type = c.getType();  // before any conversion
    if (type == SQLITE_TEXT || (nullable && type == SQLITE_NULL)) {
        out = type == SQLITE_NULL ? std::string() : c.getString();
        return {};
    }
    return bad_field(name, "must be text, got " + shown_value(c));
}

// An integer column that must fit an int (no rounding of 2.7, no wrapping of 2^32 + 1).
std::string read_int(SQLite::Statement& q, int col, std::string_view name, int& out) {
    auto c = q.getColumn(col);
    if (c.getType() != SQLITE_INTEGER)
        return bad_field(name, "must be an integer, got " + shown_value(c));
    const std::int64_t v = c.getInt64();
    if (v < INT_MIN || v > INT_MAX)
        return bad_field(name, "out of range, got " + std::to_string(v));
    out = static_cast<int>(v);
    return {};
}

// A JSON object column (params, metadata).
std::string read_object(SQLite::Statement& q, int col, std::string_view name, bool nullable,
                        boost::json::object& out) {
    auto c = q.getColumn(col);
    const int type = c.getType();
    if (nullable && type == SQLITE_NULL) return {};
    if (type == SQLITE_TEXT) {
        boost::system::error_code ec;
        auto v = boost::json::parse(c.getString(), ec);
        if (!ec && v.is_object()) {
            out = std::move(v.as_object());
            return {};
        }
    }
    return bad_field(name, "must be a JSON object, got " + shown_value(c));
}

// Reads one pending row; the first problem found goes to p.parse_error.
void read_pending(SQLite::Statement& q, PendingJob& p) {
    auto& s = p.spec;
    s.source = "jobs row " + std::to_string(p.id);
    std::string err = read_text(q, 1, "prompt", false, s.prompt);
    if (err.empty()) err = read_text(q, 2, "model", false, s.model);
    if (err.empty()) err = read_text(q, 3, "provider", true, s.provider);
    if (err.empty()) err = read_text(q, 4, "key", true, s.key);
    if (err.empty()) err = read_int(q, 5, "n", s.n);
    if (err.empty()) err = read_int(q, 6, "priority", s.priority);
    if (err.empty()) err = read_object(q, 7, "params", false, s.params);
    if (err.empty()) err = read_object(q, 8, "metadata", true, s.metadata);
    if (err.empty()) {
        for (const char* reserved : {"prompt", "model", "n"})
            if (s.params.contains(reserved)) {
                err = bad_field("params." + std::string(reserved),
                                "use the column '" + std::string(reserved) + "'");
                break;
            }
    }
    if (err.empty()) {
        auto batch = q.getColumn(9);
        if (batch.getType() != SQLITE_NULL && batch.getType() != SQLITE_INTEGER)
            err = bad_field("batch_id",
                            "must be the id of a batch (an integer), got " + shown_value(batch));
        else if (q.getColumn(10).getInt() == 0)
            err = bad_field("batch_id", "no batch with id " + std::to_string(batch.getInt64()));
    }
    p.parse_error = std::move(err);
}

// SQLite errors that belong to one row's data (a constraint it breaks, a value too big), not
// to the database: the row is rejected, the others go on.
bool row_fault(const SQLite::Exception& e) {
    switch (e.getErrorCode() & 0xff) {
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_TOOBIG:
        case SQLITE_RANGE:
            return true;
        default:
            return false;
    }
}

void reject_row(StoreDb& impl, std::int64_t job_id, const std::string& reason, double now,
                const char* from_states) {
    auto q =
        impl.prep(std::string("UPDATE jobs SET state = 'rejected', error = ?, finished_at = ?, "
                              "updated_at = ? WHERE id = ? AND state IN (") +
                  from_states + ")");
    q->bind(1, reason);
    q->bind(2, now);
    q->bind(3, now);
    q->bind(4, job_id);
    q->exec();
}

// Queues one pending row with its requests. False if the row is no longer pending.
bool queue_row(StoreDb& impl, const PlanDecision& d, std::optional<std::int64_t>& sql_batch,
               double now) {
    bool has_batch = false;
    {
        auto q = impl.prep("SELECT batch_id IS NOT NULL FROM jobs WHERE id = ?");
        q->bind(1, d.job_id);
        has_batch = q->executeStep() && q->getColumn(0).getInt();
    }
    if (!has_batch && !sql_batch) sql_batch = impl.batch_id("sql");
    std::optional<int> priority;
    {
        // Only rows still pending: another daemon may have planned them meanwhile. Counters
        // a SQL insert may have set are cleared: the job starts from nothing.
        auto q = impl.prep(
            "UPDATE jobs SET state = 'queued', provider = ?, "
            "batch_id = COALESCE(batch_id, ?), images_done = 0, error = NULL, "
            "finished_at = NULL, updated_at = ? "
            "WHERE id = ? AND state = 'pending' RETURNING priority");
        q->bind(1, d.provider);
        if (sql_batch)
            q->bind(2, *sql_batch);
        else
            q->bind(2);
        q->bind(3, now);
        q->bind(4, d.job_id);
        if (q->executeStep()) priority = q->getColumn(0).getInt();
    }
    if (!priority) return false;
    auto ins = impl.prep(
        "INSERT INTO requests(job_id, seq, first_index, provider, n, priority) "
        "VALUES (?, ?, ?, ?, ?, ?)");
    for (const auto& r : d.plan) {
        ins->reset();
        ins->bind(1, d.job_id);
        ins->bind(2, r.seq);
        ins->bind(3, r.first_index);
        ins->bind(4, d.provider);
        ins->bind(5, r.n);
        ins->bind(6, *priority);
        ins->exec();
    }
    return true;
}

}  // namespace

std::vector<PendingJob> Store::pending_jobs(int limit) {
    std::vector<PendingJob> out;
    auto q = impl_->prep(kPendingSql);
    q->bind(1, limit);
    while (q->executeStep()) {
        PendingJob p;
        p.id = q->getColumn(0).getInt64();
        read_pending(*q, p);
        out.push_back(std::move(p));
    }
    return out;
}

void Store::apply_plans(const std::vector<PlanDecision>& plans) {
    const double now = unix_now();
    auto txn = impl_->write_txn();
    std::optional<std::int64_t> sql_batch;  // created only when a row needs it
    for (const auto& d : plans) {
        if (!d.error.empty()) {
            reject_row(*impl_, d.job_id, d.error, now, "'pending'");
            continue;
        }
        // Each row in its own savepoint: a row whose plan breaks a constraint is rejected
        // alone; a database error (busy, full, I/O) fails the whole pass, retried later.
        impl_->db.exec("SAVEPOINT plan_row");
        const auto sql_batch_before = sql_batch;
        try {
            queue_row(*impl_, d, sql_batch, now);
            impl_->db.exec("RELEASE plan_row");
        } catch (const SQLite::Exception& e) {
            if (!row_fault(e)) throw;  // the whole transaction rolls back
            impl_->db.exec("ROLLBACK TO plan_row");
            impl_->db.exec("RELEASE plan_row");
            sql_batch = sql_batch_before;
            reject_row(*impl_, d.job_id, std::string("could not be planned: ") + e.what(), now,
                       "'pending'");
        }
    }
    txn.commit();
}

std::vector<Rejection> Store::reject_unplanned(int limit) {
    std::vector<Rejection> out;
    std::int64_t& checked = impl_->unplanned_checked;
    std::int64_t upto = checked;
    {
        auto q = impl_->prep(
            "SELECT max(id) FROM (SELECT id FROM jobs WHERE id > ? ORDER BY id LIMIT ?)");
        q->bind(1, checked);
        q->bind(2, limit);
        if (q->executeStep() && !q->getColumn(0).isNull()) upto = q->getColumn(0).getInt64();
    }
    if (upto == checked) return out;
    {
        auto q = impl_->prep(
            "SELECT id, state FROM jobs j WHERE id > ? AND id <= ? "
            // +state: walk the id range, not every queued job of the state index.
            "AND +state IN ('queued', 'running') "
            "AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.job_id = j.id) ORDER BY id");
        q->bind(1, checked);
        q->bind(2, upto);
        while (q->executeStep())
            out.push_back({q->getColumn(0).getInt64(),
                           "field 'state': inserted as '" + text(*q, 1) +
                               "' without requests (insert rows as 'pending', the default)"});
    }
    if (!out.empty()) {
        const double now = unix_now();
        auto txn = impl_->write_txn();
        std::vector<Rejection> done;
        for (auto& r : out) {
            // Checked again under the write lock.
            auto q = impl_->prep(
                "UPDATE jobs SET state = 'rejected', error = ?, finished_at = ?, "
                "updated_at = ? WHERE id = ? AND state IN ('queued', 'running') "
                "AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.job_id = jobs.id)");
            q->bind(1, r.reason);
            q->bind(2, now);
            q->bind(3, now);
            q->bind(4, r.job_id);
            if (q->exec() > 0) done.push_back(std::move(r));
        }
        txn.commit();
        out = std::move(done);
    }
    checked = upto;
    return out;
}

}  // namespace imgbatch::jobs
