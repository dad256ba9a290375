// The store's connection: open, migrate, the statement cache, enqueue, provider state and the
// small scheduling queries.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdint>
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

std::optional<double> optional_double(SQLite::Statement& s, int index) {
    auto c = s.getColumn(index);
    if (c.isNull()) return std::nullopt;
    return c.getDouble();
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

namespace {

// A new database file is created here with mode 0666 less the umask, as programs create files,
// before SQLite would create it with 0644 less the umask: under umask 0007 (the unit's UMask=,
// README "Sharing the database with other users") it is group-writable, and so are the -wal
// and -shm files, which SQLite creates with the database's mode.
void create_database_file(const std::string& path) {
    if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) return;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) ::close(fd);  // else it exists, or SQLite reports why it cannot be opened
}

}  // namespace

Store::Store(const std::string& path) {
    try {
        create_database_file(path);
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

namespace {

// A chunk is written with multi-row INSERTs of 100, 10 and 1 rows (three statement shapes,
// each prepared once): a statement per row costs more than the row itself.
constexpr std::size_t kGroupSizes[] = {100, 10, 1};

std::size_t group_size(std::size_t remaining) {
    for (std::size_t g : kGroupSizes)
        if (g <= remaining) return g;
    return 1;
}

constexpr std::string_view kJobsHead =
    "INSERT INTO jobs(id, batch_id, key, state, prompt, model, provider, n, params, metadata, "
    "priority, created_at, updated_at) VALUES ";
constexpr std::string_view kJobsRow = "(?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// A key already stored is found by the insert itself: that row is not inserted nor returned.
constexpr std::string_view kJobsTail = " ON CONFLICT(key) DO NOTHING RETURNING id";
constexpr std::string_view kRequestsHead =
    "INSERT INTO requests(job_id, seq, first_index, provider, n, priority) VALUES ";
constexpr std::string_view kRequestsRow = "(?, ?, ?, ?, ?, ?)";

std::string build_insert(std::string_view head, std::string_view row, std::size_t rows,
                         std::string_view tail) {
    std::string sql(head);
    for (std::size_t i = 0; i < rows; ++i) (sql += i ? ", " : "") += row;
    return sql += tail;
}

// The INSERT of `rows` (100, 10 or 1) jobs or requests, built once.
const std::string& multi_insert(bool jobs, std::size_t rows) {
    static const std::array<std::string, 3> jobs_sql{
        build_insert(kJobsHead, kJobsRow, kGroupSizes[0], kJobsTail),
        build_insert(kJobsHead, kJobsRow, kGroupSizes[1], kJobsTail),
        build_insert(kJobsHead, kJobsRow, kGroupSizes[2], kJobsTail)};
    static const std::array<std::string, 3> requests_sql{
        build_insert(kRequestsHead, kRequestsRow, kGroupSizes[0], ""),
        build_insert(kRequestsHead, kRequestsRow, kGroupSizes[1], ""),
        build_insert(kRequestsHead, kRequestsRow, kGroupSizes[2], "")};
    const std::size_t shape = rows == kGroupSizes[0] ? 0 : rows == kGroupSizes[1] ? 1 : 2;
    return jobs ? jobs_sql[shape] : requests_sql[shape];
}

std::optional<std::int64_t> job_by_key(StoreDb& impl, std::string_view key) {
    auto q = impl.prep("SELECT id FROM jobs WHERE key = ?");
    q->bind(1, std::string(key));
    if (!q->executeStep()) return std::nullopt;
    return q->getColumn(0).getInt64();
}

struct RequestRow {
    std::int64_t job_id = 0;
    const EnqueueItem* item = nullptr;
    const PlannedRequest* request = nullptr;
};

// Inserts items (see Store::enqueue) in the open transaction.
EnqueueResult insert_items(StoreDb& impl, std::string_view batch,
                           const std::vector<EnqueueItem>& items) {
    EnqueueResult result;
    result.batch = std::string(batch);
    const double now = unix_now();
    result.batch_id = impl.batch_id(batch);

    // Items to insert: a key repeated within the call is a duplicate of its first item.
    std::vector<std::size_t> fresh;
    fresh.reserve(items.size());
    {
        std::unordered_set<std::string_view> seen;
        seen.reserve(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            const auto& key = items[i].spec.key;
            if (!key.empty() && !seen.insert(key).second)
                result.duplicates.push_back({i, 0});
            else
                fresh.push_back(i);
        }
    }
    // The write lock is held: the ids after the largest are ours to give, in item order.
    std::int64_t first_id = 1;
    {
        auto q = impl.prep("SELECT max(id) FROM jobs");
        if (q->executeStep() && !q->getColumn(0).isNull()) {
            const auto max = q->getColumn(0).getInt64();
            if (max > INT64_MAX - static_cast<std::int64_t>(fresh.size()) - 1)
                throw std::runtime_error("enqueue: jobs.id is at its largest value (" +
                                         std::to_string(max) + ")");
            first_id = max + 1;
        }
    }
    std::vector<char> inserted(fresh.size(), 0);
    for (std::size_t k = 0; k < fresh.size();) {
        const std::size_t g = group_size(fresh.size() - k);
        auto q = impl.prep(multi_insert(true, g));
        int p = 1;
        for (std::size_t j = k; j < k + g; ++j) {
            const auto& item = items[fresh[j]];
            const auto& spec = item.spec;
            q->bind(p++, first_id + static_cast<std::int64_t>(j));
            q->bind(p++, result.batch_id);
            bind_text_or_null(*q, p++, spec.key);
            q->bind(p++, spec.prompt);
            q->bind(p++, spec.model);
            bind_text_or_null(*q, p++, item.provider);
            q->bind(p++, spec.n);
            q->bind(p++, boost::json::serialize(spec.params));
            if (spec.metadata.empty())
                q->bind(p++);
            else
                q->bind(p++, boost::json::serialize(spec.metadata));
            q->bind(p++, spec.priority);
            q->bind(p++, now);
            q->bind(p++, now);
        }
        while (q->executeStep()) {  // the rows inserted: the others' keys are stored already
            const auto at = q->getColumn(0).getInt64() - first_id;
            if (at < 0 || at >= static_cast<std::int64_t>(fresh.size()))
                throw std::logic_error("enqueue: an inserted job has an id it was not given");
            inserted[static_cast<std::size_t>(at)] = 1;
        }
        k += g;
    }

    std::vector<RequestRow> requests;
    result.job_ids.reserve(fresh.size());
    for (std::size_t k = 0; k < fresh.size(); ++k) {
        const auto& item = items[fresh[k]];
        if (!inserted[k]) {
            result.duplicates.push_back({fresh[k], job_by_key(impl, item.spec.key).value_or(0)});
            continue;
        }
        const auto job_id = first_id + static_cast<std::int64_t>(k);
        result.job_ids.push_back(job_id);
        for (const auto& r : item.plan) requests.push_back({job_id, &item, &r});
    }
    std::sort(result.duplicates.begin(), result.duplicates.end(),
              [](const Duplicate& a, const Duplicate& b) { return a.item < b.item; });

    for (std::size_t k = 0; k < requests.size();) {
        const std::size_t g = group_size(requests.size() - k);
        auto q = impl.prep(multi_insert(false, g));
        int p = 1;
        for (std::size_t j = k; j < k + g; ++j) {
            const auto& r = requests[j];
            q->bind(p++, r.job_id);
            q->bind(p++, r.request->seq);
            q->bind(p++, r.request->first_index);
            q->bind(p++, r.item->provider);
            q->bind(p++, r.request->n);
            q->bind(p++, r.item->spec.priority);
        }
        q->exec();
        k += g;
    }
    return result;
}

}  // namespace

EnqueueResult Store::enqueue(std::string_view batch, const std::vector<EnqueueItem>& items) {
    if (batch.empty()) throw std::invalid_argument("enqueue: the batch name is empty");
    auto& db = impl_->db;
    // Our own transaction, or a savepoint inside the caller's.
    const bool nested = sqlite3_get_autocommit(db.getHandle()) == 0;
    std::optional<SQLite::Transaction> txn;
    if (nested)
        db.exec("SAVEPOINT enqueue");
    else
        txn.emplace(db, SQLite::TransactionBehavior::IMMEDIATE);
    EnqueueResult result;
    try {
        result = insert_items(*impl_, batch, items);
    } catch (...) {
        if (nested) {
            try {
                db.exec("ROLLBACK TO enqueue");
                db.exec("RELEASE enqueue");
            } catch (...) {  // the transaction is gone already: nothing to undo
            }
        }
        throw;
    }
    if (nested)
        db.exec("RELEASE enqueue");
    else
        txn->commit();
    return result;
}

std::optional<std::int64_t> Store::find_job_by_key(std::string_view key) {
    return job_by_key(*impl_, key);
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
                                double probe_at, bool by_daemon) {
    const double now = unix_now();
    auto txn = impl_->write_txn();
    {
        // The daemon never changes a pause made by the user (paused with no probe time):
        // only `imgbatch resume` ends it.
        std::string sql =
            "INSERT INTO provider_state(name, paused, reason, paused_at, probe_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET "
            "paused = excluded.paused, reason = excluded.reason, "
            "paused_at = excluded.paused_at, probe_at = excluded.probe_at, "
            "updated_at = excluded.updated_at";
        if (by_daemon)
            sql += " WHERE NOT (provider_state.paused = 1 AND provider_state.probe_at IS NULL)";
        auto q = impl_->prep(sql);
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
