#include "jobs/state.hpp"

#include <array>
#include <utility>

namespace imgbatch::jobs {
namespace {
constexpr std::array<std::pair<JobState, std::string_view>, 8> kNames{{
    {JobState::pending, "pending"},
    {JobState::queued, "queued"},
    {JobState::running, "running"},
    {JobState::succeeded, "succeeded"},
    {JobState::failed, "failed"},
    {JobState::blocked, "blocked"},
    {JobState::cancelled, "cancelled"},
    {JobState::rejected, "rejected"},
}};
}  // namespace

std::string_view to_string(JobState s) {
    for (const auto& [state, name] : kNames)
        if (state == s) return name;
    return "unknown";
}

std::optional<JobState> job_state_from(std::string_view name) {
    for (const auto& [state, n] : kNames)
        if (n == name) return state;
    return std::nullopt;
}

std::vector<std::string> job_state_names() {
    std::vector<std::string> names;
    for (const auto& [state, name] : kNames) names.emplace_back(name);
    return names;
}

bool is_final(JobState s) {
    return s == JobState::succeeded || s == JobState::failed || s == JobState::blocked ||
           s == JobState::cancelled || s == JobState::rejected;
}

}  // namespace imgbatch::jobs
