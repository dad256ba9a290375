#pragma once
// What the batch runner reads of any vendor's batch API (OpenAI Batch, Gemini Batch Mode):
// a batch's state and counts, a page of the vendor's list, one line of a result file.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/net/http.hpp"

namespace imgbatch::daemon::batch_types {

// A vendor batch, as far as imgbatch reads it.
struct Batch {
    std::string id, status, input_file_id, output_file_id, error_file_id;
    std::int64_t created_at = 0, total = 0, completed = 0, failed = 0;
    std::string database, chunk;  // the database instance and chunk it was created for
    // The vendor's error: "code: message" of the first, and the 1-based input lines named.
    std::string error;
    std::vector<std::int64_t> error_lines;
};

struct BatchPage {
    std::vector<Batch> batches;
    bool has_more = false;
    std::string last_id;  // where the next page starts (OpenAI: after; Gemini: pageToken)
};

// One line of a result file: the custom_id and either the response (status and body, as a
// direct call's answer) or the line's error (code and message).
struct Line {
    std::string custom_id;
    std::optional<HttpResponse> response;
    std::string error_code, error_message;
};

}  // namespace imgbatch::daemon::batch_types
