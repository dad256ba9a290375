#pragma once
// Private to the store's .cpp files: the connection, the statement cache and shared helpers.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "jobs/store.hpp"

namespace imgbatch::jobs {

// A cached prepared statement in use: reset and unbound when taken, reset again when released
// so that no half-read statement keeps an old read snapshot open.
class Stmt {
  public:
    explicit Stmt(SQLite::Statement& s) : s_(s) {
        s_.tryReset();
        s_.clearBindings();
    }
    ~Stmt() { s_.tryReset(); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    SQLite::Statement* operator->() { return &s_; }
    SQLite::Statement& operator*() { return s_; }

  private:
    SQLite::Statement& s_;
};

// The connection and its statements. Store::Impl is this; the name is public so that helper
// functions in the store's .cpp files can take it.
struct StoreDb {
    explicit StoreDb(const std::string& p);

    std::string path;
    SQLite::Database db;

    // Prepares sql on first use and reuses it afterwards.
    Stmt prep(const std::string& sql);

    // Every write runs in one of these (BEGIN IMMEDIATE: the write lock is taken up front, so
    // a busy database waits in busy_timeout instead of failing at the first write).
    SQLite::Transaction write_txn() {
        return SQLite::Transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    }

    std::int64_t batch_id(std::string_view name);  // creates the batch if new
    std::optional<std::int64_t> find_batch(std::string_view name);

    // Gives back attempts leased to owner, as if never claimed (no attempt used; a request of a
    // job cancelled meanwhile is cancelled), inside the caller's write transaction. Returns
    // the requests given back.
    int unclaim_rows(std::string_view owner, const std::vector<LeasedAttempt>& attempts,
                     double now);
    // Takes lines out of vendor batch id (unmapped, given back as unclaim_rows does, the
    // batch's request count lowered), inside the caller's write transaction.
    int unmap_vendor_batch_lines(std::int64_t id, const std::vector<LeasedAttempt>& lines,
                                 double now);

    // Recomputes a job's state from its requests after one of them changed: running while a
    // request runs, queued while one waits, else the final state (a cancelled job stays so).
    // A completion passes the images it recorded (added to jobs.images_done, with updated_at,
    // in the same UPDATE: one write of the job row per completion) and the job's state it
    // has just read.
    void settle_job(std::int64_t job_id, double now, std::optional<int> images_added = {},
                    const std::string* known_state = nullptr);

  private:
    std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> cache_;
};

struct Store::Impl : StoreDb {
    using StoreDb::StoreDb;
    std::int64_t unplanned_checked = 0;  // jobs up to this id were seen by reject_unplanned
};

// Binds text, or NULL when empty.
void bind_text_or_null(SQLite::Statement& s, int index, const std::string& value);
// Reads a text column, "" when NULL.
std::string text(SQLite::Statement& s, int index);
// Reads a REAL column, nullopt when NULL.
std::optional<double> optional_double(SQLite::Statement& s, int index);
// A claimed request's job fields: prompt, model, params, key, batch name, created_at.
void fill_job(StoreDb& impl, ClaimedRequest& r);
// Appends " AND ..." conditions for filter (on table alias j) to sql; binds later with
// bind_filter in the same order, starting at *index.
void append_filter(std::string& sql, const JobFilter& filter);
void bind_filter(SQLite::Statement& s, int& index, const JobFilter& filter);
// A request retried on another provider (a vendor-batch line retried as a direct call): the
// request and its job now belong to that provider (store_batches.cpp).
void move_to_provider(StoreDb& impl, std::int64_t request_id, std::int64_t job_id,
                      const std::string& provider);

}  // namespace imgbatch::jobs
