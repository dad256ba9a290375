#pragma once
// What the simulator's two batch APIs (batch.cpp: OpenAI, gemini_batch.cpp: Gemini Batch Mode)
// share: a batch's clock (queued, running, due; the share of lines a cancel keeps), the JSONL
// input's lines, the prompt directives' tokens, and the counters of /sim/stats with the
// once-only directives (#createlost, #expire).
#include <boost/json/object.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/sim/state.hpp"

namespace imgbatch::daemon::sim_batch {

// Milliseconds of the steady clock: a batch's age.
std::int64_t steady_ms();

// Where a batch created at created_ms stands, with --batch-ms batch_ms: queued for the first
// quarter, running until batch_ms, then due (its lines run). A cancel makes it due at once.
enum class Phase { queued, running, due };
Phase phase(std::int64_t created_ms, int batch_ms, bool cancel);

// How many of n lines a batch runs: all, or when cancelled, their share of the batch's time
// until the cancel.
std::size_t lines_to_run(std::size_t n, bool cancel, std::int64_t created_ms,
                         std::int64_t cancel_ms, int batch_ms);

// The non-empty lines of a JSONL text, in order.
std::vector<std::string_view> jsonl_lines(std::string_view data);

// A directive token in a prompt, also when the prompt is inside JSON text (a quote may end it).
bool has_token(std::string_view text, std::string_view token);

// The answer of a create whose answer is lost: nothing until the client gives up.
SimAnswer held();
// An answer with status, Content-Type content_type and body.
SimAnswer answer(int status, std::string_view content_type, std::string body);
// A stored file's bytes (200, application/octet-stream).
SimAnswer file_answer(std::string bytes);

// The counters of one batch API and its once-only directives.
struct BatchBook {
    std::set<std::string> lost_creates;   // inputs whose create answer was lost once
    std::set<std::string> expired_lines;  // #expire lines that expired a batch (once each)
    std::uint64_t created = 0, lines = 0, lost = 0;

    // Counts a create; true when its answer is to be lost: createlost (the input has
    // #createlost) and the first time for this input (key).
    bool create(bool createlost, const std::string& key);
    // True the first time this line text expires a batch.
    bool expires(const std::string& line) { return expired_lines.insert(line).second; }
    // {"created", "lines", "creates_lost"}
    boost::json::object stats() const;
};

}  // namespace imgbatch::daemon::sim_batch
