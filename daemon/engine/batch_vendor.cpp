#include "daemon/engine/batch_vendor.hpp"

#include <stdexcept>

#include "daemon/providers/gemini_batch.hpp"
#include "daemon/providers/openai_batch.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon {
namespace asio = boost::asio;
namespace ob = openai_batch;
namespace gb = gemini_batch;

namespace {

std::optional<jobs::Error> error_of(const HttpResult& res) {
    if (auto* f = std::get_if<HttpFailure>(&res))
        return jobs::Error{f->cls, f->code, 0, f->message, std::nullopt};
    const auto& resp = std::get<HttpResponse>(res);
    if (resp.status < 200 || resp.status > 299) return error_from_response(resp);
    return std::nullopt;
}

class OpenAiVendor final : public BatchVendor {
  public:
    std::string input_line(std::string_view custom_id, const ProviderApi& api,
                           const GenerationRequest& g,
                           const ProviderConfig& provider) const override {
        return ob::input_line(custom_id, api, g, provider, nullptr);
    }
    std::size_t max_bytes(const ProviderConfig& provider) const override {
        return std::min(provider.batch_max_bytes, kVendorBatchMaxBytes);
    }
    bool inline_input(const ProviderConfig&, std::size_t, std::int64_t) const override {
        return false;
    }
    asio::awaitable<Uploaded> upload(HttpClient* client, const ProviderConfig* provider,
                                     std::string api_key, std::string filename,
                                     std::string content) const override {
        Uploaded out;
        auto res = co_await client->send(ob::upload(*provider, api_key, filename, content));
        std::string().swap(content);
        out.answered = std::holds_alternative<HttpResponse>(res);
        out.error = error_of(res);
        if (!out.error) out.file_id = ob::parse_file(std::get<HttpResponse>(res), out.error);
        co_return out;
    }
    HttpRequest create(const ProviderConfig& provider, std::string_view api_key,
                       std::string_view input_file_id, std::string_view, std::string_view,
                       std::string_view database, std::string_view chunk) const override {
        return ob::create(provider, api_key, input_file_id, "/v1/images/generations", database,
                          chunk);
    }
    HttpRequest get(const ProviderConfig& provider, std::string_view api_key,
                    std::string_view id) const override {
        return ob::get(provider, api_key, id);
    }
    HttpRequest list(const ProviderConfig& provider, std::string_view api_key,
                     std::string_view after, int limit) const override {
        return ob::list(provider, api_key, after, limit);
    }
    HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key,
                       std::string_view id) const override {
        return ob::cancel(provider, api_key, id);
    }
    HttpRequest download(const ProviderConfig& provider, std::string_view api_key, std::string_view,
                         std::string_view file_id) const override {
        return ob::file_content(provider, api_key, file_id);
    }
    bool inline_results(std::string_view) const override { return false; }
    std::string result_lines(std::string_view, std::string body) const override { return body; }
    std::optional<batch_types::Batch> parse_batch(
        const HttpResponse& response, std::optional<jobs::Error>& error) const override {
        return ob::parse_batch(response, error);
    }
    std::optional<batch_types::BatchPage> parse_list(
        const HttpResponse& response, std::optional<jobs::Error>& error) const override {
        return ob::parse_list(response, error);
    }
    std::optional<batch_types::Line> parse_line(std::string_view line,
                                                std::string* why) const override {
        return ob::parse_line(line, why);
    }
    bool is_open(std::string_view s) const override { return ob::is_open(s); }
    bool is_cancelling(std::string_view s) const override { return s == "cancelling"; }
    bool is_failed(std::string_view s) const override { return s == "failed"; }
    bool is_expired(std::string_view s) const override { return s == "expired"; }
};

class GeminiVendor final : public BatchVendor {
  public:
    std::string input_line(std::string_view custom_id, const ProviderApi& api,
                           const GenerationRequest& g,
                           const ProviderConfig& provider) const override {
        return gb::input_line(custom_id, api, g, provider);
    }
    std::size_t max_bytes(const ProviderConfig& provider) const override {
        std::size_t cap = std::min(provider.batch_max_bytes, kVendorBatchMaxBytes);
        // Inline only: the whole create body stays under the vendor's 20 MB (the InlinedRequest
        // wrapping adds a few bytes a line).
        if (provider.batch_input == "inline") cap = std::min(cap, gb::kMaxInlineBytes * 9 / 10);
        return cap;
    }
    // Inline results come back inside the batch object, which is read into memory whole: auto
    // keeps inline input for small batches (images are large).
    bool inline_input(const ProviderConfig& provider, std::size_t bytes,
                      std::int64_t lines) const override {
        if (provider.batch_input == "file") return false;
        if (provider.batch_input == "inline") return true;
        return bytes <= gb::kMaxInlineBytes * 9 / 10 && lines <= kAutoInlineMaxLines;
    }
    static constexpr std::int64_t kAutoInlineMaxLines = 16;
    asio::awaitable<Uploaded> upload(HttpClient* client, const ProviderConfig* provider,
                                     std::string api_key, std::string filename,
                                     std::string content) const override {
        Uploaded out;
        auto start =
            co_await client->send(gb::upload_start(*provider, api_key, filename, content.size()));
        out.answered = std::holds_alternative<HttpResponse>(start);
        out.error = error_of(start);
        std::string url;
        if (!out.error) url = gb::parse_upload_start(std::get<HttpResponse>(start), out.error);
        if (out.error) co_return out;
        auto res =
            co_await client->send(gb::upload_finish(*provider, api_key, url, std::move(content)));
        out.answered = std::holds_alternative<HttpResponse>(res);
        out.error = error_of(res);
        if (!out.error) out.file_id = gb::parse_file(std::get<HttpResponse>(res), out.error);
        co_return out;
    }
    HttpRequest create(const ProviderConfig& provider, std::string_view api_key,
                       std::string_view input_file_id, std::string_view inline_lines,
                       std::string_view model, std::string_view database,
                       std::string_view chunk) const override {
        if (input_file_id == kInlineInput)
            return gb::create(provider, api_key, model, database, chunk,
                              "inline:" + gb::inline_requests(inline_lines));
        return gb::create(provider, api_key, model, database, chunk, input_file_id);
    }
    HttpRequest get(const ProviderConfig& provider, std::string_view api_key,
                    std::string_view id) const override {
        return gb::get(provider, api_key, id);
    }
    HttpRequest list(const ProviderConfig& provider, std::string_view api_key,
                     std::string_view after, int limit) const override {
        return gb::list(provider, api_key, after, limit);
    }
    HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key,
                       std::string_view id) const override {
        return gb::cancel(provider, api_key, id);
    }
    HttpRequest download(const ProviderConfig& provider, std::string_view api_key,
                         std::string_view batch_id, std::string_view file_id) const override {
        if (file_id == gb::kInlineResults) return gb::get(provider, api_key, batch_id);
        return gb::download(provider, api_key, file_id);
    }
    bool inline_results(std::string_view file_id) const override {
        return file_id == gb::kInlineResults;
    }
    std::string result_lines(std::string_view file_id, std::string body) const override {
        if (file_id == gb::kInlineResults) return gb::inline_lines(body);
        return body;
    }
    std::optional<batch_types::Batch> parse_batch(
        const HttpResponse& response, std::optional<jobs::Error>& error) const override {
        return gb::parse_batch(response, error);
    }
    std::optional<batch_types::BatchPage> parse_list(
        const HttpResponse& response, std::optional<jobs::Error>& error) const override {
        return gb::parse_list(response, error);
    }
    std::optional<batch_types::Line> parse_line(std::string_view line,
                                                std::string* why) const override {
        return gb::parse_line(line, why);
    }
    bool is_open(std::string_view s) const override { return gb::is_open(s); }
    bool is_cancelling(std::string_view) const override { return false; }
    bool is_failed(std::string_view s) const override { return gb::is_failed(s); }
    bool is_expired(std::string_view s) const override { return gb::is_expired(s); }
};

}  // namespace

std::unique_ptr<BatchVendor> make_batch_vendor(const ProviderConfig& provider) {
    if (provider.api == "openai") return std::make_unique<OpenAiVendor>();
    if (provider.api == "gemini") return std::make_unique<GeminiVendor>();
    throw std::invalid_argument("no batch API for api " + provider.api);
}

}  // namespace imgbatch::daemon
