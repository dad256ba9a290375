// `imgbatch wait [--batch B] [--timeout S]`: blocks until the batch (or every job) is final.
// Exit code: 0 every job succeeded, 1 some job failed, was blocked, cancelled or rejected,
// 2 usage error (unknown batch, no database), 124 timed out (as timeout(1)).
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "daemon/cli/commands.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/cli/progress.hpp"
#include "jobs/state.hpp"

namespace imgbatch::daemon::cli {
namespace {

constexpr int kTimedOut = 124;

struct WaitOptions {
    std::string batch;
    double timeout_s = 0;  // 0: no limit
    double interval_s = 1;
};

struct Tally {
    std::map<std::string, std::int64_t> by_state;
    std::int64_t jobs = 0;
    std::int64_t at(jobs::JobState s) const {
        auto it = by_state.find(std::string(jobs::to_string(s)));
        return it == by_state.end() ? 0 : it->second;
    }
    std::int64_t open() const {
        return at(jobs::JobState::pending) + at(jobs::JobState::queued) +
               at(jobs::JobState::running);
    }
    std::string text() const {
        std::string out = std::to_string(jobs) + " jobs";
        std::string parts;
        for (const auto& [state, n] : by_state)
            if (n) parts += (parts.empty() ? "" : ", ") + state + " " + std::to_string(n);
        return parts.empty() ? out : out + " (" + parts + ")";
    }
};

Tally tally(jobs::Store& store, const std::optional<std::string>& batch) {
    Tally t;
    if (batch) {
        auto p = store.batch_progress(batch);
        if (p.empty()) throw UsageError("no batch '" + *batch + "'");
        t.by_state = p.front().jobs_by_state;
        t.jobs = p.front().jobs;
    } else {
        auto st = store.stats(std::nullopt, jobs::unix_now());
        t.by_state = st.jobs_by_state;
        t.jobs = st.jobs;
    }
    return t;
}

int run_wait(const WaitOptions& o, Context& ctx) {
    auto& store = ctx.existing_store();
    std::optional<std::string> batch;
    if (!o.batch.empty()) batch = o.batch;
    const std::string what = batch ? "batch " + *batch : std::string("all jobs");
    const auto start = std::chrono::steady_clock::now();
    bool warned = false;
    for (;;) {
        const Tally t = tally(store, batch);
        if (t.open() == 0) {
            std::cout << what << ": " << t.text() << '\n';
            return t.at(jobs::JobState::succeeded) == t.jobs ? 0 : 1;
        }
        if (!warned) {
            const double now = jobs::unix_now();
            bool alive = false;
            for (const auto& d : store.running_daemons())
                alive = alive || d.heartbeat_at > now - kHeartbeatFreshS;
            if (!alive)
                std::cerr << "imgbatch: no daemon is running on " << ctx.database()
                          << "; waiting for one (start 'imgbatch run')\n";
            warned = true;
        }
        const double waited =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (o.timeout_s > 0 && waited >= o.timeout_s) {
            std::cerr << "imgbatch: timed out after " << format_duration(o.timeout_s) << ": "
                      << what << ": " << t.open() << " of " << t.jobs << " jobs not final\n";
            return kTimedOut;
        }
        double nap = o.interval_s;
        if (o.timeout_s > 0) nap = std::min(nap, std::max(0.0, o.timeout_s - waited));
        std::this_thread::sleep_for(std::chrono::duration<double>(nap));
    }
}

}  // namespace

void add_wait(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<WaitOptions>();
    auto* cmd = app.add_subcommand(
        "wait", "block until a batch (default: every job) is final; exit 0 only if all succeeded");
    cmd->add_option("--batch", o->batch, "only this batch");
    cmd->add_option("--timeout", o->timeout_s, "give up after S seconds (exit 124)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--interval", o->interval_s, "seconds between checks (default 1)")
        ->check(CLI::Range(0.05, 3600.0));
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_wait(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
