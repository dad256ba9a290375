#pragma once
// Prices as a configuration sets them: the projected cost of requests by provider, for
// `status` (what is queued) and `enqueue --estimate` (a file not yet enqueued).
#include <boost/json/object.hpp>
#include <cstddef>
#include <string_view>

#include "daemon/config.hpp"
#include "jobs/pricing.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

// The worst case and typical cost of one request of n images of model at the provider named
// (its "prices", else the catalog's; batch price in "mode": "batch"). Unset when the provider
// is not configured or nothing prices the model there.
jobs::Projection project_request(const Config& config, std::string_view provider,
                                 std::string_view model, const boost::json::object& params, int n,
                                 std::size_t prompt_bytes);

// Store::queued_cost's pricer for config.
jobs::QueuedPricer queued_pricer(const Config& config);

// Dollars for people: "$0.0421", "$12.30", "$1,234.50"; amounts under a cent keep 4 decimals.
std::string format_usd(double usd);

}  // namespace imgbatch::daemon
