#pragma once
// Gemini Batch Mode (Gemini API, generativelanguage) as pure functions: the requests of the
// Files API upload (resumable: start, then upload+finalize), batchGenerateContent, get, list,
// cancel and the responses file's download, and the parsing of their answers. No socket here.
//
// REST shapes (v1beta, as the Gemini API reference and google-genai's batches.py speak them):
//   POST {base}/models/{model}:batchGenerateContent
//        {"batch": {"displayName", "inputConfig": {"requests": {"requests": [InlinedRequest]}}
//                   or "inputConfig": {"fileName": "files/..."}}}
//        InlinedRequest: {"request": GenerateContentRequest, "metadata": {"key": custom id}}
//   -> Operation {"name": "batches/..", "metadata": GenerateContentBatch, "done", "error"}
//      GenerateContentBatch: name, model, displayName, state (BATCH_STATE_PENDING, _RUNNING,
//      _SUCCEEDED, _FAILED, _CANCELLED, _EXPIRED), createTime, batchStats {requestCount,
//      successfulRequestCount, failedRequestCount, pendingRequestCount} (int64 as strings),
//      output {"responsesFile": "files/.."} or {"inlinedResponses": {"inlinedResponses":
//      [{"response": GenerateContentResponse | "error": Status, "metadata": {"key"}}]}}
//   GET {base}/batches/{id}; GET {base}/batches?pageSize&pageToken -> {"operations",
//   "nextPageToken"}; POST {base}/batches/{id}:cancel
//   File mode: each input line {"key", "request"}; each output line {"key", "response"} or
//   {"key", "error"}, in input order. Upload to {origin}/upload/v1beta/files, download from
//   {origin}/download/v1beta/files/{id}:download?alt=media.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/config.hpp"
#include "daemon/net/http.hpp"
#include "daemon/providers/batch_types.hpp"
#include "daemon/providers/provider.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon::gemini_batch {

// The vendor's cap on inline requests (the whole create body).
inline constexpr std::size_t kMaxInlineBytes = 20'000'000;

// The displayName naming the database instance and the chunk: "imgbatch <database> <chunk>".
std::string display_name(std::string_view database, std::string_view chunk);

// One file-mode input line (with its '\n'): {"key": custom_id, "request": body}, the body as
// the direct call would send it (api.build). Throws what build throws.
std::string input_line(std::string_view custom_id, const ProviderApi& api,
                       const GenerationRequest& g, const ProviderConfig& provider);
// The InlinedRequest array of such lines (JSON text). Throws on a line that is not one.
std::string inline_requests(std::string_view jsonl);

// Files API, resumable: the start (metadata only; answer header X-Goog-Upload-URL), then the
// bytes to that URL with "upload, finalize".
HttpRequest upload_start(const ProviderConfig& provider, std::string_view api_key,
                         std::string_view display, std::size_t bytes);
HttpRequest upload_finish(const ProviderConfig& provider, std::string_view api_key,
                          std::string_view upload_url, std::string content);
// The upload URL of a start's answer, or an error.
std::string parse_upload_start(const HttpResponse& response, std::optional<jobs::Error>& error);
// The file name ("files/...") of a finished upload, or an error.
std::string parse_file(const HttpResponse& response, std::optional<jobs::Error>& error);

// input: "inline:" + an InlinedRequest array, or a file name ("files/...").
HttpRequest create(const ProviderConfig& provider, std::string_view api_key, std::string_view model,
                   std::string_view database, std::string_view chunk, std::string_view input);
HttpRequest get(const ProviderConfig& provider, std::string_view api_key, std::string_view name);
HttpRequest list(const ProviderConfig& provider, std::string_view api_key,
                 std::string_view page_token, int page_size);
HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key, std::string_view name);
HttpRequest download(const ProviderConfig& provider, std::string_view api_key,
                     std::string_view file_name);

// Where results of a finished batch are when they came inline (output_file_id).
inline constexpr std::string_view kInlineResults = "inline";

// An Operation (create, get, cancel) as a Batch: id = its name ("batches/..."), status = its
// state, output_file_id = responsesFile or kInlineResults, error from the operation's error.
std::optional<batch_types::Batch> parse_batch(const HttpResponse& response,
                                              std::optional<jobs::Error>& error);
std::optional<batch_types::BatchPage> parse_list(const HttpResponse& response,
                                                 std::optional<jobs::Error>& error);

// PENDING, RUNNING (BATCH_STATE_* or JOB_STATE_*): the batch may still change.
bool is_open(std::string_view state);
bool is_failed(std::string_view state);
bool is_expired(std::string_view state);

// The inlined responses of a finished batch's Operation, as responses-file lines (in order).
// Throws std::runtime_error when the body is not such an Operation.
std::string inline_lines(std::string_view operation);

// One line of a responses file: key, then response (an HTTP 200 answer of generateContent) or
// error (a google.rpc.Status, given as the HTTP error answer its code maps to, so that it is
// classified as the direct call's error would be). nullopt when it is not such a line.
std::optional<batch_types::Line> parse_line(std::string_view line, std::string* why);

// The HTTP status of a google.rpc.Code (3 INVALID_ARGUMENT -> 400, 8 RESOURCE_EXHAUSTED ->
// 429, 13 INTERNAL -> 500, ...).
int http_status_of_code(std::int64_t code);

}  // namespace imgbatch::daemon::gemini_batch
