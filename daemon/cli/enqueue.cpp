// `imgbatch enqueue FILE...`: reads job files as a stream, validates every line and stores the
// valid jobs chunk by chunk (10,000 lines a transaction; with --strict one transaction for the
// whole input, rolled back at the first rejected line). A chunk is stored on another thread
// while the next is read (enqueue_store.hpp). Memory does not grow with the input: two chunks,
// one line, and the keys seen so far in a temporary database.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <sqlite3.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <utility>

#include "daemon/cli/commands.hpp"
#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/enqueue_store.hpp"
#include "daemon/cli/estimate.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/cost.hpp"
#include "daemon/json_text.hpp"
#include "daemon/logfmt.hpp"
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
    bool strict = false, dry_run = false, json = false;
    bool estimate = false;  // --estimate: --dry-run with the database's queue beside the file
    std::string budget;     // --budget USD|none
    CLI::Option* budget_opt = nullptr;
};

// --budget's value: USD >= 0, or "none" to clear the batch's own budget (unset). Throws
// UsageError naming the option.
std::optional<double> parse_budget(const std::string& text) {
    if (text == "none") return std::nullopt;
    double v = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) || v < 0)
        throw UsageError(
            "--budget: must be a number of USD >= 0 (0 stops the batch's calls), "
            "or 'none' to clear the batch's budget; got '" +
            text + "'");
    return v;
}

std::string budget_or_none(std::optional<double> usd) {
    return usd ? format_usd(*usd) : std::string("none");
}

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

struct ReadError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads and checks the input, and hands it to the ChunkStore chunk by chunk; receives the
// readers' jobs and errors.
class Enqueuer final : public jobs::JobSink {
  public:
    Enqueuer(const EnqueueOptions& o, Context& ctx, const std::string& batch)
        : o_(o),
          cfg_(ctx.config()),
          providers_(cfg_.provider_infos()),
          batch_(batch),
          store_(ctx, batch, o.strict, o.dry_run, o.json) {
        defaults_.model = o.model;
        defaults_.provider = o.provider;
        if (o.n_opt->count()) defaults_.n = o.n;
        if (o.priority_opt->count()) defaults_.priority = o.priority;
        if (!o.format.empty()) forced_ = jobs::format_from_name("x." + o.format);
        if (o.budget_opt->count()) store_.budget = parse_budget(o.budget);
        if (o.dry_run) {
            estimate_.emplace(cfg_);
            store_.on_count = [this](const jobs::EnqueueItem& item) { estimate_->add(item); };
        }
    }

    void read(const std::string& file);
    // Stores the last chunk and ends the --strict transaction.
    void finish();
    // After an error: keeps what was committed (drops the --strict transaction) and prints
    // the messages so far.
    void abandon();
    void print_summary();  // the summary line, or with --json the JSON object
    void print_json_summary();
    void print_budget();  // what --budget changed
    int exit_code() const { return rejected_ > 0 ? 1 : 0; }
    // --estimate: what the database already has queued or running, beside the file's cost.
    void read_queued(Context& ctx);
    // --dry-run: the batch budget that would apply, and what the batch spent and has queued.
    void read_budget(Context& ctx);

    void job(jobs::JobSpec&& spec) override;
    void error(jobs::LineError&& e) override { reject(e.line, std::move(e.reason)); }

  private:
    void note(Where at, const std::string& text, bool warning = false) {
        const std::string& name = names_[at.file];
        chunk_.messages.push_back(
            {at,
             at.line > 0 ? name + ":" + std::to_string(at.line) + ": " + text : name + ": " + text,
             warning ? text.substr(std::string_view("warning: ").size()) : text, 0, "", warning});
    }
    void reject(int line, const std::string& reason) {
        ++rejected_;
        note({file_, line}, reason);
        if (chunk_lines() >= kChunk) flush();
    }
    // A model's lifecycle warning: in full on the first line that earns it, then counted.
    void warn(int line, const std::string& text) {
        if (warned_.insert(text).second) {
            note({file_, line}, "warning: " + text, true);
            ++chunk_warnings_;
        } else {
            ++more_warnings_;
        }
    }
    // Lines in the chunk: jobs and rejected lines (a warning goes with a job's line).
    std::size_t chunk_lines() const {
        return chunk_.items.size() + chunk_.messages.size() - chunk_warnings_;
    }
    bool pending() const { return !chunk_.items.empty() || !chunk_.messages.empty(); }
    void flush();
    std::size_t read_some(int fd, char* buf, std::size_t size);

    const EnqueueOptions& o_;
    const Config& cfg_;
    std::vector<jobs::ProviderInfo> providers_;
    jobs::JobDefaults defaults_;
    std::optional<jobs::FileFormat> forced_;
    std::string batch_;
    std::vector<std::string> names_;  // files read, by index
    std::size_t file_ = 0;
    Chunk chunk_;  // being read
    SeenKeys seen_;
    std::size_t rejected_ = 0;
    const std::string today_ = jobs::today_utc();
    std::set<std::string> warned_;            // lifecycle warnings given
    std::size_t more_warnings_ = 0;           // lines that repeated one of them
    std::size_t chunk_warnings_ = 0;          // warnings among chunk_.messages
    std::optional<Estimate> estimate_;        // with --dry-run
    std::optional<jobs::QueuedCost> queued_;  // with --estimate
    ChunkStore store_;
};

void Enqueuer::read_queued(Context& ctx) {
    std::error_code ec;
    if (!std::filesystem::exists(ctx.database(), ec)) {
        queued_ = jobs::QueuedCost{};
        return;
    }
    queued_ = ctx.existing_store().queued_cost({}, queued_pricer(cfg_), true);
}

void Enqueuer::read_budget(Context& ctx) {
    std::error_code ec;
    const bool has_db = std::filesystem::exists(ctx.database(), ec);
    BatchBudgetFit fit;
    std::optional<double> limit;
    if (o_.budget_opt->count()) {
        limit = parse_budget(o_.budget);
        fit.source = "--budget";
    } else if (has_db) {
        limit = ctx.existing_store().batch_budget(batch_);
        fit.source = "the batch's own";
    }
    if (!limit && cfg_.budget.max_usd_per_batch) {
        limit = cfg_.budget.max_usd_per_batch;
        fit.source = "budget.max_usd_per_batch";
    }
    if (!limit) return;
    fit.limit_usd = *limit;
    if (has_db) {
        auto& st = ctx.existing_store();
        fit.spent_usd = st.spend(batch_filter(batch_)).usd;
        const auto q = st.queued_cost(batch_filter(batch_), queued_pricer(cfg_), true);
        fit.queued_worst_usd = q.worst_usd;
        fit.queued_unpriced = q.unpriced;
    }
    estimate_->set_budget(fit);
}

void Enqueuer::print_budget() {
    if (!store_.budget || o_.dry_run) return;
    const auto& change = store_.budget_change();
    const std::optional<double> now = *store_.budget;
    std::string out = "batch " + batch_ + ": ";
    if (!change) {
        out += "budget not set (no job was stored";
        out += o_.strict && rejected_ > 0 ? ")" : " and the batch does not exist)";
    } else if (change->existed && change->before == now) {
        out += "budget " + budget_or_none(now) + " (unchanged)";
    } else if (now) {
        out += (change->existed ? "budget changed from " + budget_or_none(change->before) + " to "
                                : "budget set to ") +
               format_usd(*now);
        if (*now == 0) out += ": the batch's calls are held until it is raised";
    } else {
        out += "budget cleared (was " + budget_or_none(change->before) + ")";
    }
    if (change && !now)
        out += cfg_.budget.max_usd_per_batch
                   ? "; the config's max_usd_per_batch " +
                         format_usd(*cfg_.budget.max_usd_per_batch) + " applies"
                   : "; no batch budget applies";
    std::cout << out << '\n';
}

void Enqueuer::job(jobs::JobSpec&& spec) {
    const int line = spec.line;
    auto v = jobs::validate_job(spec, cfg_.catalog, providers_, today_);
    if (!v.ok) return reject(line, v.retired ? "error: " + v.error : v.error);
    if (!v.warning.empty()) warn(line, v.warning);
    if (!spec.key.empty()) {
        if (auto first = seen_.add(spec.key, {file_, line})) {
            const std::string at = names_[first->file] == names_[file_]
                                       ? "line " + std::to_string(first->line)
                                       : names_[first->file] + ":" + std::to_string(first->line);
            return reject(line, "key '" + spec.key + "' repeats " + at);
        }
    }
    auto plan = jobs::plan_requests(spec.n, v.ok->per_request);
    chunk_.where.push_back({file_, line});
    chunk_.items.push_back({std::move(spec), v.ok->provider, std::move(plan)});
    if (chunk_lines() >= kChunk) flush();
}

void Enqueuer::flush() {
    seen_.commit();
    // Nothing is written with --dry-run, nor with --strict once a line was rejected.
    chunk_.roll_back = o_.strict && rejected_ > 0;
    chunk_.write = !o_.dry_run && !chunk_.roll_back;
    chunk_.names = names_;
    store_.submit(std::exchange(chunk_, Chunk{}));
    chunk_warnings_ = 0;
    chunk_.items.reserve(kChunk);
    chunk_.where.reserve(kChunk);
}

// read(2) of the input. When nothing is there to read yet (a pipe fed slowly), what was read
// is stored first: a job does not wait for the next line to be written.
std::size_t Enqueuer::read_some(int fd, char* buf, std::size_t size) {
    if (pending()) {
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
    store_.wait();
    if (o_.strict && rejected_ > 0)
        std::cerr << "imgbatch: nothing enqueued: " << rejected_ << " rejected with --strict\n";
    store_.commit();
}

void Enqueuer::abandon() {
    store_.wait(false);
    store_.roll_back();
    print_messages(chunk_.messages, o_.json ? &store_.messages() : nullptr);
}

// "field 'n': must be ..." -> ("n", "must be ..."); "unknown field 'x' (known: ...)" -> ("x",
// the whole reason); anything else -> ("", the reason).
std::pair<std::string, std::string> split_field(const std::string& reason) {
    for (std::string_view lead : {"field '", "unknown field '"}) {
        if (reason.rfind(lead, 0) != 0) continue;
        const auto end = reason.find('\'', lead.size());
        if (end == std::string::npos) break;
        std::string field = reason.substr(lead.size(), end - lead.size());
        if (lead == "field '" && reason.compare(end, 3, "': ") == 0)
            return {std::move(field), reason.substr(end + 3)};
        return {std::move(field), reason};
    }
    return {"", reason};
}

void Enqueuer::print_json_summary() {
    namespace json = boost::json;
    const Counts& c = store_.counts();
    json::array rejections, duplicates, warnings;
    for (const auto& m : store_.messages()) {
        const json::value file = json::string(names_.at(m.at.file));
        const json::value line = m.at.line > 0 ? json::value(m.at.line) : json::value(nullptr);
        if (m.warning) {
            warnings.push_back(json::object{{"file", file}, {"line", line}, {"message", m.reason}});
            continue;
        }
        if (m.job > 0) {
            duplicates.push_back(
                json::object{{"file", file}, {"line", line}, {"key", m.key}, {"job", m.job}});
            continue;
        }
        auto [field, message] = split_field(m.reason);
        rejections.push_back(json::object{{"file", file},
                                          {"line", line},
                                          {"field", string_or_null(field)},
                                          {"message", message}});
    }
    json::object o{{"batch", batch_},
                   {"dry_run", o_.dry_run},
                   {"enqueued", !o_.dry_run && !(o_.strict && rejected_ > 0)},
                   {"jobs", c.jobs},
                   {"images", c.images},
                   {"requests", c.requests},
                   {"rejected", rejected_},
                   {"duplicates", c.duplicates},
                   {"rejections", std::move(rejections)},
                   {"duplicate_keys", std::move(duplicates)},
                   {"warnings", std::move(warnings)},
                   {"more_warnings", more_warnings_}};
    if (estimate_) o["estimate"] = estimate_->json(queued_);
    if (store_.budget) {
        const auto& change = store_.budget_change();
        o["budget"] = json::object{
            {"max_usd", usd_json(*store_.budget)},
            {"set", change.has_value()},
            {"before_usd", change ? usd_json(change->before) : json::value(nullptr)},
            {"changed", change && (!change->existed || change->before != *store_.budget)}};
    }
    std::cout << json_text(o) << '\n';
}

void Enqueuer::print_summary() {
    if (o_.json) return print_json_summary();
    if (more_warnings_ > 0)
        std::cerr << "imgbatch: warning: " << more_warnings_
                  << " more lines use a model named in a warning above\n";
    const Counts& c = store_.counts();
    std::cout << "batch " << batch_ << ": " << c.jobs
              << (o_.dry_run ? " jobs would be enqueued (" : " jobs enqueued (") << c.images
              << " images in " << c.requests << " requests), " << rejected_ << " rejected, "
              << c.duplicates << " duplicates" << (o_.dry_run ? " (dry run)" : "") << '\n';
    print_budget();
    if (estimate_) std::cout << estimate_->text(queued_);
    if (!o_.dry_run && c.jobs > 0)
        spdlog::debug("enqueued batch={} jobs={} images={} requests={}", q(batch_), c.jobs,
                      c.images, c.requests);
}

// `enqueue --batch B --budget USD` without a file: changes the budget of batch B only.
int change_budget(const EnqueueOptions& o, Context& ctx) {
    const std::optional<double> budget = parse_budget(o.budget);
    std::error_code ec;
    if (!std::filesystem::exists(ctx.database(), ec))
        throw OperationError("no batch '" + o.batch + "' (no database at " + ctx.database() + ")");
    const auto change = ctx.existing_store().set_batch_budget(o.batch, budget, false);
    if (!change) throw OperationError("no batch '" + o.batch + "'");
    if (o.json) {
        namespace json = boost::json;
        std::cout << json_text(json::object{
                         {"batch", o.batch},
                         {"budget", json::object{{"max_usd", usd_json(budget)},
                                                 {"set", true},
                                                 {"before_usd", usd_json(change->before)},
                                                 {"changed", change->before != budget}}}})
                  << '\n';
        return 0;
    }
    std::string out = "batch " + o.batch + ": ";
    if (change->before == budget)
        out += "budget " + budget_or_none(budget) + " (unchanged)";
    else if (budget)
        out += "budget changed from " + budget_or_none(change->before) + " to " +
               format_usd(*budget) +
               (*budget == 0 ? ": the batch's calls are held until it is raised" : "");
    else
        out += "budget cleared (was " + budget_or_none(change->before) + ")";
    std::cout << out << '\n';
    return 0;
}

int run_enqueue(EnqueueOptions o, Context& ctx) {
    if (o.budget_opt->count()) parse_budget(o.budget);  // a bad value stops before anything
    if (o.files.empty()) {
        if (o.budget_opt->count() && !o.batch.empty() && !o.dry_run && !o.estimate)
            return change_budget(o, ctx);
        throw UsageError(
            "enqueue: give FILE... (only --batch B --budget USD|none changes a batch's budget "
            "without a file)");
    }
    if (o.estimate) o.dry_run = true;
    // SQLite's memory statistics take a global mutex on every allocation: not needed here.
    // (Only possible before SQLite starts; later it is refused, and nothing changes.)
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    const std::string batch = o.batch.empty() ? default_batch_name(o.files.front()) : o.batch;
    Enqueuer e(o, ctx, batch);
    try {
        for (const auto& file : o.files) e.read(file);
        e.finish();
        if (o.estimate) e.read_queued(ctx);
        if (o.dry_run) e.read_budget(ctx);
    } catch (const std::exception& ex) {
        // Chunks already committed stay (keys make enqueueing the file again safe).
        e.abandon();
        if (dynamic_cast<const UsageError*>(&ex)) throw;
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
    cmd->add_option("files", o->files,
                    "job files (.jsonl, .csv, .txt); '-' reads stdin (none: with --batch and "
                    "--budget, only change the batch's budget)");
    cmd->add_option("--batch", o->batch, "batch name (default: FILE-STEM-YYYYmmdd-HHMMSS)");
    cmd->add_option("--model", o->model, "model for lines that name none");
    cmd->add_option("--provider", o->provider, "provider for lines that name none");
    o->n_opt = cmd->add_option("--n", o->n, "images per job for lines that say none")
                   ->check(CLI::Range(1, 1000000));
    o->priority_opt =
        cmd->add_option("--priority", o->priority, "priority for lines that say none");
    cmd->add_flag("--strict", o->strict, "enqueue nothing if any line is rejected");
    cmd->add_flag("--dry-run", o->dry_run,
                  "validate and report only, with the projected cost by provider and model");
    cmd->add_flag("--estimate", o->estimate,
                  "as --dry-run, and add what the database already has queued or running");
    cmd->add_flag("--json", o->json,
                  "print one JSON object (batch, counts, rejections, duplicate keys) on stdout "
                  "instead of the summary line and the messages on stderr");
    o->budget_opt =
        cmd->add_option("--budget", o->budget,
                        "USD the batch may spend in all, replacing the config's "
                        "max_usd_per_batch for it (0 holds its calls; 'none' clears it); "
                        "given for an existing batch, changes its budget")
            ->type_name("USD|none");
    cmd->add_option("--format", o->format, "input format (default: from the file extension)")
        ->check(CLI::IsMember({"jsonl", "csv", "txt"}));
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_enqueue(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
