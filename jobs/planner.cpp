#include "jobs/planner.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace imgbatch::jobs {

std::vector<PlannedRequest> plan_requests(int n, int per_request) {
    if (n < 1)
        throw std::invalid_argument("plan_requests: n must be >= 1, got " + std::to_string(n));
    if (per_request < 1)
        throw std::invalid_argument("plan_requests: per_request must be >= 1, got " +
                                    std::to_string(per_request));
    std::vector<PlannedRequest> plan;
    plan.reserve(static_cast<std::size_t>((n + per_request - 1) / per_request));
    for (int seq = 0, first = 0; first < n; ++seq, first += per_request)
        plan.push_back({seq, first, std::min(per_request, n - first)});
    return plan;
}

}  // namespace imgbatch::jobs
