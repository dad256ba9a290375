// `imgbatch enqueue FILE...`: read job files, validate every line, plan, and store all valid
// jobs in one transaction.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <unordered_map>

#include "daemon/cli/commands.hpp"
#include "jobs/job_file.hpp"
#include "jobs/planner.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::daemon::cli {
namespace {

struct EnqueueOptions {
    std::vector<std::string> files;
    std::string batch, model, provider, format;
    int n = 1, priority = 0;
    CLI::Option* n_opt = nullptr;
    CLI::Option* priority_opt = nullptr;
    bool strict = false, dry_run = false;
};

// Reads a whole file ("-": stdin); false with the reason on failure.
bool read_input(const std::string& file, std::string& out, std::string& reason) {
    std::FILE* f = file == "-" ? stdin : std::fopen(file.c_str(), "rb");
    if (!f) {
        reason = std::strerror(errno);
        return false;
    }
    char buf[1 << 16];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, got);
    bool failed = std::ferror(f);
    if (failed) reason = std::strerror(errno ? errno : EIO);
    if (f != stdin) std::fclose(f);
    return !failed;
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

std::string line_message(const jobs::LineError& e) {
    return e.line > 0 ? e.str() : e.file + ": " + e.reason;
}

struct Where {
    std::string file;
    int line = 0;
};

// Keys among items that the database already holds, for --dry-run (no write).
std::vector<std::pair<std::size_t, std::int64_t>> existing_keys(
    jobs::Store& store, const std::vector<jobs::EnqueueItem>& items) {
    std::vector<std::pair<std::size_t, std::int64_t>> found;
    SQLite::Statement q(store.db(), "SELECT id FROM jobs WHERE key = ?");
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (items[i].spec.key.empty()) continue;
        q.reset();
        q.bind(1, items[i].spec.key);
        if (q.executeStep()) found.emplace_back(i, q.getColumn(0).getInt64());
    }
    return found;
}

int run_enqueue(const EnqueueOptions& o, Context& ctx) {
    const Config& cfg = ctx.config();
    const auto providers = cfg.provider_infos();
    jobs::JobDefaults defaults;
    defaults.model = o.model;
    defaults.provider = o.provider;
    if (o.n_opt->count()) defaults.n = o.n;
    if (o.priority_opt->count()) defaults.priority = o.priority;

    std::optional<jobs::FileFormat> forced;
    if (!o.format.empty()) forced = jobs::format_from_name("x." + o.format);

    std::vector<jobs::EnqueueItem> items;
    std::vector<Where> where;  // per item
    std::unordered_map<std::string, Where> keys;
    std::string report;  // stderr, written once
    std::size_t rejected = 0;

    for (const auto& file : o.files) {
        const std::string name = display_name(file);
        std::optional<jobs::FileFormat> format = forced;
        if (!format) format = file == "-" ? jobs::FileFormat::jsonl : jobs::format_from_name(file);
        if (!format) {
            report += name + ": unknown file type (use .jsonl, .csv or .txt, or --format)\n";
            ++rejected;
            continue;
        }
        std::string content, reason;
        if (!read_input(file, content, reason)) {
            report += name + ": cannot read: " + reason + "\n";
            ++rejected;
            continue;
        }
        auto parsed = jobs::parse_job_file(content, name, *format, defaults);
        std::vector<jobs::LineError> errors = std::move(parsed.errors);
        items.reserve(items.size() + parsed.jobs.size());
        where.reserve(items.capacity());
        for (auto& job : parsed.jobs) {
            auto v = jobs::validate_job(job, cfg.catalog, providers);
            if (!v.ok) {
                errors.push_back({name, job.line, v.error});
                continue;
            }
            if (!job.key.empty()) {
                auto [it, fresh] = keys.try_emplace(job.key, Where{name, job.line});
                if (!fresh) {
                    std::string at = it->second.file == name
                                         ? "line " + std::to_string(it->second.line)
                                         : it->second.file + ":" + std::to_string(it->second.line);
                    errors.push_back({name, job.line, "key '" + job.key + "' repeats " + at});
                    continue;
                }
            }
            auto plan = jobs::plan_requests(job.n, v.ok->per_request);
            where.push_back({name, job.line});
            items.push_back({std::move(job), v.ok->provider, std::move(plan)});
        }
        std::stable_sort(errors.begin(), errors.end(),
                         [](const auto& a, const auto& b) { return a.line < b.line; });
        for (const auto& e : errors) report += line_message(e) + "\n";
        rejected += errors.size();
    }

    const std::string batch = o.batch.empty() ? default_batch_name(o.files.front()) : o.batch;
    std::vector<std::pair<std::size_t, std::int64_t>> dups;
    std::vector<bool> skipped(items.size(), false);
    bool enqueued = false;
    if (o.strict && rejected > 0) {
        report +=
            "imgbatch: nothing enqueued: " + std::to_string(rejected) + " rejected with --strict\n";
    } else if (o.dry_run) {
        std::error_code ec;
        if (std::filesystem::exists(ctx.database(), ec)) dups = existing_keys(ctx.store(), items);
    } else if (!items.empty()) {
        auto result = ctx.store().enqueue(batch, items);
        for (const auto& d : result.duplicates) dups.emplace_back(d.item, d.existing_job);
        enqueued = true;
    }
    for (const auto& [i, job] : dups) {
        skipped[i] = true;
        report += where[i].file + ":" + std::to_string(where[i].line) + ": key '" +
                  items[i].spec.key + "' already enqueued as job " + std::to_string(job) +
                  "; skipped\n";
    }
    std::cerr << report << std::flush;

    std::size_t jobs = 0, images = 0, requests = 0;
    if (enqueued || o.dry_run) {
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (skipped[i]) continue;
            ++jobs;
            images += static_cast<std::size_t>(items[i].spec.n);
            requests += items[i].plan.size();
        }
    }
    std::cout << "batch " << batch << ": " << jobs
              << (o.dry_run ? " jobs would be enqueued (" : " jobs enqueued (") << images
              << " images in " << requests << " requests), " << rejected << " rejected, "
              << dups.size() << " duplicates" << (o.dry_run ? " (dry run)" : "") << '\n';
    if (enqueued)
        spdlog::debug("enqueued batch={} jobs={} images={} requests={}", batch, jobs, images,
                      requests);
    return rejected > 0 ? 1 : 0;
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
