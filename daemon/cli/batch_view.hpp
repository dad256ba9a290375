#pragma once
// Open vendor batches (batch mode) as `status`, `providers` and `show` print them.
#include <boost/json/array.hpp>
#include <string>
#include <vector>

#include "jobs/vendor_batch.hpp"

namespace imgbatch::daemon::cli {

// "vendor batches:" and a table (id, provider, vendor id, state, vendor status, counts, age);
// "" when there is none.
std::string vendor_batches_text(const std::vector<jobs::VendorBatchRow>& rows, double now);
boost::json::array vendor_batches_json(const std::vector<jobs::VendorBatchRow>& rows, double now);
// "vendor batches of the attempts:" and a table; "" when the job has none.
std::string attempt_batches_text(const std::vector<jobs::AttemptVendorBatch>& rows);
boost::json::array attempt_batches_json(const std::vector<jobs::AttemptVendorBatch>& rows);

}  // namespace imgbatch::daemon::cli
