#pragma once
// The budgets in the engine (README "Budgets"): before a call starts, its worst case is
// checked against every budget of the config (jobs::BudgetLedger); a call that would cross one
// is not started (its request goes back to the queue) and the budget holds: the provider's
// lane shows `budget`, dispatching of what the budget covers stops until spend, a new day or
// a raised budget (SIGHUP) lets calls start again. Lives on the network thread.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "jobs/budget.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

struct BudgetGate {
    const Config* config = nullptr;  // prices (catalog and providers' prices)
    jobs::BudgetLedger ledger;
    // Holds by key ("day", "run", "batch:NAME"), and the providers each one stopped.
    struct Held {
        jobs::BudgetHold hold;
        std::set<std::string> providers;
        double since = 0;
    };
    std::map<std::string, Held> holds;
    // Batches whose spend the snapshots read (those this daemon claimed from that still have
    // open work, are held or have calls in flight).
    std::set<std::string> batches;
    // Of the batches the last snapshot read, those with open work (pending, queued, running).
    std::set<std::string> open_batches;
    bool snapshot_pending = false;
    bool snapshot_wanted = false;  // a call waits for a snapshot that knows its batch
    // Batch-mode providers whose open vendor batches are reserved (their runner rebuilt the
    // reservations from the database): direct calls wait for every one of them.
    std::set<std::string> vendor_reserved;

    // A budget of the config, or a batch's own (enqueue --budget) with open work.
    bool enabled() const { return ledger.any(); }
    // A day or run budget holds: nothing starts.
    const Held* global_hold() const;
    // Batches held by their batch budget (claims skip them).
    std::vector<std::string> held_batches() const;
    // The rows for the budget_holds table.
    std::vector<jobs::BudgetHoldRow> rows() const;
};

// The worst case of a claimed request at its provider (unset: no price).
std::optional<double> worst_case_of(const Config& config, const ProviderConfig& provider,
                                    const jobs::ClaimedRequest& req);

// The Prometheus series imgbatch_budget_held, _spent_usd and _limit_usd: per budget, and per
// batch (label batch) for the batches under a batch budget that have open work or are held.
std::string render_budget_metrics(const BudgetGate& gate, double now);

}  // namespace imgbatch::daemon
