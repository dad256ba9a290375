#pragma once
// OpenAI's Batch API and Files API as pure functions: the JSONL line of a request, the
// requests of upload, create, get, list, cancel and file download, and the parsing of their
// answers and of the output and error files' lines. No socket here.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/net/http.hpp"
#include "daemon/providers/batch_types.hpp"
#include "daemon/providers/provider.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon::openai_batch {

// The metadata keys naming the database and the chunk of a vendor batch.
inline constexpr std::string_view kMetaDatabase = "imgbatch_db";
inline constexpr std::string_view kMetaChunk = "imgbatch_chunk";

// One input line (with its '\n'): {"custom_id", "method": "POST", "url", "body"}, the body as
// the direct call would send it (api->build). url: the endpoint path ("/v1/images/generations").
// Throws what build throws.
std::string input_line(std::string_view custom_id, const ProviderApi& api,
                       const GenerationRequest& g, const ProviderConfig& provider,
                       std::string* endpoint);

// POST {base_url}/files, multipart/form-data: purpose=batch and the file.
HttpRequest upload(const ProviderConfig& provider, std::string_view api_key,
                   std::string_view filename, std::string_view content);
// POST {base_url}/batches with input_file_id, endpoint, completion_window "24h", metadata.
HttpRequest create(const ProviderConfig& provider, std::string_view api_key,
                   std::string_view input_file_id, std::string_view endpoint,
                   std::string_view database, std::string_view chunk);
HttpRequest get(const ProviderConfig& provider, std::string_view api_key, std::string_view id);
HttpRequest list(const ProviderConfig& provider, std::string_view api_key, std::string_view after,
                 int limit);
HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key, std::string_view id);
HttpRequest file_content(const ProviderConfig& provider, std::string_view api_key,
                         std::string_view file_id);

using Batch = batch_types::Batch;
using BatchPage = batch_types::BatchPage;
using Line = batch_types::Line;

// The file id of an upload's answer, or an error (non-2xx, no id).
std::string parse_file(const HttpResponse& response, std::optional<jobs::Error>& error);
// A Batch object's answer (create, get, cancel), or an error.
std::optional<Batch> parse_batch(const HttpResponse& response, std::optional<jobs::Error>& error);
std::optional<BatchPage> parse_list(const HttpResponse& response,
                                    std::optional<jobs::Error>& error);

// True for validating, in_progress, finalizing, cancelling: the batch may still change.
bool is_open(std::string_view status);

// One line of an output or error file (custom_id, then response or error).
// nullopt when the line is not such an object (the message says why).
std::optional<Line> parse_line(std::string_view line, std::string* why);

}  // namespace imgbatch::daemon::openai_batch
