#pragma once
// The budget steps of the dispatch loop and of an attempt (see budget_gate.hpp).
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>

#include "daemon/engine/dispatcher.hpp"

namespace imgbatch::daemon {

enum class Admit {
    go,    // start it: its worst case is reserved
    hold,  // a budget holds it: it (and what else the hold covers) went back to the queue
    wait,  // the spend of its batch is being read: try again when it is in
};

// Whether the claimed request at the front of p->ready may start at now.
Admit budget_admit(EngineShared* s, ProviderRuntime* p, const jobs::ClaimedRequest& req,
                   double now);

// The attempt of request_id was recorded with cost (unset: unknown); its reservation becomes
// its cost. Re-checks the holds.
void budget_recorded(EngineShared* s, std::int64_t request_id, std::optional<double> cost,
                     double finished_at);
// The attempt ended unrecorded (given back, abandoned, stale): its reservation goes.
void budget_release(EngineShared* s, std::int64_t request_id);

// Reads the spend the budgets count from the database, then re-checks the holds (a new day,
// spend by other daemons). One at a time.
boost::asio::awaitable<void> budget_refresh(EngineShared* s);

// New budgets (SIGHUP): logged, applied, holds re-checked.
void budget_reconfigure(EngineShared* s, const jobs::BudgetConfig& c);

// Ends every hold that the budgets no longer need (logged budget_resumed) and wakes the lanes.
void budget_recheck(EngineShared* s);

// Whether a batch-mode provider may open no vendor batch: under any budget (a vendor batch's
// calls are billed when its results come back, hours later; they are not reserved). Logged once
// per provider.
bool budget_blocks_vendor_batches(const EngineShared* s, const ProviderRuntime* p);

// The daemon stops: its holds are removed from the database.
void budget_clear(EngineShared* s);

}  // namespace imgbatch::daemon
