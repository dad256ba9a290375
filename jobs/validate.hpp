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
    // The vendor's own API (api.openai.com, generativelanguage.googleapis.com,
    // *aiplatform.googleapis.com): a retired model is refused there. Relays keep old names
    // alive, so for them a retired model is only warned about.
    bool vendor = false;
};

struct Validated {
    std::string provider;  // resolved provider name
    int per_request = 1;   // images per request: min(model max, provider max)
};

// Checks the job: model known, provider known and serving the model (or the first provider
// serving it is chosen), n >= 1, prompt non-empty and within the model's limit, every
// parameter allowed for the model. On failure returns the error as a message that names the
// field and the allowed values; nothing is silently changed.
// Lifecycle (lifecycle_on today, YYYY-MM-DD; "" means today in UTC): a retired model is
// refused on a vendor provider ("model X was retired on DATE; use Y", retired set) and warned
// about on a relay; a deprecated model is warned about ("model X is deprecated, shuts down
// DATE; use Y"). A warning does not stop the job.
struct ValidationResult {
    std::optional<Validated> ok;
    std::string error;     // set when !ok
    bool retired = false;  // the error is the model's retirement
    std::string warning;   // the model's lifecycle, when it is not active
};
ValidationResult validate_job(const JobSpec& job, const Catalog& catalog,
                              const std::vector<ProviderInfo>& providers,
                              std::string_view today = {});

// The lifecycle message for a model that is not active on `today` ("" when it is active).
std::string lifecycle_message(const ModelInfo& m, const Lifecycle& l);

}  // namespace imgbatch::jobs
