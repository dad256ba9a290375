#pragma once
// Splitting a job into requests.
#include <vector>

namespace imgbatch::jobs {

struct PlannedRequest {
    int seq = 0;          // 0-based
    int first_index = 0;  // output index of the request's first image
    int n = 0;            // images asked
};

// ceil(n / per_request) requests, each asking for at most per_request images, the last one
// for the remainder. n >= 1 and per_request >= 1 (else std::invalid_argument).
std::vector<PlannedRequest> plan_requests(int n, int per_request);

}  // namespace imgbatch::jobs
