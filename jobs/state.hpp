#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgbatch::jobs {

// Job states (jobs.state). pending -> queued -> running -> succeeded | failed | blocked |
// cancelled; pending -> rejected when validation fails.
enum class JobState { pending, queued, running, succeeded, failed, blocked, cancelled, rejected };

std::string_view to_string(JobState s);
std::optional<JobState> job_state_from(std::string_view name);
bool is_final(JobState s);
// Every state's name, in lifecycle order.
std::vector<std::string> job_state_names();

}  // namespace imgbatch::jobs
