#include "daemon/cli/batch_view.hpp"

#include <boost/json/object.hpp>

#include "daemon/cli/format.hpp"

namespace imgbatch::daemon::cli {
namespace json = boost::json;

namespace {
std::string or_dash(const std::string& s) {
    return s.empty() ? std::string("-") : s;
}
}  // namespace

std::string vendor_batches_text(const std::vector<jobs::VendorBatchRow>& rows, double now) {
    if (rows.empty()) return {};
    std::vector<std::vector<std::string>> table{{"VBATCH", "PROVIDER", "VENDOR_ID", "STATE",
                                                 "VENDOR_STATUS", "REQUESTS", "COMPLETED", "FAILED",
                                                 "AGE"}};
    for (const auto& r : rows)
        table.push_back({std::to_string(r.id), r.provider, or_dash(r.vendor_id), r.state,
                         or_dash(r.vendor_status), std::to_string(r.requests),
                         std::to_string(r.completed), std::to_string(r.failed),
                         format_duration(std::max(0.0, now - r.created_at))});
    return "\nvendor batches:\n" + render_table(table);
}

json::array vendor_batches_json(const std::vector<jobs::VendorBatchRow>& rows, double now) {
    json::array arr;
    for (const auto& r : rows)
        arr.push_back(json::object{{"id", r.id},
                                   {"provider", r.provider},
                                   {"chunk", r.chunk},
                                   {"vendor_id", string_or_null(r.vendor_id)},
                                   {"state", r.state},
                                   {"vendor_status", string_or_null(r.vendor_status)},
                                   {"requests", r.requests},
                                   {"completed", r.completed},
                                   {"failed", r.failed},
                                   {"applied", r.applied},
                                   {"created_at", r.created_at},
                                   {"age_s", json_number(std::max(0.0, now - r.created_at))}});
    return arr;
}

std::string attempt_batches_text(const std::vector<jobs::AttemptVendorBatch>& rows) {
    if (rows.empty()) return {};
    std::vector<std::vector<std::string>> table{
        {"REQ", "NO", "VBATCH", "VENDOR_ID", "STATE", "VENDOR_STATUS"}};
    for (const auto& r : rows)
        table.push_back({std::to_string(r.request_id), std::to_string(r.attempt_no),
                         std::to_string(r.vendor_batch_id), or_dash(r.vendor_id), r.state,
                         or_dash(r.vendor_status)});
    return "\nvendor batches of the attempts:\n" + render_table(table);
}

json::array attempt_batches_json(const std::vector<jobs::AttemptVendorBatch>& rows) {
    json::array arr;
    for (const auto& r : rows)
        arr.push_back(json::object{{"request_id", r.request_id},
                                   {"attempt_no", r.attempt_no},
                                   {"vendor_batch", r.vendor_batch_id},
                                   {"vendor_id", string_or_null(r.vendor_id)},
                                   {"state", r.state},
                                   {"vendor_status", string_or_null(r.vendor_status)}});
    return arr;
}

}  // namespace imgbatch::daemon::cli
