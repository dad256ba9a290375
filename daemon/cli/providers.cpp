// `imgbatch providers`, `pause PROVIDER` and `resume PROVIDER`.
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <iostream>
#include <set>

#include "daemon/cli/batch_view.hpp"
#include "daemon/cli/commands.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/cli/progress.hpp"
#include "daemon/json_text.hpp"
#include "jobs/text.hpp"

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;

struct ProvidersOptions {
    bool json = false;
};
struct PauseOptions {
    std::string provider, reason = "user";
};

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

int run_providers(const ProvidersOptions& o, Context& ctx) {
    const Config& cfg = ctx.config();
    // Counts and pauses come from the database when there is one; no database is no activity.
    std::vector<jobs::ProviderState> states;
    std::vector<jobs::VendorBatchRow> vendor;
    std::vector<jobs::BudgetHoldRow> holds;
    jobs::Stats stats;
    std::error_code ec;
    const std::string db = ctx.database();
    if (std::filesystem::exists(db, ec)) {
        auto& store = ctx.store();
        states = store.provider_states();
        stats = store.stats(std::nullopt, jobs::unix_now());
        vendor = store.open_vendor_batches();
        // Budgets holding a live daemon's next call (README "Budgets").
        const double now = jobs::unix_now();
        std::set<std::string> alive;
        for (const auto& d : store.running_daemons())
            if (d.heartbeat_at > now - kHeartbeatFreshS) alive.insert(d.owner);
        for (auto& h : store.budget_holds())
            if (alive.count(h.owner)) holds.push_back(std::move(h));
    }
    auto hold_of = [&](const std::string& name) -> const jobs::BudgetHoldRow* {
        for (const auto& h : holds)
            if (h.provider == name) return &h;
        return nullptr;
    };
    auto state_of = [&](const std::string& name) -> const jobs::ProviderState* {
        for (const auto& s : states)
            if (s.name == name) return &s;
        return nullptr;
    };
    json::array arr;
    std::vector<std::vector<std::string>> table{{"NAME", "API", "BASE_URL", "MODELS", "CONC", "RPM",
                                                 "IPM", "QUEUED", "CLAIMED", "IN_FLIGHT", "STATE"}};
    for (const auto& p : cfg.providers) {
        const auto* st = state_of(p.name);
        const bool paused = st && st->paused;
        const auto* hold = paused ? nullptr : hold_of(p.name);
        jobs::ProviderStats ps;
        if (auto it = stats.providers.find(p.name); it != stats.providers.end()) ps = it->second;
        if (o.json) {
            json::array models;
            for (const auto& m : p.models) models.push_back(json::string(m));
            arr.push_back(json::object{
                {"name", p.name},
                {"api", p.api},
                {"base_url", p.base_url},
                {"models", std::move(models)},
                {"max_concurrency", p.max_concurrency},
                {"requests_per_minute", json_number(p.requests_per_minute)},
                {"images_per_minute", json_number(p.images_per_minute)},
                {"max_images_per_request", p.max_images_per_request},
                {"timeout_s", json_number(p.timeout_s)},
                {"paused", paused},
                {"reason", paused ? string_or_null(st->reason) : json::value(nullptr)},
                {"paused_at", paused ? json_time(st->paused_at) : json::value(nullptr)},
                {"budget", hold ? json::value(json::object{{"budget", hold->budget},
                                                           {"batch", string_or_null(hold->batch)},
                                                           {"limit_usd", hold->limit_usd},
                                                           {"spent_usd", hold->spent_usd}})
                                : json::value(nullptr)},
                {"queued", ps.queued},
                {"claimed", ps.claimed},
                {"in_flight", ps.in_flight},
                {"images_last_min", ps.images_last_min},
                {"mode", p.mode},
                {"vendor_batches", [&] {
                     std::vector<jobs::VendorBatchRow> mine;
                     for (const auto& v : vendor)
                         if (v.provider == p.name) mine.push_back(v);
                     return vendor_batches_json(mine, jobs::unix_now());
                 }()}});
        } else {
            table.push_back({p.name, p.api, p.base_url, jobs::join(p.models, ","),
                             std::to_string(p.max_concurrency),
                             p.requests_per_minute > 0 ? number(p.requests_per_minute) : "-",
                             p.images_per_minute > 0 ? number(p.images_per_minute) : "-",
                             std::to_string(ps.queued), std::to_string(ps.claimed),
                             std::to_string(ps.in_flight),
                             paused ? "paused (" + st->reason + ")"
                             : hold ? "budget (" + budget_hold_text(*hold) + ")"
                                    : "active"});
        }
    }
    if (o.json)
        std::cout << json_text(arr) << '\n';
    else if (cfg.providers.empty())
        std::cout << "no providers configured ("
                  << (cfg.source.empty() ? std::string("built-in defaults") : cfg.source) << ")\n";
    else
        std::cout << render_table(table) << vendor_batches_text(vendor, jobs::unix_now());
    return 0;
}

void require_configured(const Config& cfg, const std::string& name) {
    if (cfg.provider(name)) return;
    std::vector<std::string> names;
    for (const auto& p : cfg.providers) names.push_back(p.name);
    throw UsageError("unknown provider '" + name + "' (configured: " +
                     (names.empty() ? std::string("none") : jobs::join(names)) + ")");
}

int run_pause(const PauseOptions& o, Context& ctx, bool pause) {
    require_configured(ctx.config(), o.provider);
    auto& store = ctx.store();
    if (pause) {
        store.set_provider_paused(o.provider, true, o.reason, 0);
        std::cout << "provider " << o.provider << " paused (" << o.reason << ")\n";
    } else {
        store.set_provider_paused(o.provider, false, "", 0);
        std::cout << "provider " << o.provider << " resumed\n";
    }
    return 0;
}

}  // namespace

void add_providers(CLI::App& app, Context& ctx) {
    auto po = std::make_shared<ProvidersOptions>();
    auto* list = app.add_subcommand("providers", "configured providers, limits and state");
    list->add_flag("--json", po->json, "a JSON array");
    list->callback([po, &ctx] { ctx.action = [po, &ctx] { return run_providers(*po, ctx); }; });

    auto pa = std::make_shared<PauseOptions>();
    auto* pause = app.add_subcommand("pause", "stop dispatching to a provider");
    pause->add_option("provider", pa->provider, "provider name")->required();
    pause->add_option("--reason", pa->reason, "why (shown by status and providers)");
    pause->callback([pa, &ctx] { ctx.action = [pa, &ctx] { return run_pause(*pa, ctx, true); }; });

    auto re = std::make_shared<PauseOptions>();
    auto* resume = app.add_subcommand("resume", "dispatch to a paused provider again");
    resume->add_option("provider", re->provider, "provider name")->required();
    resume->callback(
        [re, &ctx] { ctx.action = [re, &ctx] { return run_pause(*re, ctx, false); }; });
}

}  // namespace imgbatch::daemon::cli
