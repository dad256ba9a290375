#include "daemon/engine/budget_gate.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>

#include "daemon/engine/budget_dispatch.hpp"
#include "daemon/engine/metrics.hpp"
#include "daemon/logfmt.hpp"
#include "jobs/attempt_cost.hpp"

namespace imgbatch::daemon {
namespace asio = boost::asio;

namespace {

jobs::PriceParams params_of(const std::string& params_json) {
    boost::system::error_code ec;
    auto v = boost::json::parse(params_json.empty() ? "{}" : params_json, ec);
    if (ec || !v.is_object()) return {};
    return jobs::price_params(v.get_object());
}

std::string usd(double v) {
    return fmt::format("{:.4f}", v);
}

// Writes the gate's holds to the budget_holds table (status, providers).
void persist(EngineShared* s) {
    s->db.post([owner = s->owner, rows = s->budget.rows()](jobs::Store& st) {
        st.set_budget_holds(owner, rows);
    });
}

void log_hold(const jobs::BudgetHold& h, const std::string& provider) {
    spdlog::warn(
        "event=budget_hold budget={} batch={} provider={} limit_usd={} spent_usd={} "
        "in_flight_usd={} next_call_usd={} note={}",
        jobs::to_string(h.kind), q(h.batch), q(provider), usd(h.limit_usd), usd(h.spent_usd),
        usd(h.reserved_usd), h.unpriced ? std::string("unknown") : usd(h.need_usd),
        q(h.unpriced ? "the call has no price, so its worst case is unknown: set the provider's "
                       "prices to dispatch it under a budget"
                     : "its worst case would cross the budget; the jobs stay queued"));
}

// Logs a batch's own budget when the daemon first sees it, or sees it changed.
void note_batch_budgets(const BudgetGate& g, const jobs::BudgetSpend& sp) {
    if (!g.ledger.has_snapshot()) return;  // the first read: nothing changed
    const auto& before = g.ledger.batch_budgets();
    for (const auto& [batch, max] : sp.batch_max_usd) {
        auto it = before.find(batch);
        if (it != before.end() && it->second == max) continue;
        spdlog::info("event=batch_budget batch={} max_usd={} was={}", q(batch), usd(max),
                     it == before.end() ? std::string("none") : usd(it->second));
    }
    for (const auto& [batch, max] : before)
        if (!sp.batch_max_usd.count(batch) && sp.batch_usd.count(batch))
            spdlog::info("event=batch_budget batch={} max_usd=none was={}", q(batch), usd(max));
}

// Batches without open work, hold or call in flight are not read again (a later claim of
// one reads it anew): the set stays as small as the work.
void forget_finished_batches(BudgetGate& g, const jobs::BudgetSpend& sp) {
    g.open_batches = sp.open_batches;
    for (auto it = g.batches.begin(); it != g.batches.end();) {
        const bool keep = sp.open_batches.count(*it) || !sp.batch_usd.count(*it) ||
                          g.holds.count("batch:" + *it) ||
                          g.ledger.reserved(jobs::BudgetKind::batch, *it) > 0;
        it = keep ? std::next(it) : g.batches.erase(it);
    }
}

}  // namespace

bool vendor_batches_reserved(const EngineShared* s) {
    for (const auto& p : s->providers)
        if (p->config.mode == "batch" && !s->budget.vendor_reserved.count(p->config.name))
            return false;
    return true;
}

const BudgetGate::Held* BudgetGate::global_hold() const {
    for (const auto& [key, h] : holds)
        if (h.hold.kind != jobs::BudgetKind::batch) return &h;
    return nullptr;
}

std::vector<std::string> BudgetGate::held_batches() const {
    std::vector<std::string> out;
    for (const auto& [key, h] : holds)
        if (h.hold.kind == jobs::BudgetKind::batch) out.push_back(h.hold.batch);
    return out;
}

std::vector<jobs::BudgetHoldRow> BudgetGate::rows() const {
    std::vector<jobs::BudgetHoldRow> out;
    for (const auto& [key, h] : holds)
        for (const auto& provider : h.providers) {
            jobs::BudgetHoldRow r;
            r.provider = provider;
            r.budget = std::string(jobs::to_string(h.hold.kind));
            r.batch = h.hold.batch;
            r.limit_usd = h.hold.limit_usd;
            r.spent_usd = h.hold.spent_usd + h.hold.reserved_usd;
            if (!h.hold.unpriced) r.need_usd = h.hold.need_usd;
            r.since = h.since;
            out.push_back(std::move(r));
        }
    return out;
}

std::optional<double> worst_case_of(const Config& config, const ProviderConfig& provider,
                                    const jobs::ClaimedRequest& req) {
    const jobs::Price* price = price_of(config, provider, req.model);
    if (!price) return std::nullopt;
    return jobs::worst_case_usd(*price, std::max(req.n - req.images_done, 1),
                                params_of(req.params_json), req.prompt.size(),
                                provider.mode == "batch");
}

Admit budget_admit(EngineShared* s, ProviderRuntime* p, const jobs::ClaimedRequest& req,
                   double now) {
    auto& g = s->budget;
    if (!g.config) return Admit::go;
    // A batch may have a budget of its own (enqueue --budget): its first call waits for a
    // snapshot that read it, whatever the config says.
    if (g.batches.insert(req.batch).second) g.snapshot_wanted = true;
    if (!g.ledger.has_snapshot() || !g.ledger.knows_batch(req.batch)) {
        // The spend is not known yet: read it before the first call.
        g.snapshot_wanted = true;
        asio::co_spawn(s->executor, budget_refresh(s), asio::detached);
        return Admit::wait;
    }
    // Under a budget the open vendor batches are reserved first (woken when they are).
    if (g.enabled() && !vendor_batches_reserved(s)) return Admit::wait;
    const auto worst = worst_case_of(*g.config, p->config, req);
    auto h = g.ledger.check(req.batch, worst, now);
    if (!h) {
        g.ledger.reserve(req.request_id, req.batch, worst.value_or(0));
        return Admit::go;
    }
    auto [it, fresh] = g.holds.try_emplace(h->key());
    it->second.hold = *h;
    if (fresh) it->second.since = now;
    if (it->second.providers.insert(p->config.name).second) {
        log_hold(*h, p->config.name);
        persist(s);
    }
    if (h->kind != jobs::BudgetKind::batch) s->wake_all();  // every lane holds
    return Admit::hold;
}

void budget_recorded(EngineShared* s, std::int64_t request_id, std::optional<double> cost,
                     double finished_at) {
    s->budget.ledger.recorded(request_id, cost, finished_at);
    budget_recheck(s);
}

void budget_release(EngineShared* s, std::int64_t request_id) {
    s->budget.ledger.release(request_id);
    budget_recheck(s);
}

void budget_recheck(EngineShared* s) {
    auto& g = s->budget;
    if (g.holds.empty()) return;
    const double now = jobs::unix_now();
    bool changed = false;
    for (auto it = g.holds.begin(); it != g.holds.end();) {
        const auto& old = it->second.hold;
        const std::optional<double> need =
            old.unpriced ? std::nullopt : std::optional<double>(old.need_usd);
        auto still = g.ledger.check_one(old.kind, old.batch, need, now);
        if (still) {
            it->second.hold = *still;
            ++it;
            continue;
        }
        const auto limit = g.ledger.limit(old.kind, old.batch);
        spdlog::info(
            "event=budget_resumed budget={} batch={} limit_usd={} spent_usd={} held_s={:.0f}",
            jobs::to_string(old.kind), q(old.batch), limit ? usd(*limit) : std::string("none"),
            usd(g.ledger.spent(old.kind, old.batch, now)), now - it->second.since);
        it = g.holds.erase(it);
        changed = true;
    }
    if (!changed) return;
    persist(s);
    s->wake_all();
}

asio::awaitable<void> budget_refresh(EngineShared* s) {
    auto& g = s->budget;
    if (g.snapshot_pending) co_return;  // read even without a budget: a batch may have its own
    g.snapshot_pending = true;
    const bool waited = g.snapshot_wanted;  // calls wait for this read
    g.snapshot_wanted = false;
    const double day = jobs::budget_day_start(g.ledger.config(), jobs::unix_now());
    std::vector<std::string> batches(g.batches.begin(), g.batches.end());
    try {
        // Commits whose results came back before this read's are in it; the others are
        // recorded after it (one DB thread, results posted in order).
        // Without a budget in the config only the batches' own budgets (and their batches'
        // spend) are read: no sum over the day's or the run's attempts every poll.
        const auto& cfg = g.ledger.config();
        const jobs::BudgetRead what{cfg.any(), cfg.any(), cfg.max_usd_per_batch.has_value()};
        auto read = [owner = s->owner, day, batches, what](jobs::Store& st) {
            return st.budget_spend(owner, day, batches, what);
        };
        auto sp = co_await s->db.call<jobs::BudgetSpend>(std::move(read));
        note_batch_budgets(g, sp);
        g.ledger.snapshot(day, sp.day_usd, sp.run_usd, sp.batch_usd, sp.batch_max_usd);
        forget_finished_batches(g, sp);
    } catch (const std::exception& e) {
        spdlog::error("event=db_error op=budget_spend error={}", q(e.what()));
    }
    g.snapshot_pending = false;
    budget_recheck(s);
    if (waited) s->wake_all();  // calls waiting for the spend of their batch
    if (g.snapshot_wanted) asio::co_spawn(s->executor, budget_refresh(s), asio::detached);
}

void budget_reconfigure(EngineShared* s, const jobs::BudgetConfig& c) {
    auto& g = s->budget;
    auto show = [](std::optional<double> v) { return v ? usd(*v) : std::string("none"); };
    spdlog::info("event=budget_reloaded max_usd_per_batch={} max_usd_per_day={} max_usd_per_run={}",
                 show(c.max_usd_per_batch), show(c.max_usd_per_day), show(c.max_usd_per_run));
    const bool was = g.enabled();
    g.ledger.configure(c);
    if (!g.enabled()) {
        if (!g.holds.empty()) {
            for (const auto& [key, h] : g.holds)
                spdlog::info("event=budget_resumed budget={} batch={} limit_usd=none",
                             jobs::to_string(h.hold.kind), q(h.hold.batch));
            g.holds.clear();
            persist(s);
        }
        s->wake_all();
        return;
    }
    if (!was) {
        asio::co_spawn(s->executor, budget_refresh(s), asio::detached);
        return;
    }
    budget_recheck(s);
    s->wake_all();
}

// ---- vendor batches (batch-mode providers) ----

namespace {

// A budget holds a provider's next line: one hold per budget, logged and written once per
// provider, as budget_admit does for a direct call.
void note_hold(EngineShared* s, ProviderRuntime* p, const jobs::BudgetHold& h, double now) {
    auto [it, fresh] = s->budget.holds.try_emplace(h.key());
    it->second.hold = h;
    if (fresh) it->second.since = now;
    if (it->second.providers.insert(p->config.name).second) {
        log_hold(h, p->config.name);
        persist(s);
    }
    if (h.kind != jobs::BudgetKind::batch) s->wake_all();  // every lane holds
}

}  // namespace

asio::awaitable<bool> budget_know(EngineShared* s, std::vector<std::string> batches) {
    auto& g = s->budget;
    // Every batch's spend and own budget (enqueue --budget) is read, whatever the config
    // says: a batch may have a budget of its own.
    auto known = [&] {
        if (!g.ledger.has_snapshot()) return false;
        return std::all_of(batches.begin(), batches.end(),
                           [&](const std::string& b) { return g.ledger.knows_batch(b); });
    };
    while (g.config && !known()) {
        if (s->stopping) co_return false;
        for (const auto& b : batches)
            if (g.batches.insert(b).second) g.snapshot_wanted = true;
        if (!g.snapshot_pending) {
            g.snapshot_wanted = true;
            co_await budget_refresh(s);
            if (known()) break;
        }
        // A read under way (or one that failed): look again shortly.
        asio::steady_timer wait(s->executor, std::chrono::milliseconds(50));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return !s->stopping;
}

std::vector<bool> budget_admit_lines(EngineShared* s, ProviderRuntime* p,
                                     const std::vector<jobs::ClaimedRequest>& lines, double now) {
    auto& g = s->budget;
    if (!g.enabled() || !g.config) return std::vector<bool>(lines.size(), true);
    std::vector<jobs::BudgetLine> in;
    in.reserve(lines.size());
    for (const auto& req : lines)
        in.push_back({req.request_id, req.batch, worst_case_of(*g.config, p->config, req)});
    std::vector<jobs::BudgetHold> holds;
    auto admitted = g.ledger.admit(in, now, holds);
    for (const auto& h : holds) note_hold(s, p, h, now);
    return admitted;
}

double budget_reserve_lines(EngineShared* s, ProviderRuntime* p,
                            const std::vector<jobs::ClaimedRequest>& lines, int* unpriced) {
    auto& g = s->budget;
    if (!g.config) return 0;
    double usd = 0;
    for (const auto& req : lines) {
        const auto worst = worst_case_of(*g.config, p->config, req);
        if (!worst) ++*unpriced;
        g.ledger.reserve(req.request_id, req.batch, worst.value_or(0));
        usd += worst.value_or(0);
    }
    return usd;
}

void budget_line_ended(EngineShared* s, std::int64_t request_id, const std::string& batch,
                       bool reserved, bool recorded, std::optional<double> cost,
                       double finished_at) {
    auto& ledger = s->budget.ledger;
    const std::optional<double> held = reserved ? ledger.release(request_id) : std::nullopt;
    if (!recorded) return;
    // A billed line of unknown cost counts at its worst case.
    if (const auto usd = cost ? cost : held) ledger.line_recorded(batch, *usd, finished_at);
}

void budget_clear(EngineShared* s) {
    if (s->budget.holds.empty()) return;
    s->budget.holds.clear();
    persist(s);
}

std::string render_budget_metrics(const BudgetGate& g, double now) {
    std::string out;
    auto head = [&](const char* name, const char* help) {
        out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
    };
    const auto& cfg = g.ledger.config();
    auto held_batch = [&](const std::string& b) { return g.holds.count("batch:" + b) > 0; };
    // Per batch: those under a batch budget (their own or the config's) with open work or
    // held, so that the series do not grow with the batches of the past.
    std::set<std::string> batches(g.batches);
    for (const auto& [b, max] : g.ledger.batch_budgets()) batches.insert(b);
    std::vector<std::pair<std::string, double>> capped;  // (label, limit)
    for (const auto& b : batches)
        if (auto limit = g.ledger.limit(jobs::BudgetKind::batch, b))
            if (g.open_batches.count(b) || held_batch(b)) capped.emplace_back(b, *limit);
    auto batch_label = [](const std::string& b) {
        return "budget=\"batch\",batch=\"" + metric_label_value(b) + "\"";
    };

    head("imgbatch_budget_held",
         "1 while the budget holds dispatching (a call's worst case would cross it), by budget: "
         "batch (any batch, and each batch under a budget with open work), day, run.");
    for (const auto k : jobs::kBudgetKinds) {
        bool held = false;
        for (const auto& [key, h] : g.holds) held = held || h.hold.kind == k;
        out += fmt::format("imgbatch_budget_held{{budget=\"{}\"}} {}\n", jobs::to_string(k),
                           held ? 1 : 0);
    }
    for (const auto& [b, limit] : capped)
        out +=
            fmt::format("imgbatch_budget_held{{{}}} {}\n", batch_label(b), held_batch(b) ? 1 : 0);
    head("imgbatch_budget_spent_usd",
         "USD billed that counts against the budget: today's, this run's, and each batch's "
         "(batches under a budget with open work or held).");
    for (const auto k : {jobs::BudgetKind::day, jobs::BudgetKind::run})
        out += fmt::format("imgbatch_budget_spent_usd{{budget=\"{}\"}} {}\n", jobs::to_string(k),
                           g.ledger.spent(k, "", now));
    for (const auto& [b, limit] : capped)
        out += fmt::format("imgbatch_budget_spent_usd{{{}}} {}\n", batch_label(b),
                           g.ledger.spent(jobs::BudgetKind::batch, b, now));
    head("imgbatch_budget_limit_usd",
         "The budget in USD when set: budget.max_usd_per_* of the config, and each batch's "
         "(its own from enqueue --budget, else max_usd_per_batch).");
    for (const auto k : jobs::kBudgetKinds)
        if (auto limit = cfg.limit(k))
            out += fmt::format("imgbatch_budget_limit_usd{{budget=\"{}\"}} {}\n",
                               jobs::to_string(k), *limit);
    for (const auto& [b, limit] : capped)
        out += fmt::format("imgbatch_budget_limit_usd{{{}}} {}\n", batch_label(b), limit);
    return out;
}

}  // namespace imgbatch::daemon
