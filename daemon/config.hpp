#pragma once
// The configuration file (JSON; comments and trailing commas allowed) and API keys.
#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/output_template.hpp"
#include "jobs/budget.hpp"
#include "jobs/catalog.hpp"
#include "jobs/retry_policy.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::daemon {

// The exit code of a configuration error: EX_CONFIG of sysexits.h. The unit does not restart
// on it (RestartPreventExitStatus=78): the same configuration would fail again.
inline constexpr int kExitConfig = 78;

// A configuration problem: the message names the file and the field. Exit code kExitConfig.
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ProviderConfig {
    std::string name;
    std::string api;       // "openai", "google", "openai-chat"
    std::string base_url;  // ends in /v1 (openai, openai-chat) or /v1beta (google)
    std::string api_key_env;
    std::string api_key_file;
    // api_key_command: the program (argv) whose standard output, trimmed, is the key or token.
    // A string in the config is run as {"/bin/sh", "-c", string}. Empty: no command.
    std::vector<std::string> api_key_command;
    // With api_key_command: the command runs again when the key is this old (0: only after a
    // 401), and is killed after api_key_command_timeout_s.
    double api_key_refresh_s = 0;
    double api_key_command_timeout_s = 30;
    std::vector<std::string> models;
    int max_concurrency = 4;
    double requests_per_minute = 0;  // 0: unlimited
    double images_per_minute = 0;    // 0: unlimited
    double timeout_s = 300;          // response deadline of one call
    double connect_timeout_s = 30;   // connect + TLS deadline
    int max_images_per_request = 0;  // 0: the model's maximum
    std::size_t max_response_bytes = 512u << 20;
    // google, gemini: "x-goog-api-key" (default) or "bearer" (the default for Vertex AI hosts,
    // *aiplatform.googleapis.com); others always bearer.
    std::string auth;
    // google: the parameters key that image_size maps to ("sampleImageSize"; new-api relays
    // read "imageSize").
    std::string image_size_key = "sampleImageSize";
    std::map<std::string, std::string> headers;  // extra request headers

    // "direct" (default): one HTTP call per request. "batch" (openai, gemini): the requests go
    // to the vendor's batch API in vendor batches (see README "Batch mode").
    std::string mode = "direct";
    int batch_max_requests = 50'000;           // lines per vendor batch (vendor cap 50,000)
    std::size_t batch_max_bytes = 200u << 20;  // input file size (vendor cap 200 MB)
    double batch_poll_s = 30;                  // first poll after create; grows 1.5x
    double batch_poll_max_s = 600;             // longest wait between polls
    int batch_max_open = 10;                   // vendor batches open at once

    // "prices": what this provider charges, per model ("*": every model), replacing the
    // catalog's price of the model (README "Prices and spend").
    jobs::ProviderPrices prices;
    // gemini: "auto" (inline under 20 MB, else an uploaded file), "inline" or "file".
    std::string batch_input = "auto";
    // batch mode: the name of a provider in "mode": "direct" that takes the lines to retry: a
    // line that failed in a vendor batch and is to be tried again goes back to the queue of
    // that provider (when it serves the model) as a direct call, within the same attempt
    // budget. Empty: retried in a later vendor batch.
    std::string batch_retry_direct;
};
inline constexpr int kVendorBatchMaxRequests = 50'000;
inline constexpr std::size_t kVendorBatchMaxBytes = 200u << 20;

struct Config {
    std::string source;  // file it was read from, or "" for defaults
    std::string database = "imgbatch.db";
    std::string output_dir = "out";
    jobs::RetryConfig retry;
    // On a stop, calls in flight may finish within this many seconds. Unset ("auto", the
    // default): as long as the slowest provider's call may take (auto_shutdown_grace_s).
    std::optional<double> shutdown_grace_s;
    std::string metrics_listen;  // "host:port", empty: off
    double poll_interval_s = 1.0;
    std::vector<ProviderConfig> providers;
    // A catalog file that replaces the built-in catalog, resolved against the config file's
    // directory ("" for the built-in one).
    std::string catalog_file;
    boost::json::object models;  // catalog overrides/additions (jobs::Catalog::apply_config)
    jobs::Catalog catalog = jobs::Catalog::builtin();  // with the overrides applied
    // File names from a template (empty: {batch}/{key or job-<id>}-{index}), and a JSON
    // sidecar beside each image (see "Output files" in the README).
    NameTemplate output_name;
    bool sidecar = false;
    // "budget": spending limits per batch, per day and per run (README "Budgets").
    jobs::BudgetConfig budget;

    const ProviderConfig* provider(std::string_view name) const;
    std::vector<jobs::ProviderInfo> provider_infos() const;
};

// Seconds added to the longest call of a provider for the "auto" shutdown grace: downloading
// the answer's image URLs, writing the files, committing.
inline constexpr double kShutdownGraceMargin_s = 30;
// The "auto" shutdown grace for providers: the longest connect_timeout_s + timeout_s, plus
// kShutdownGraceMargin_s (0 without providers).
double auto_shutdown_grace_s(const std::vector<ProviderConfig>& providers);

// True when base_url is a vendor's own API (api.openai.com, generativelanguage.googleapis.com,
// aiplatform.googleapis.com and its regional {location}-aiplatform.googleapis.com hosts), where
// a retired model is refused at enqueue; any other host is a relay.
bool is_vendor_api(std::string_view base_url);

// Parses config text. Unknown keys and bad values throw ConfigError naming source and field.
// Relative database/output_dir paths are kept as written.
Config parse_config(std::string_view text, const std::string& source);
// Reads and parses a file; a missing or unreadable file throws ConfigError. Relative
// database/output_dir paths are made absolute against the file's directory (never the
// working directory of the caller).
Config load_config(const std::string& path);

// The price of model at provider: the provider's "prices" for it (or its "*"), else the
// catalog's; null when neither knows.
const jobs::Price* price_of(const Config& config, const ProviderConfig& provider,
                            std::string_view model);

// The provider's API key: from api_key_env, api_key_file, or $CREDENTIALS_DIRECTORY/<name>
// or $CREDENTIALS_DIRECTORY/imgbatch_<name> (systemd LoadCredential=, the second from the
// directory /etc/imgbatch/credentials loaded by the shipped unit). Empty when none is configured
// (allowed for local relays/sim). Throws ConfigError when a configured source is missing. Never
// logged.
// A provider with api_key_command gets "" here: the command is run by daemon/engine/credentials
// (run_key_command), once at start and on refresh, not on every call of this function.
std::string resolve_api_key(const ProviderConfig& provider);

// Checks a key read from a command, file or variable: no control characters (it goes into a
// header). Throws ConfigError naming who and where, never the key.
std::string checked_api_key(std::string key, const std::string& who, const std::string& where);

// A Vertex AI endpoint (host ends in aiplatform.googleapis.com): OAuth access tokens, Bearer.
bool is_vertex_ai_url(std::string_view base_url);

}  // namespace imgbatch::daemon
