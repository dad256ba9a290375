// `imgbatch enqueue FILE...`: reads job files as a stream, validates every line and stores the
// valid jobs chunk by chunk (10,000 lines a transaction; with --strict one transaction for the
// whole input, rolled back at the first rejected line). Memory does not grow with the input:
// a chunk, one line, and the keys seen so far in a temporary database.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>

#include "daemon/cli/commands.hpp"
#include "jobs/job_file.hpp"
#include "jobs/planner.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::daemon::cli {
namespace {

constexpr std::size_t kChunk = 10000;  // lines (jobs and messages) a transaction

struct EnqueueOptions {
    std::vector<std::string> files;
    std::string batch, model, provider, format;
    int n = 1, priority = 0;
    CLI::Option* n_opt = nullptr;
    CLI::Option* priority_opt = nullptr;
    bool strict = false, dry_run = false;
};

std::string default_batch_name(const std::string& first_file) {
    std::string stem = first_file == "-" ? "stdin" : std::filesystem::path(first_file).stem();
    if (stem.empty()) stem = "batch";
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
    return stem + "-" + buf;
}

std::string display_name(const std::string& file) {
    return file == "-" ? "<stdin>" : file;
}

struct Where {
    std::size_t file = 0;  // index into the files read
    int line = 0;
};

// Keys seen in this input and where, in a private temporary database (on disk, removed when
// closed): a repeated key is found without holding every key in memory.
class SeenKeys {
  public:
    // Records key at `at`; if it was seen before, returns where first.
    std::optional<Where> add(const std::string& key, Where at) {
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
    void commit() {
        if (in_txn_) db_->exec("COMMIT");
        in_txn_ = false;
    }

  private:
    void open() {
        db_ = std::make_unique<SQLite::Database>("", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db_->exec(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -4096;"
            "CREATE TABLE seen(key TEXT PRIMARY KEY, file INTEGER NOT NULL, "
            "line INTEGER NOT NULL) WITHOUT ROWID");
        insert_ = std::make_unique<SQLite::Statement>(
            *db_, "INSERT INTO seen(key, file, line) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
        find_ =
            std::make_unique<SQLite::Statement>(*db_, "SELECT file, line FROM seen WHERE key = ?");
    }

    std::unique_ptr<SQLite::Database> db_;
    std::unique_ptr<SQLite::Statement> insert_, find_;
    bool in_txn_ = false;
};

struct ReadError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads, checks and stores the input; receives the readers' jobs and errors.
class Enqueuer final : public jobs::JobSink {
  public:
    Enqueuer(const EnqueueOptions& o, Context& ctx, std::string batch)
        : o_(o),
          ctx_(ctx),
          cfg_(ctx.config()),
          providers_(cfg_.provider_infos()),
          batch_(std::move(batch)) {
        defaults_.model = o.model;
        defaults_.provider = o.provider;
        if (o.n_opt->count()) defaults_.n = o.n;
        if (o.priority_opt->count()) defaults_.priority = o.priority;
        if (!o.format.empty()) forced_ = jobs::format_from_name("x." + o.format);
    }

    void read(const std::string& file);
    // Stores the last chunk and ends the --strict transaction.
    void finish();
    // After an error: keeps what was committed (drops the --strict transaction) and prints
    // the messages so far.
    void abandon();
    void print_summary() const;
    int exit_code() const { return rejected_ > 0 ? 1 : 0; }

    void job(jobs::JobSpec&& spec) override;
    void error(jobs::LineError&& e) override { reject(e.line, std::move(e.reason)); }

  private:
    struct Message {
        Where at;
        std::string text;
    };
    // Nothing is written with --dry-run, nor with --strict once a line was rejected.
    bool writing() const { return !o_.dry_run && !(o_.strict && rejected_ > 0); }
    void note(Where at, const std::string& text) {
        const std::string& name = names_[at.file];
        messages_.push_back({at, at.line > 0 ? name + ":" + std::to_string(at.line) + ": " + text
                                             : name + ": " + text});
    }
    void reject(int line, const std::string& reason) {
        ++rejected_;
        note({file_, line}, reason);
        if (items_.size() + messages_.size() >= kChunk) flush();
    }
    void duplicate(std::size_t item, std::int64_t existing_job) {
        ++duplicates_;
        note(where_[item], "key '" + items_[item].spec.key + "' already enqueued as job " +
                               std::to_string(existing_job) + "; skipped");
    }
    void flush();
    void store_chunk();
    void check_chunk();
    void print_messages();
    std::size_t read_some(int fd, char* buf, std::size_t size);

    const EnqueueOptions& o_;
    Context& ctx_;
    const Config& cfg_;
    std::vector<jobs::ProviderInfo> providers_;
    jobs::JobDefaults defaults_;
    std::optional<jobs::FileFormat> forced_;
    std::string batch_;
    std::vector<std::string> names_;  // files read, by index
    std::size_t file_ = 0;
    // The chunk: valid jobs not stored yet, and messages not printed yet.
    std::vector<jobs::EnqueueItem> items_;
    std::vector<Where> where_;
    std::vector<Message> messages_;
    SeenKeys seen_;
    std::optional<SQLite::Transaction> strict_txn_;
    std::size_t jobs_ = 0, images_ = 0, requests_ = 0, rejected_ = 0, duplicates_ = 0;
};

void Enqueuer::job(jobs::JobSpec&& spec) {
    const int line = spec.line;
    auto v = jobs::validate_job(spec, cfg_.catalog, providers_);
    if (!v.ok) return reject(line, v.error);
    if (!spec.key.empty()) {
        if (auto first = seen_.add(spec.key, {file_, line})) {
            const std::string at = names_[first->file] == names_[file_]
                                       ? "line " + std::to_string(first->line)
                                       : names_[first->file] + ":" + std::to_string(first->line);
            return reject(line, "key '" + spec.key + "' repeats " + at);
        }
    }
    auto plan = jobs::plan_requests(spec.n, v.ok->per_request);
    where_.push_back({file_, line});
    items_.push_back({std::move(spec), v.ok->provider, std::move(plan)});
    if (items_.size() + messages_.size() >= kChunk) flush();
}

void Enqueuer::flush() {
    if (!items_.empty()) {
        if (writing())
            store_chunk();
        else
            check_chunk();
    }
    if (o_.strict && rejected_ > 0 && strict_txn_) {
        strict_txn_.reset();  // rolled back: all or nothing
        jobs_ = images_ = requests_ = 0;
    }
    seen_.commit();
    items_.clear();
    where_.clear();
    print_messages();
}

void Enqueuer::store_chunk() {
    auto& store = ctx_.store();
    if (o_.strict && !strict_txn_)
        strict_txn_.emplace(store.db(), SQLite::TransactionBehavior::IMMEDIATE);
    auto result = store.enqueue(batch_, items_);
    std::size_t d = 0;  // duplicates come in item order
    for (std::size_t i = 0; i < items_.size(); ++i) {
        if (d < result.duplicates.size() && result.duplicates[d].item == i) {
            duplicate(i, result.duplicates[d++].existing_job);
            continue;
        }
        ++jobs_;
        images_ += static_cast<std::size_t>(items_[i].spec.n);
        requests_ += items_[i].plan.size();
    }
}

// Without writing: keys already stored are duplicates; with --dry-run the rest is counted.
void Enqueuer::check_chunk() {
    std::error_code ec;
    const bool has_db = std::filesystem::exists(ctx_.database(), ec);
    for (std::size_t i = 0; i < items_.size(); ++i) {
        const auto& spec = items_[i].spec;
        if (has_db && !spec.key.empty()) {
            if (auto job = ctx_.store().find_job_by_key(spec.key)) {
                duplicate(i, *job);
                continue;
            }
        }
        if (!o_.dry_run) continue;
        ++jobs_;
        images_ += static_cast<std::size_t>(spec.n);
        requests_ += items_[i].plan.size();
    }
}

// The chunk's messages in file and line order, on stderr.
void Enqueuer::print_messages() {
    std::stable_sort(messages_.begin(), messages_.end(), [](const Message& a, const Message& b) {
        return a.at.file != b.at.file ? a.at.file < b.at.file : a.at.line < b.at.line;
    });
    std::string out;
    for (const auto& m : messages_) (out += m.text) += '\n';
    std::cerr << out << std::flush;
    messages_.clear();
}

// read(2) of the input. When nothing is there to read yet (a pipe fed slowly), what was read
// is stored first: a job does not wait for the next line to be written.
std::size_t Enqueuer::read_some(int fd, char* buf, std::size_t size) {
    if (!items_.empty() || !messages_.empty()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) == 0) flush();
    }
    for (;;) {
        const ssize_t n = ::read(fd, buf, size);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) throw ReadError(std::strerror(errno));
    }
}

void Enqueuer::read(const std::string& file) {
    names_.push_back(display_name(file));
    file_ = names_.size() - 1;
    std::optional<jobs::FileFormat> format = forced_;
    if (!format) format = file == "-" ? jobs::FileFormat::jsonl : jobs::format_from_name(file);
    if (!format) return reject(0, "unknown file type (use .jsonl, .csv or .txt, or --format)");
    const int fd = file == "-" ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return reject(0, std::string("cannot read: ") + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() {
            if (fd != STDIN_FILENO) ::close(fd);
        }
    } closer{fd};
    jobs::ReadFn read = [this, fd](char* buf, std::size_t size) {
        return read_some(fd, buf, size);
    };
    try {
        jobs::read_job_file(read, names_[file_], *format, defaults_, *this);
    } catch (const ReadError& e) {
        reject(0, std::string("cannot read: ") + e.what());
    }
}

void Enqueuer::finish() {
    flush();
    if (o_.strict && rejected_ > 0)
        std::cerr << "imgbatch: nothing enqueued: " << rejected_ << " rejected with --strict\n";
    if (strict_txn_) {
        strict_txn_->commit();
        strict_txn_.reset();
    }
}

void Enqueuer::abandon() {
    if (strict_txn_) {
        strict_txn_.reset();
        jobs_ = images_ = requests_ = 0;
    }
    print_messages();
}

void Enqueuer::print_summary() const {
    std::cout << "batch " << batch_ << ": " << jobs_
              << (o_.dry_run ? " jobs would be enqueued (" : " jobs enqueued (") << images_
              << " images in " << requests_ << " requests), " << rejected_ << " rejected, "
              << duplicates_ << " duplicates" << (o_.dry_run ? " (dry run)" : "") << '\n';
    if (!o_.dry_run && jobs_ > 0)
        spdlog::debug("enqueued batch={} jobs={} images={} requests={}", batch_, jobs_, images_,
                      requests_);
}

int run_enqueue(const EnqueueOptions& o, Context& ctx) {
    const std::string batch = o.batch.empty() ? default_batch_name(o.files.front()) : o.batch;
    Enqueuer e(o, ctx, batch);
    try {
        for (const auto& file : o.files) e.read(file);
        e.finish();
    } catch (const UsageError&) {
        throw;
    } catch (const std::exception& ex) {
        // Chunks already committed stay (keys make enqueueing the file again safe).
        e.abandon();
        e.print_summary();
        throw OperationError(
            std::string("enqueue stopped: ") + ex.what() +
            (o.strict || o.dry_run ? "; nothing enqueued" : "; the jobs counted above are stored"));
    }
    e.print_summary();
    return e.exit_code();
}

}  // namespace

void add_enqueue(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<EnqueueOptions>();
    auto* cmd = app.add_subcommand("enqueue", "validate job files and add their jobs");
    cmd->add_option("files", o->files, "job files (.jsonl, .csv, .txt); '-' reads stdin")
        ->required();
    cmd->add_option("--batch", o->batch, "batch name (default: FILE-STEM-YYYYmmdd-HHMMSS)");
    cmd->add_option("--model", o->model, "model for lines that name none");
    cmd->add_option("--provider", o->provider, "provider for lines that name none");
    o->n_opt = cmd->add_option("--n", o->n, "images per job for lines that say none")
                   ->check(CLI::Range(1, 1000000));
    o->priority_opt =
        cmd->add_option("--priority", o->priority, "priority for lines that say none");
    cmd->add_flag("--strict", o->strict, "enqueue nothing if any line is rejected");
    cmd->add_flag("--dry-run", o->dry_run, "validate and report only");
    cmd->add_option("--format", o->format, "input format (default: from the file extension)")
        ->check(CLI::IsMember({"jsonl", "csv", "txt"}));
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_enqueue(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
