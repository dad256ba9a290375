#pragma once
// Spend and projected cost as the commands show them (status, export, report, enqueue
// --estimate): text for people, JSON for programs.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

// A USD amount as JSON (rounded to 1e-9, no float noise), null when unknown.
boost::json::value usd_json(std::optional<double> usd);
// A USD amount as a CSV cell ("" when unknown).
std::string usd_cell(std::optional<double> usd);

// {"usd", "billed_attempts", "unpriced_attempts", "estimated_attempts"}
boost::json::object spend_json(const jobs::Spend& s);
// {"worst_usd", "typical_usd", "requests", "unpriced_requests"}
boost::json::object projection_json(const jobs::QueuedCost& q);

// Attempts (or requests) of one batch.
jobs::SpendFilter batch_filter(const std::string& batch);

// "spend: $1.23 (12 billed attempts, 1 of unknown cost)\n"
// "projected: $4.56 worst case, $2.10 typical for 40 requests queued or running\n"
std::string spend_text(const jobs::Spend& s, const jobs::QueuedCost& q);

}  // namespace imgbatch::daemon::cli
