#pragma once
// Provider adapters: pure request building and response parsing per API style.
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/http.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon {

// What one HTTP call asks for.
struct GenerationRequest {
    std::string model;
    std::string prompt;
    int n = 1;                  // images wanted from this call
    boost::json::object params; // the job's params (size, quality, ..., native pass-through)
};

// One image from a response: bytes (decoded base64), or a URL to download at once.
struct ImageItem {
    std::string bytes;
    std::string url;
    std::string claimed_mime;  // what the provider says; the writer trusts magic bytes instead
    std::string revised_prompt;
};

struct ParsedResponse {
    std::vector<ImageItem> images;
    int filtered = 0;             // images the provider filtered (Imagen RAI)
    std::string filtered_reason;  // the provider's reason, when given
    std::string usage_json;       // usage object as JSON text, when given
    // Set when the answer is an error (HTTP error status, moderation, malformed body, no
    // images). A partial answer (fewer images than asked) is not an error here: the engine
    // compares images.size() with what it asked.
    std::optional<jobs::Error> error;
};

struct ProviderApi {
    std::string_view name;  // "openai", "google", "openai-chat"
    HttpRequest (*build)(const GenerationRequest& req, const ProviderConfig& provider,
                         std::string_view api_key);
    ParsedResponse (*parse)(const HttpResponse& response, const GenerationRequest& req);
};

// The adapter for an api name; nullptr if unknown.
const ProviderApi* find_provider_api(std::string_view api);

// Turns any non-2xx answer into an Error: JSON bodies in OpenAI ({"error":{code,type,message}})
// and Google ({"error":{code,status,message}}) shape, text/plain and HTML bodies; Retry-After
// (seconds or HTTP date) and retry-after-ms read into retry_after_s; classified with
// jobs::classify_http.
jobs::Error error_from_response(const HttpResponse& response);

}  // namespace imgbatch::daemon
