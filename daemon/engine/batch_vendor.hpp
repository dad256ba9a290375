#pragma once
// The vendor part of the batch runner: how one vendor's batch API builds its input, uploads
// it, creates, polls, lists, cancels a batch and gives its result lines. OpenAI Batch
// (openai_batch.hpp) and Gemini Batch Mode (gemini_batch.hpp); the lifecycle, recovery and
// applying of results stay one code path in the runner (batch_runner.cpp and its files).
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/config.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/providers/batch_types.hpp"
#include "daemon/providers/provider.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon {

// The input_file_id of a vendor batch whose requests go inline in the create (Gemini).
inline constexpr std::string_view kInlineInput = "inline";

class BatchVendor {
  public:
    virtual ~BatchVendor() = default;

    // One line of the input (with its '\n'). Throws what the provider's build throws.
    virtual std::string input_line(std::string_view custom_id, const ProviderApi& api,
                                   const GenerationRequest& g,
                                   const ProviderConfig& provider) const = 0;
    // The most input bytes of one vendor batch.
    virtual std::size_t max_bytes(const ProviderConfig& provider) const = 0;
    // Whether an input of this size goes inline in the create (no upload).
    virtual bool inline_input(const ProviderConfig& provider, std::size_t bytes,
                              std::int64_t lines) const = 0;

    struct Uploaded {
        std::string file_id;
        std::optional<jobs::Error> error;
        bool answered = false;  // the vendor answered (a 4xx is not worth repeating at once)
    };
    // Uploads the input file (every step of the vendor's upload protocol).
    virtual boost::asio::awaitable<Uploaded> upload(HttpClient* client,
                                                    const ProviderConfig* provider,
                                                    std::string api_key, std::string filename,
                                                    std::string content) const = 0;
    // input: the uploaded file's id, or the input lines themselves for an inline input.
    virtual HttpRequest create(const ProviderConfig& provider, std::string_view api_key,
                               std::string_view input_file_id, std::string_view inline_lines,
                               std::string_view model, std::string_view database,
                               std::string_view chunk) const = 0;
    virtual HttpRequest get(const ProviderConfig& provider, std::string_view api_key,
                            std::string_view id) const = 0;
    // A page of the vendor's batches, newest first; after: the last page's last_id.
    virtual HttpRequest list(const ProviderConfig& provider, std::string_view api_key,
                             std::string_view after, int limit) const = 0;
    virtual HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key,
                               std::string_view id) const = 0;
    // The download of a result file (output_file_id / error_file_id of the row); for results
    // that came inline, the batch itself.
    virtual HttpRequest download(const ProviderConfig& provider, std::string_view api_key,
                                 std::string_view batch_id, std::string_view file_id) const = 0;
    // Whether the download of file_id is not the result lines themselves but the batch with
    // its results inline (result_lines turns it into those lines).
    virtual bool inline_results(std::string_view file_id) const = 0;
    virtual std::string result_lines(std::string_view file_id, std::string body) const = 0;

    virtual std::optional<batch_types::Batch> parse_batch(
        const HttpResponse& response, std::optional<jobs::Error>& error) const = 0;
    virtual std::optional<batch_types::BatchPage> parse_list(
        const HttpResponse& response, std::optional<jobs::Error>& error) const = 0;
    virtual std::optional<batch_types::Line> parse_line(std::string_view line,
                                                        std::string* why) const = 0;

    // Vendor states: may still change; being cancelled; failed as a whole; expired.
    virtual bool is_open(std::string_view status) const = 0;
    virtual bool is_cancelling(std::string_view status) const = 0;
    virtual bool is_failed(std::string_view status) const = 0;
    virtual bool is_expired(std::string_view status) const = 0;
};

// The vendor of a provider in "mode": "batch" (api openai or gemini); throws otherwise.
std::unique_ptr<BatchVendor> make_batch_vendor(const ProviderConfig& provider);

}  // namespace imgbatch::daemon
