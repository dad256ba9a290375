// The store's connection: open, migrate, the statement cache, enqueue, provider state and the
// small scheduling queries.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <stdexcept>
#include <unordered_set>

#include "jobs/migrations.hpp"
#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

double unix_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

namespace {

int user_version(SQLite::Database& db) {
    return db.execAndGet("PRAGMA user_version").getInt();
}

void migrate(SQLite::Database& db, const std::string& path) {
    const auto& all = migrations();
    const int known = static_cast<int>(all.size());
    const int found = user_version(db);
    if (found > known)
        throw std::runtime_error(path + ": database schema version " + std::to_string(found) +
                                 " is newer than this imgbatch (" + std::to_string(known) + ")");
    for (int v = found; v < known; ++v) {
        SQLite::Transaction txn(db, SQLite::TransactionBehavior::IMMEDIATE);
        // Another process may have migrated while we waited for the write lock.
        if (user_version(db) > v) continue;
        db.exec(all[static_cast<std::size_t>(v)].sql);
        db.exec("PRAGMA user_version = " + std::to_string(v + 1));
        txn.commit();
    }
}

}  // namespace

void bind_text_or_null(SQLite::Statement& s, int index, const std::string& value) {
    if (value.empty())
        s.bind(index);
    else
        s.bind(index, value);
}

std::string text(SQLite::Statement& s, int index) {
    auto c = s.getColumn(index);
    return c.isNull() ? std::string() : c.getString();
}

void append_filter(std::string& sql, const JobFilter& filter) {
    if (filter.batch) sql += " AND j.batch_id = (SELECT id FROM batches WHERE name = ?)";
    if (filter.state) sql += " AND j.state = ?";
    if (!filter.ids.empty()) {
        sql += " AND j.id IN (";
        for (std::size_t i = 0; i < filter.ids.size(); ++i) sql += i ? ",?" : "?";
        sql += ")";
    }
}

void bind_filter(SQLite::Statement& s, int& index, const JobFilter& filter) {
    if (filter.batch) s.bind(index++, *filter.batch);
    if (filter.state) s.bind(index++, std::string(to_string(*filter.state)));
    for (auto id : filter.ids) s.bind(index++, id);
}

StoreDb::StoreDb(const std::string& p)
    // No connection mutex: a Store is used by one thread at a time.
    : path(p), db(p, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX) {}

Stmt StoreDb::prep(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end())
        it = cache_.emplace(sql, std::make_unique<SQLite::Statement>(db, sql)).first;
    return Stmt(*it->second);
}

std::optional<std::int64_t> StoreDb::find_batch(std::string_view name) {
    auto q = prep("SELECT id FROM batches WHERE name = ?");
    q->bind(1, std::string(name));
    if (!q->executeStep()) return std::nullopt;
    return q->getColumn(0).getInt64();
}

std::int64_t StoreDb::batch_id(std::string_view name) {
    {
        auto ins = prep("INSERT OR IGNORE INTO batches(name, created_at) VALUES (?, ?)");
        ins->bind(1, std::string(name));
        ins->bind(2, unix_now());
        ins->exec();
    }
    return *find_batch(name);
}

Store::Store(const std::string& path) {
    try {
        impl_ = std::make_unique<Impl>(path);
        auto& db = impl_->db;
        db.setBusyTimeout(10000);
        db.exec("PRAGMA journal_mode = WAL");
        // A committed image record must survive power loss: losing it means paying again.
        db.exec("PRAGMA synchronous = FULL");
        db.exec("PRAGMA foreign_keys = ON");
        // 32 MiB page cache (default 2 MiB): big enqueues and million-row queues stay in memory.
        db.exec("PRAGMA cache_size = -32768");
        migrate(db, path);
    } catch (const SQLite::Exception& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
}

Store::~Store() = default;

SQLite::Database& Store::db() {
    return impl_->db;
}

int Store::schema_version() {
    return user_version(impl_->db);
}

EnqueueResult Store::enqueue(std::string_view batch, const std::vector<EnqueueItem>& items) {
    if (batch.empty()) throw std::invalid_argument("enqueue: the batch name is empty");
    EnqueueResult result;
    result.batch = std::string(batch);
    const double now = unix_now();
    auto txn = impl_->write_txn();
    result.batch_id = impl_->batch_id(batch);

    auto find_key = impl_->prep("SELECT id FROM jobs WHERE key = ?");
    // A stored key is found by the insert itself (no separate lookup per item).
    auto ins_job = impl_->prep(
        "INSERT INTO jobs(batch_id, key, state, prompt, model, provider, n, params, metadata, "
        "priority, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(key) DO NOTHING");
    auto ins_req = impl_->prep(
        "INSERT INTO requests(job_id, seq, first_index, provider, n, priority) "
        "VALUES (?, ?, ?, ?, ?, ?)");
    std::unordered_set<std::string_view> seen;  // keys inserted by this call
    seen.reserve(items.size());
    result.job_ids.reserve(items.size());

    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto& item = items[i];
        const auto& spec = item.spec;
        if (!spec.key.empty() && !seen.insert(spec.key).second) {
            result.duplicates.push_back({i, 0});
            continue;
        }
        ins_job->reset();
        ins_job->bind(1, result.batch_id);
        bind_text_or_null(*ins_job, 2, spec.key);
        ins_job->bind(3, spec.prompt);
        ins_job->bind(4, spec.model);
        bind_text_or_null(*ins_job, 5, item.provider);
        ins_job->bind(6, spec.n);
        ins_job->bind(7, boost::json::serialize(spec.params));
        if (spec.metadata.empty())
            ins_job->bind(8);
        else
            ins_job->bind(8, boost::json::serialize(spec.metadata));
        ins_job->bind(9, spec.priority);
        ins_job->bind(10, now);
        ins_job->bind(11, now);
        if (ins_job->exec() == 0) {  // the key is already stored
            find_key->reset();
            find_key->bind(1, spec.key);
            find_key->executeStep();
            result.duplicates.push_back({i, find_key->getColumn(0).getInt64()});
            continue;
        }
        const auto job_id = impl_->db.getLastInsertRowid();
        result.job_ids.push_back(job_id);

        for (const auto& r : item.plan) {
            ins_req->reset();
            ins_req->bind(1, job_id);
            ins_req->bind(2, r.seq);
            ins_req->bind(3, r.first_index);
            ins_req->bind(4, item.provider);
            ins_req->bind(5, r.n);
            ins_req->bind(6, spec.priority);
            ins_req->exec();
        }
    }
    txn.commit();
    return result;
}

std::optional<double> Store::next_ready(std::string_view provider, double now) {
    auto q = impl_->prep(
        "SELECT MIN(not_before) FROM requests "
        "WHERE state = 'queued' AND provider = ? AND not_before > ?");
    q->bind(1, std::string(provider));
    q->bind(2, now);
    if (!q->executeStep() || q->getColumn(0).isNull()) return std::nullopt;
    return q->getColumn(0).getDouble();
}

bool Store::idle() {
    auto q = impl_->prep(
        "SELECT EXISTS(SELECT 1 FROM jobs WHERE state = 'pending') "
        "OR EXISTS(SELECT 1 FROM requests WHERE state = 'queued') "
        "OR EXISTS(SELECT 1 FROM requests WHERE state = 'running')");
    q->executeStep();
    return q->getColumn(0).getInt() == 0;
}

OpenWork Store::open_work() {
    OpenWork work;
    if (idle()) return work;
    auto pending = impl_->prep("SELECT count(*) FROM jobs WHERE state = 'pending'");
    if (pending->executeStep()) work.pending = pending->getColumn(0).getInt64();
    auto open = impl_->prep(
        "SELECT provider, count(*) FROM requests WHERE state IN ('queued', 'running') "
        "GROUP BY provider");
    while (open->executeStep())
        work.requests_by_provider[text(*open, 0)] = open->getColumn(1).getInt64();
    return work;
}

void Store::set_provider_paused(std::string_view provider, bool paused, std::string_view reason,
                                double probe_at) {
    const double now = unix_now();
    auto txn = impl_->write_txn();
    {
        auto q = impl_->prep(
            "INSERT INTO provider_state(name, paused, reason, paused_at, probe_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET "
            "paused = excluded.paused, reason = excluded.reason, "
            "paused_at = excluded.paused_at, probe_at = excluded.probe_at, "
            "updated_at = excluded.updated_at");
        q->bind(1, std::string(provider));
        q->bind(2, paused ? 1 : 0);
        if (paused) {
            bind_text_or_null(*q, 3, std::string(reason));
            q->bind(4, now);
            if (probe_at > 0)
                q->bind(5, probe_at);
            else
                q->bind(5);
        } else {
            q->bind(3);
            q->bind(4);
            q->bind(5);
        }
        q->bind(6, now);
        q->exec();
    }
    txn.commit();
}

std::vector<ProviderState> Store::provider_states() {
    std::vector<ProviderState> out;
    auto q = impl_->prep(
        "SELECT name, paused, reason, paused_at, probe_at FROM provider_state ORDER BY name");
    while (q->executeStep()) {
        ProviderState s;
        s.name = text(*q, 0);
        s.paused = q->getColumn(1).getInt() != 0;
        s.reason = text(*q, 2);
        s.paused_at = q->getColumn(3).getDouble();  // NULL reads as 0
        s.probe_at = q->getColumn(4).getDouble();
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace imgbatch::jobs
