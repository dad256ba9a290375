// `imgbatch status`: jobs by state, images, per-provider activity, throughput and ETA, once or
// as JSON; `--watch` is the progress display of watch.cpp (or one JSON object per interval).
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>
#include <thread>
#include "daemon/cli/batch_view.hpp"

#include "daemon/cli/commands.hpp"
#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/cli/progress.hpp"
#include "daemon/cost.hpp"
#include "daemon/json_text.hpp"
#include "jobs/state.hpp"

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;

struct StatusOptions {
    std::string batch;
    bool json = false, watch = false;
    double interval = 2;
};

constexpr jobs::JobState kStates[] = {jobs::JobState::pending,   jobs::JobState::queued,
                                      jobs::JobState::running,   jobs::JobState::succeeded,
                                      jobs::JobState::failed,    jobs::JobState::blocked,
                                      jobs::JobState::cancelled, jobs::JobState::rejected};

struct ProviderLine {
    std::string name;
    bool configured = false;
    bool paused = false;
    std::string reason;
    std::string budget;  // a budget holds the lane: which one (README "Budgets")
    jobs::ProviderStats stats;
};

// Configured providers first (config order), then any other the database knows of.
std::vector<ProviderLine> provider_lines(const Config& cfg, const jobs::Stats& stats,
                                         const std::vector<jobs::ProviderState>& states) {
    std::vector<ProviderLine> lines;
    std::set<std::string> seen;
    auto line_for = [&](const std::string& name) -> ProviderLine& {
        if (seen.insert(name).second) {
            lines.emplace_back();
            lines.back().name = name;
        }
        for (auto& l : lines)
            if (l.name == name) return l;
        return lines.back();
    };
    for (const auto& p : cfg.providers) line_for(p.name).configured = true;
    for (const auto& [name, s] : stats.providers) line_for(name).stats = s;
    for (const auto& s : states) {
        if (!s.paused) continue;
        auto& l = line_for(s.name);
        l.paused = true;
        l.reason = s.reason;
    }
    return lines;
}

std::int64_t count(const jobs::Stats& s, jobs::JobState st) {
    auto it = s.jobs_by_state.find(std::string(jobs::to_string(st)));
    return it == s.jobs_by_state.end() ? 0 : it->second;
}

json::object status_json(const std::optional<std::string>& batch, const jobs::Stats& s,
                         const std::vector<ProviderLine>& providers,
                         const std::vector<jobs::DaemonRow>& daemons, double now,
                         const Snapshot& progress) {
    json::object by_state;
    for (auto st : kStates) by_state[jobs::to_string(st)] = count(s, st);
    json::array provs;
    for (const auto& p : providers) {
        const LaneView* lane = nullptr;
        for (const auto& l : progress.lanes)
            if (l.load.provider == p.name) lane = &l;
        provs.push_back(json::object{{"name", p.name},
                                     {"lane", lane ? json::value(lane->state) : nullptr},
                                     {"lane_detail", lane ? string_or_null(lane->detail) : nullptr},
                                     {"configured", p.configured},
                                     {"paused", p.paused},
                                     {"reason", string_or_null(p.reason)},
                                     {"queued", p.stats.queued},
                                     {"claimed", p.stats.claimed},
                                     {"in_flight", p.stats.in_flight},
                                     {"images_last_min", p.stats.images_last_min}});
    }
    json::object o;
    o["time"] = rfc3339(now);
    o["batch"] = batch ? json::value(*batch) : json::value(nullptr);
    o["jobs"] = s.jobs;
    o["by_state"] = std::move(by_state);
    o["images_done"] = s.images_done;
    o["images_wanted"] = s.images_wanted;
    o["images_per_min"] = json_number(std::round(s.images_per_min * 100) / 100);
    o["rate_window_s"] = json_number(std::round(s.rate_window_s * 10) / 10);
    o["eta_s"] = s.eta_s ? json_number(std::round(*s.eta_s)) : json::value(nullptr);
    o["providers"] = std::move(provs);
    json::array batches;
    for (const auto& b : progress.batches) batches.push_back(batch_json(b));
    o["batches"] = std::move(batches);
    json::array ds;
    for (const auto& d : daemons)
        ds.push_back(json::object{{"owner", d.owner},
                                  {"host", d.host},
                                  {"pid", d.pid},
                                  {"started_at", json_time(d.started_at)},
                                  {"heartbeat_at", json_time(d.heartbeat_at)},
                                  {"alive", d.heartbeat_at > now - kHeartbeatFreshS},
                                  {"local_pause", string_or_null(d.local_pause)}});
    o["daemons"] = std::move(ds);
    return o;
}

// One line per daemon not stopped: who, since when, last heartbeat, local pause.
std::string daemons_text(const std::vector<jobs::DaemonRow>& daemons, double now) {
    std::string out;
    for (const auto& d : daemons) {
        double age = now - d.heartbeat_at;
        out += "daemon: " + d.host + " pid " + std::to_string(d.pid) + ", since " +
               format_time(d.started_at) + ", heartbeat " + format_duration(std::max(age, 0.0)) +
               " ago" + (age > kHeartbeatFreshS ? " (not responding)" : "") + "\n";
        if (!d.local_pause.empty())
            out += "  local pause: " + d.local_pause +
                   " (dispatching held; images received are kept in memory)\n";
    }
    if (out.empty()) out = "daemon: none running\n";
    return out;
}

std::string status_text(const std::optional<std::string>& batch, const jobs::Stats& s,
                        const std::vector<ProviderLine>& providers) {
    std::string out = "batch: " + (batch ? *batch : std::string("(all)")) + "\n";
    out += "jobs: " + std::to_string(s.jobs);
    std::string parts;
    for (auto st : kStates) {
        auto n = count(s, st);
        if (n == 0) continue;
        parts += (parts.empty() ? "" : ", ") + std::string(jobs::to_string(st)) + " " +
                 std::to_string(n);
    }
    if (!parts.empty()) out += " (" + parts + ")";
    out += "\nimages: " + std::to_string(s.images_done) + "/" + std::to_string(s.images_wanted) +
           " done\n";
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.1f", s.images_per_min);
    out += std::string("throughput: ") + rate + " images/min (last " +
           format_duration(s.rate_window_s) + ")";
    out += ", ETA " + (s.eta_s ? format_duration(*s.eta_s) : std::string("-")) + "\n";
    if (!providers.empty()) {
        std::vector<std::vector<std::string>> rows{
            {"PROVIDER", "QUEUED", "CLAIMED", "IN_FLIGHT", "IMAGES_1MIN", "STATE"}};
        for (const auto& p : providers) {
            std::string state = p.paused            ? "paused (" + p.reason + ")"
                                : !p.budget.empty() ? "budget (" + p.budget + ")"
                                                    : "active";
            if (!p.configured) state += " (not configured)";
            rows.push_back({p.name, std::to_string(p.stats.queued), std::to_string(p.stats.claimed),
                            std::to_string(p.stats.in_flight),
                            std::to_string(p.stats.images_last_min), state});
        }
        out += "\n" + render_table(rows);
    }
    return out;
}

// Each batch shown (the one asked for, else those not final) with its rate and ETA since it
// started.
std::string progress_text(const Snapshot& progress) {
    std::string out;
    for (const auto& b : progress.batches) out += "progress: " + batch_line(b) + "\n";
    return out;
}

// The batch budget of a batch (README "Budgets"): its own, else the config's max_usd_per_batch.
struct BatchBudgetView {
    double limit_usd = 0;
    bool own = false;   // enqueue --budget (batches.max_usd), else the config's
    bool held = false;  // a live daemon holds the batch's calls
};
std::optional<BatchBudgetView> batch_budget_view(jobs::Store& store, const Config& config,
                                                 const std::string& batch) {
    BatchBudgetView v;
    if (auto own = store.batch_budget(batch)) {
        v.limit_usd = *own;
        v.own = true;
    } else if (config.budget.max_usd_per_batch) {
        v.limit_usd = *config.budget.max_usd_per_batch;
    } else {
        return std::nullopt;
    }
    for (const auto& h : store.budget_holds())
        v.held = v.held || (h.budget == "batch" && h.batch == batch);
    return v;
}

json::value batch_budget_json(const std::optional<BatchBudgetView>& v, double spent) {
    if (!v) return nullptr;
    return json::object{{"limit_usd", usd_json(v->limit_usd)},
                        {"source", v->own ? "batch" : "config"},
                        {"spent_usd", usd_json(spent)},
                        {"remaining_usd", usd_json(std::max(v->limit_usd - spent, 0.0))},
                        {"held", v->held}};
}

std::string batch_budget_text(const std::optional<BatchBudgetView>& v, double spent) {
    if (!v) return {};
    std::string out = "budget: " + format_usd(v->limit_usd) +
                      (v->own ? " (the batch's own, enqueue --budget)"
                              : " (the config's budget.max_usd_per_batch)") +
                      ", " + format_usd(spent) + " spent, " +
                      format_usd(std::max(v->limit_usd - spent, 0.0)) + " left";
    if (v->held) out += "; held: the next call's worst case would cross it";
    return out + "\n";
}

// One status (text, or JSON with --json); stamp: start the text with the time.
void print_once(const StatusOptions& o, Context& ctx, ProgressReader& reader, bool stamp,
                Snapshot& progress) {
    auto& store = ctx.existing_store();
    std::optional<std::string> batch;
    if (!o.batch.empty()) batch = o.batch;
    progress = reader.read();
    const double now = progress.now;
    auto stats = store.stats(batch, now);
    auto lines = provider_lines(ctx.config(), stats, store.provider_states());
    for (auto& l : lines)
        for (const auto& lane : progress.lanes)
            if (lane.load.provider == l.name && lane.state == "budget") l.budget = lane.detail;
    auto daemons = store.running_daemons();
    auto vendor = store.open_vendor_batches();
    jobs::SpendFilter spent;
    spent.batch = batch;
    const auto spend = store.spend(spent);
    const auto projected = store.queued_cost(spent, queued_pricer(ctx.config()), true);
    std::optional<BatchBudgetView> budget;
    if (batch) budget = batch_budget_view(store, ctx.config(), *batch);
    std::string text;
    if (o.json) {
        auto obj = status_json(batch, stats, lines, daemons, now, progress);
        obj["vendor_batches"] = vendor_batches_json(vendor, now);
        obj["spend"] = spend_json(spend);
        obj["projected"] = projection_json(projected);
        if (batch) obj["budget"] = batch_budget_json(budget, spend.usd);
        text = json_text(obj) + "\n";
    } else {
        text = status_text(batch, stats, lines) + spend_text(spend, projected) +
               batch_budget_text(budget, spend.usd) + progress_text(progress) +
               vendor_batches_text(vendor, now) + daemons_text(daemons, now);
    }
    if (stamp && !o.json) text = "--- " + format_time(now) + "\n" + text;
    std::cout << text << std::flush;
}

int run_status(const StatusOptions& o, Context& ctx) {
    std::optional<std::string> batch;
    if (!o.batch.empty()) {
        auto names = ctx.existing_store().batch_names();
        if (std::find(names.begin(), names.end(), o.batch) == names.end())
            throw OperationError("no batch '" + o.batch + "'");
        batch = o.batch;
    }
    if (o.watch && !o.json) return run_watch(ctx, batch, o.interval);
    ProgressReader reader(ctx, batch);
    Snapshot progress;
    if (!o.watch) {
        print_once(o, ctx, reader, false, progress);
        return 0;
    }
    // --watch --json: one object a line; with --batch, until the batch is final.
    catch_stop_signals();
    for (;;) {
        print_once(o, ctx, reader, true, progress);
        if (batch && progress.all_final()) return 0;
        if (!sleep_unless_stopped(o.interval)) return 0;
    }
}

}  // namespace

void add_status(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<StatusOptions>();
    auto* cmd = app.add_subcommand("status", "jobs by state, images, providers, throughput, ETA");
    cmd->add_option("--batch", o->batch, "only this batch");
    cmd->add_flag("--json", o->json, "one JSON object (one per interval with --watch)");
    auto* watch = cmd->add_flag("--watch", o->watch,
                                "progress display redrawn every interval; with --batch it ends "
                                "when the batch is final, else at SIGINT/SIGTERM");
    cmd->add_option("--interval", o->interval, "seconds between redraws (default 2)")
        ->check(CLI::Range(0.1, 3600.0))
        ->needs(watch);
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_status(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
