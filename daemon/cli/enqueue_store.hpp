#pragma once
// Storing what `imgbatch enqueue` reads: chunks of checked lines, stored on a thread of their
// own while the next chunk is read, and the keys seen so far, kept in a temporary database.
// Neither grows with the input.
#include <SQLiteCpp/SQLiteCpp.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/cli/context.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

struct Where {
    std::size_t file = 0;  // index into the files read
    int line = 0;
};

// Keys seen in this input and where, in a private temporary database (on disk, removed when
// closed): a repeated key is found without holding every key in memory.
class SeenKeys {
  public:
    // Records key at `at`; if it was seen before, returns where first.
    std::optional<Where> add(const std::string& key, Where at);
    // Ends the transaction that batches the inserts (at each chunk).
    void commit();

  private:
    void open();

    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<SQLite::Statement> insert_, find_;
    bool in_txn_ = false;
};

struct Message {
    Where at;
    std::string text;      // "FILE:LINE: reason"
    std::string reason;    // the reason alone
    std::int64_t job = 0;  // a duplicate key: the job that holds it
    std::string key;       // and the key
    bool warning = false;  // a warning (the line was accepted), not a rejection
};

// The messages in file and line order, on stderr, or (keep: enqueue --json) moved to the end
// of *keep; clears them.
void print_messages(std::vector<Message>& messages, std::vector<Message>* keep = nullptr);

// Lines read and checked, to be stored together.
struct Chunk {
    std::vector<jobs::EnqueueItem> items;
    std::vector<Where> where;  // per item
    std::vector<Message> messages;
    std::vector<std::string> names;  // the files' display names, which Where.file indexes
    bool write = true;               // store the items (else only look their keys up)
    bool roll_back = false;          // --strict and a line was rejected: undo what was stored
};

struct Counts {
    std::size_t jobs = 0, images = 0, requests = 0, duplicates = 0;
};

// Stores chunks on a thread of its own while the next one is read and validated (each takes
// about half the time). One chunk at a time, in order; a chunk's messages (with its keys
// already stored) are printed once it is stored. Only this thread uses the database until
// wait() returns.
class ChunkStore {
  public:
    // strict: one transaction for everything; dry_run: nothing is written.
    // keep_messages: the messages are kept (messages()) instead of printed.
    ChunkStore(Context& ctx, std::string batch, bool strict, bool dry_run,
               bool keep_messages = false);
    ~ChunkStore();
    ChunkStore(const ChunkStore&) = delete;
    ChunkStore& operator=(const ChunkStore&) = delete;

    // Waits for the chunk before, then hands this one over. Throws what storing failed with.
    void submit(Chunk&& c);
    // Waits until every chunk is stored; throws what storing failed with, if rethrow.
    void wait(bool rethrow = true);
    // After wait(): ends the --strict transaction.
    void commit();
    void roll_back();
    // After wait(): what was stored (or, with dry_run, would be).
    const Counts& counts() const { return counts_; }
    // After wait(), with keep_messages: every message so far, in order.
    std::vector<Message>& messages() { return kept_; }
    // Called (on the store's thread) with each item counted: stored, or with dry_run would be.
    std::function<void(const jobs::EnqueueItem&)> on_count;
    // enqueue --budget: the batch's own budget to set (unset inside: clear it), written before
    // its first job (in the --strict transaction), or at commit() into an existing batch when
    // no job was stored. Set before the first submit().
    std::optional<std::optional<double>> budget;
    // After commit(): what setting the budget changed (unset: not set, e.g. nothing stored
    // into a batch that does not exist, or --strict rolled back, or dry_run).
    const std::optional<jobs::BatchBudgetChange>& budget_change() const { return budget_change_; }

  private:
    void run();
    void process(Chunk& c);
    void store(Chunk& c);
    void check(Chunk& c);
    void duplicate(Chunk& c, std::size_t item, std::int64_t existing_job);
    void count(const jobs::EnqueueItem& item);

    Context& ctx_;
    const std::string batch_;
    const bool strict_, dry_run_, keep_messages_;
    std::vector<Message> kept_;
    std::optional<SQLite::Transaction> strict_txn_;
    bool tuned_ = false;
    bool budget_written_ = false, rolled_back_ = false;
    std::optional<jobs::BatchBudgetChange> budget_change_;
    Counts counts_;
    std::mutex m_;
    std::condition_variable cv_;
    std::optional<Chunk> next_;
    bool busy_ = false, stop_ = false;
    std::exception_ptr error_;
    std::thread thread_;  // last: starts once the rest is there
};

}  // namespace imgbatch::daemon::cli
