#pragma once
// Validation of a job against the catalog and the configured providers.
#include <optional>
#include <string>
#include <vector>

#include "jobs/catalog.hpp"
#include "jobs/job_spec.hpp"

namespace imgbatch::jobs {

// What validation needs to know of a configured provider.
struct ProviderInfo {
    std::string name;
    std::string api;                  // "openai", "google", "openai-chat"
    std::vector<std::string> models;  // models it serves
    int max_images_per_request = 0;   // 0: the model's maximum
};

struct Validated {
    std::string provider;  // resolved provider name
    int per_request = 1;   // images per request: min(model max, provider max)
};

// Checks the job: model known, provider known and serving the model (or the first provider
// serving it is chosen), n >= 1, prompt non-empty and within the model's limit, every
// parameter allowed for the model. On failure returns the error as a message that names the
// field and the allowed values; nothing is silently changed.
struct ValidationResult {
    std::optional<Validated> ok;
    std::string error;  // set when !ok
};
ValidationResult validate_job(const JobSpec& job, const Catalog& catalog,
                              const std::vector<ProviderInfo>& providers);

}  // namespace imgbatch::jobs
