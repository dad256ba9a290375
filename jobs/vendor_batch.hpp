#pragma once
// Vendor batches (providers in "mode": "batch"): the rows of schema/005_vendor_batches.sql.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace imgbatch::jobs {

// Local states of a vendor batch (vendor_batches.state).
inline constexpr std::string_view kVbPreparing = "preparing";
inline constexpr std::string_view kVbUploaded = "uploaded";
inline constexpr std::string_view kVbSubmitted = "submitted";
inline constexpr std::string_view kVbApplying = "applying";
inline constexpr std::string_view kVbDone = "done";
inline constexpr std::string_view kVbAbandoned = "abandoned";

struct VendorBatchRow {
    std::int64_t id = 0;
    std::string provider, chunk, state, vendor_id, vendor_status;
    std::int64_t requests = 0, completed = 0, failed = 0, applied = 0, bytes = 0;
    std::string input_file_id, output_file_id, error_file_id, message;
    double created_at = 0, updated_at = 0, finished_at = 0;
};

// The lease owner of the requests of vendor batch id: "vbatch:<id>". Such leases belong to
// the vendor batch, not to a daemon: a daemon's restart leaves them as they are.
std::string vendor_batch_owner(std::int64_t id);
// The vendor batch id of such an owner, or nullopt for a daemon's owner id.
std::optional<std::int64_t> vendor_batch_of_owner(std::string_view owner);

// A line's custom_id: "r<request id>-a<attempt_no>"; parse_custom_id reads it back.
std::string custom_id(std::int64_t request_id, int attempt_no);
bool parse_custom_id(std::string_view text, std::int64_t& request_id, int& attempt_no);

// Which vendor batch an attempt went in (for `show JOB`).
struct AttemptVendorBatch {
    std::int64_t request_id = 0;
    int attempt_no = 0;
    std::int64_t vendor_batch_id = 0;
    std::string vendor_id, state, vendor_status;
};

}  // namespace imgbatch::jobs
