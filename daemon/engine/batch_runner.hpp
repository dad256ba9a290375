#pragma once
// The batch runner of a provider in "mode": "batch": gathers its queued requests into vendor
// batches (recorded before anything is created at the vendor), uploads and creates them,
// polls them with backoff, adopts those a crash left unrecorded, and records every line of
// their output through the same completion path as a direct call (images staged by the output
// writer, errors classified and decided by the retry policy, one attempt per line).
#include <boost/asio/awaitable.hpp>
#include <string>

#include "daemon/engine/dispatcher.hpp"

namespace imgbatch::daemon {

// Runs until shared->stopping, in place of dispatch_loop for that provider.
boost::asio::awaitable<void> batch_loop(EngineShared* shared, ProviderRuntime* provider);

// How long the requests of a vendor batch stay leased to it: its 24 h window, the time the
// vendor keeps its output (30 days) to come back for it after a long outage.
inline constexpr double kVendorBatchLeaseS = 30 * 86400.0;

// Prometheus text for the vendor batches of this daemon's batch runners: open ones by
// provider and status (gauge), created, adopted and finished since start (counters).
std::string render_vendor_batch_metrics();

}  // namespace imgbatch::daemon
