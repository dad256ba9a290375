#include "daemon/cli/enqueue_store.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <iterator>

namespace imgbatch::daemon::cli {

std::optional<Where> SeenKeys::add(const std::string& key, Where at) {
    if (!db_) open();
    if (!in_txn_) {
        db_->exec("BEGIN");
        in_txn_ = true;
    }
    insert_->reset();
    insert_->bind(1, key);
    insert_->bind(2, static_cast<std::int64_t>(at.file));
    insert_->bind(3, at.line);
    if (insert_->exec() > 0) return std::nullopt;
    find_->reset();
    find_->bind(1, key);
    find_->executeStep();
    return Where{static_cast<std::size_t>(find_->getColumn(0).getInt64()),
                 find_->getColumn(1).getInt()};
}

void SeenKeys::commit() {
    if (in_txn_) db_->exec("COMMIT");
    in_txn_ = false;
}

void SeenKeys::open() {
    // "": a private temporary database on disk, its pages cached up to 4 MiB.
    db_ = std::make_unique<SQLite::Database>(
        "", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX);
    db_->exec(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -4096;"
        "CREATE TABLE seen(key TEXT PRIMARY KEY, file INTEGER NOT NULL, "
        "line INTEGER NOT NULL) WITHOUT ROWID");
    insert_ = std::make_unique<SQLite::Statement>(
        *db_, "INSERT INTO seen(key, file, line) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
    find_ = std::make_unique<SQLite::Statement>(*db_, "SELECT file, line FROM seen WHERE key = ?");
}

void print_messages(std::vector<Message>& messages, std::vector<Message>* keep) {
    std::stable_sort(messages.begin(), messages.end(), [](const Message& a, const Message& b) {
        return a.at.file != b.at.file ? a.at.file < b.at.file : a.at.line < b.at.line;
    });
    if (keep) {
        std::move(messages.begin(), messages.end(), std::back_inserter(*keep));
        messages.clear();
        return;
    }
    std::string out;
    for (const auto& m : messages) (out += m.text) += '\n';
    std::cerr << out << std::flush;
    messages.clear();
}

ChunkStore::ChunkStore(Context& ctx, std::string batch, bool strict, bool dry_run,
                       bool keep_messages)
    : ctx_(ctx),
      batch_(std::move(batch)),
      strict_(strict),
      dry_run_(dry_run),
      keep_messages_(keep_messages),
      thread_([this] { run(); }) {}

ChunkStore::~ChunkStore() {
    {
        std::lock_guard l(m_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void ChunkStore::submit(Chunk&& c) {
    std::unique_lock l(m_);
    cv_.wait(l, [this] { return !next_ && !busy_; });
    if (error_) std::rethrow_exception(error_);
    next_ = std::move(c);
    l.unlock();
    cv_.notify_all();
}

void ChunkStore::wait(bool rethrow) {
    std::unique_lock l(m_);
    cv_.wait(l, [this] { return !next_ && !busy_; });
    if (error_ && rethrow) std::rethrow_exception(error_);
}

void ChunkStore::commit() {
    if (budget && !budget_written_ && !dry_run_ && !rolled_back_) {
        // No job stored (every line rejected or a duplicate): an existing batch still takes it.
        budget_change_ = ctx_.store().set_batch_budget(batch_, *budget, false);
        budget_written_ = true;
    }
    if (strict_txn_) strict_txn_->commit();
    strict_txn_.reset();
}

void ChunkStore::roll_back() {
    if (strict_txn_) {
        counts_.jobs = counts_.images = counts_.requests = 0;
        budget_change_.reset();  // undone with the jobs
    }
    strict_txn_.reset();
    rolled_back_ = true;
}

void ChunkStore::run() {
    for (;;) {
        Chunk c;
        {
            std::unique_lock l(m_);
            cv_.wait(l, [this] { return next_ || stop_; });
            if (!next_) return;
            c = std::move(*next_);
            next_.reset();
            busy_ = true;
        }
        std::exception_ptr error;
        try {
            process(c);
        } catch (...) {
            error = std::current_exception();
        }
        {
            std::lock_guard l(m_);
            busy_ = false;
            if (error && !error_) error_ = error;
        }
        cv_.notify_all();
    }
}

void ChunkStore::process(Chunk& c) {
    try {
        if (!c.items.empty()) {
            if (c.write)
                store(c);
            else
                check(c);
        }
        if (c.roll_back) roll_back();  // all or nothing
    } catch (...) {
        print_messages(c.messages, keep_messages_ ? &kept_ : nullptr);  // their errors stand
        throw;
    }
    print_messages(c.messages, keep_messages_ ? &kept_ : nullptr);
}

void ChunkStore::duplicate(Chunk& c, std::size_t item, std::int64_t existing_job) {
    ++counts_.duplicates;
    const Where at = c.where[item];
    const std::string reason = "key '" + c.items[item].spec.key + "' already enqueued as job " +
                               std::to_string(existing_job) + "; skipped";
    c.messages.push_back({at, c.names[at.file] + ":" + std::to_string(at.line) + ": " + reason,
                          reason, existing_job, c.items[item].spec.key});
}

void ChunkStore::count(const jobs::EnqueueItem& item) {
    if (on_count) on_count(item);
    ++counts_.jobs;
    counts_.images += static_cast<std::size_t>(item.spec.n);
    counts_.requests += item.plan.size();
}

void ChunkStore::store(Chunk& c) {
    auto& store = ctx_.store();
    if (!tuned_) {
        // A multi-row insert (and --strict's savepoint) keeps the pages it changes in a
        // statement journal, which SQLite spills to a temporary file past 64 KiB: keep it in
        // memory (it holds one chunk's pages at most).
        store.db().exec("PRAGMA temp_store = MEMORY");
        tuned_ = true;
    }
    if (strict_ && !strict_txn_)
        strict_txn_.emplace(store.db(), SQLite::TransactionBehavior::IMMEDIATE);
    if (budget && !budget_written_) {
        // Before the first job: a daemon never runs one of the batch without its budget.
        budget_change_ = store.set_batch_budget(batch_, *budget, true);
        budget_written_ = true;
    }
    auto result = store.enqueue(batch_, c.items);
    std::size_t d = 0;  // duplicates come in item order
    for (std::size_t i = 0; i < c.items.size(); ++i) {
        if (d < result.duplicates.size() && result.duplicates[d].item == i)
            duplicate(c, i, result.duplicates[d++].existing_job);
        else
            count(c.items[i]);
    }
}

// Without writing: keys already stored are duplicates; with --dry-run the rest is counted.
void ChunkStore::check(Chunk& c) {
    std::error_code ec;
    const bool has_db = std::filesystem::exists(ctx_.database(), ec);
    for (std::size_t i = 0; i < c.items.size(); ++i) {
        const auto& key = c.items[i].spec.key;
        if (has_db && !key.empty()) {
            if (auto job = ctx_.store().find_job_by_key(key)) {
                duplicate(c, i, *job);
                continue;
            }
        }
        if (dry_run_) count(c.items[i]);
    }
}

}  // namespace imgbatch::daemon::cli
