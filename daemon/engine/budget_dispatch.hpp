#pragma once
// The budget steps of the dispatch loop and of an attempt (see budget_gate.hpp).
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// ---- vendor batches (batch-mode providers, README "Budgets") ----
// A vendor batch's lines are billed when its results are recorded, up to 24 h later: each line
// is reserved at its worst case at the batch price from its admission until it is recorded.

// Whether every batch-mode provider has its open vendor batches reserved (after a start, or a
// budget set by SIGHUP, its runner rebuilds them first): direct calls wait until then.
bool vendor_batches_reserved(const EngineShared* s);

// Waits until the spend the budgets count is known (for the batch budget, of these batches
// too). False when the daemon stops first.
boost::asio::awaitable<bool> budget_know(EngineShared* s, std::vector<std::string> batches);

// The lines of a chunk about to be submitted, in its order: whether each one is admitted
// (jobs::BudgetLedger::admit: reserved at its worst case at the batch price). A budget that
// holds the others holds as for a direct call (lane `budget`, event=budget_hold, metrics).
// Every line is admitted, nothing reserved, when no budget is set. The spend must be known
// (budget_know).
std::vector<bool> budget_admit_lines(EngineShared* s, ProviderRuntime* p,
                                     const std::vector<jobs::ClaimedRequest>& lines, double now);

// Lines of a vendor batch already (or perhaps) at the vendor, reserved whatever the budgets say
// (after a start, or a budget set by SIGHUP). Returns the USD reserved; lines without a price
// (reserved at 0) are counted in *unpriced.
double budget_reserve_lines(EngineShared* s, ProviderRuntime* p,
                            const std::vector<jobs::ClaimedRequest>& lines, int* unpriced);

// A line of a vendor batch ended. reserved: it holds a reservation of this daemon (under its
// request id). recorded: its attempt was recorded with cost (unset: unknown, its worst case
// counts) at finished_at; else (returned to the queue, a stale result) its reservation goes.
// No re-check of the holds: call budget_recheck once after a group of lines.
void budget_line_ended(EngineShared* s, std::int64_t request_id, const std::string& batch,
                       bool reserved, bool recorded, std::optional<double> cost,
                       double finished_at);

// The daemon stops: its holds are removed from the database.
void budget_clear(EngineShared* s);

}  // namespace imgbatch::daemon
