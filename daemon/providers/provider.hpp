#pragma once
// Provider adapters: pure request building and response parsing per API style.
#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/net/http.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon {

// What one HTTP call asks for.
struct GenerationRequest {
    std::string model;
    std::string prompt;
    int n = 1;                   // images wanted from this call
    boost::json::object params;  // the job's params (size, quality, ..., native pass-through)
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
    // The first entry whose image data could not be decoded ("image 2: invalid base64"): the
    // other entries are still in images, and the engine decides what the answer amounts to.
    std::string item_error;
    // Set when the answer is an error (HTTP error status, moderation, malformed body, no
    // images). A partial answer (fewer images than asked) is not an error here: the engine
    // compares images.size() with what it asked.
    std::optional<jobs::Error> error;
};

struct ProviderApi {
    std::string_view name;  // "openai", "google", "openai-chat", "gemini"
    HttpRequest (*build)(const GenerationRequest& req, const ProviderConfig& provider,
                         std::string_view api_key);
    ParsedResponse (*parse)(const HttpResponse& response, const GenerationRequest& req);
    // Optional: parse taking the answer, freeing its text as soon as it is parsed (large
    // image answers). nullptr: the engine uses parse.
    ParsedResponse (*parse_owned)(HttpResponse&& response, const GenerationRequest& req) = nullptr;
};

// The adapter for an api name; nullptr if unknown.
const ProviderApi* find_provider_api(std::string_view api);

// Turns any non-2xx answer into an Error: JSON bodies in OpenAI ({"error":{code,type,message}})
// and Google ({"error":{code,status,message}}) shape, text/plain and HTML bodies; Retry-After
// (seconds or HTTP date) and retry-after-ms read into retry_after_s; classified with
// jobs::classify_http.
jobs::Error error_from_response(const HttpResponse& response);

// As above with an explicit clock: an HTTP-date Retry-After is counted from now.
jobs::Error error_from_response(const HttpResponse& response,
                                std::chrono::system_clock::time_point now);

// The longest wait a Retry-After is read as: one day. A longer delay or a far-future date (a
// broken relay's year 9999) holds the request for a day, not for centuries.
inline constexpr double kMaxRetryAfterS = 86400;

// Seconds to wait before retrying: retry-after-ms (milliseconds) when present, else Retry-After
// as delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime, any year 0000-9999)
// relative to now; between 0 and kMaxRetryAfterS. nullopt when absent or unreadable.
std::optional<double> retry_after_seconds(const Headers& headers,
                                          std::chrono::system_clock::time_point now);

// A short readable excerpt of a response body for messages: HTML tags stripped, common
// entities decoded, whitespace collapsed, at most max_chars bytes (cut at a UTF-8 boundary,
// "..." appended when cut), valid UTF-8 (see valid_utf8).
std::string body_excerpt(std::string_view body, std::size_t max_chars = 300);

// text as valid UTF-8 without NUL: every byte that does not belong to a well-formed sequence
// (Latin-1 pages, cut sequences, overlongs, surrogates) and every NUL becomes U+FFFD. Provider
// text goes through this before it is stored, logged or exported.
std::string valid_utf8(std::string_view text);

// A 2xx answer that is not usable: error class bad_response with our code and message.
jobs::Error bad_response_error(int http_status, std::string code, std::string message);

// A 2xx body that carries an {"error": ...} object (some relays answer errors with 200): the
// error with the provider's code and message, classed moderation or quota when the code or
// message says so, else bad_response. nullopt when the body has no such error.
std::optional<jobs::Error> error_in_success_body(const boost::json::object& body, int http_status);

// True when an error answer says the model does not exist or was retired: the provider's code
// model_not_found (any status but 401 and 429), or a 400, 403, 404 or 410 answer (or an error
// object in a 2xx body) whose message names the model and says it "does not exist", "is not
// found", "has been deprecated", "was retired", "has been shut down" or "is no longer
// available" (OpenAI's model_not_found, Gemini's 404 NOT_FOUND "models/X is not found ...").
bool says_model_gone(const jobs::Error& error, std::string_view model);

// Makes such an error fail the request at once (invalid_request, no retry), with
// "; the catalog's replacement: R" appended to the provider's message when R is not empty.
void mark_model_gone(jobs::Error& error, std::string_view replacement);

// The start every parser shares: a non-2xx answer becomes error_from_response, a body that is
// not a JSON object becomes bad_response "not_json", and (with ErrorObject::reject) an error
// object inside a 2xx body becomes that error. Returns the body object, held in storage, or
// nullptr with out.error set.
enum class ErrorObject { reject, keep };
boost::json::object* success_body(const HttpResponse& response, boost::json::value& storage,
                                  ParsedResponse& out, ErrorObject error_object);

// The request headers every adapter sends: Content-Type and Accept JSON, then the
// authorization header (skipped when the key is empty), then provider.headers (which replace
// a header of the same name).
Headers json_request_headers(const ProviderConfig& provider, std::string_view auth_name,
                             std::string auth_value);

// A JSON POST to base_url + path with Google's auth: `x-goog-api-key: KEY`, or
// `Authorization: Bearer KEY` when the provider's auth is "bearer" (relays, Vertex AI).
HttpRequest google_style_request(const ProviderConfig& provider, std::string_view api_key,
                                 const std::string& path, const boost::json::object& body);

// A "data:<mime>;base64,<data>" URI as an image item (claimed_mime from the URI); nullopt when
// it is not a base64 data URI or the data is not valid base64.
std::optional<ImageItem> decode_data_uri(std::string_view uri);

// base_url without trailing slashes, followed by path.
std::string join_url(std::string_view base_url, std::string_view path);

// Drops the images whose URL is not a valid http(s) URL (parse_url: control characters or
// spaces, a bad host or port), which would otherwise go into a download's request line and
// Host header as given. Returns a bad_response "invalid_url" error naming the first one
// (1-based index in images), or nullopt when every URL is valid.
std::optional<jobs::Error> drop_invalid_urls(std::vector<ImageItem>& images, int http_status);

}  // namespace imgbatch::daemon
