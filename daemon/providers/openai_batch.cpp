#include "daemon/providers/openai_batch.hpp"

#include <boost/json.hpp>
#include <random>

#include "daemon/providers/batch_lines.hpp"

namespace imgbatch::daemon::openai_batch {
namespace json = boost::json;

namespace {
using batch_lines::num;
using batch_lines::str;

HttpRequest request(const ProviderConfig& provider, std::string_view api_key,
                    std::string_view method, const std::string& path) {
    return batch_lines::request(
        method, join_url(provider.base_url, path),
        json_request_headers(provider, "Authorization",
                             api_key.empty() ? "" : "Bearer " + std::string(api_key)));
}

Batch read_batch(const json::object& o) {
    Batch b;
    b.id = valid_utf8(str(o, "id"));
    b.status = valid_utf8(str(o, "status"));
    b.input_file_id = valid_utf8(str(o, "input_file_id"));
    b.output_file_id = valid_utf8(str(o, "output_file_id"));
    b.error_file_id = valid_utf8(str(o, "error_file_id"));
    b.created_at = num(o, "created_at");
    if (auto* rc = o.if_contains("request_counts"); rc && rc->is_object()) {
        b.total = num(rc->get_object(), "total");
        b.completed = num(rc->get_object(), "completed");
        b.failed = num(rc->get_object(), "failed");
    }
    if (auto* m = o.if_contains("metadata"); m && m->is_object()) {
        b.database = str(m->get_object(), kMetaDatabase);
        b.chunk = str(m->get_object(), kMetaChunk);
    }
    if (auto* e = o.if_contains("errors"); e && e->is_object())
        if (auto* d = e->get_object().if_contains("data"); d && d->is_array())
            for (const auto& item : d->get_array()) {
                if (!item.is_object()) continue;
                const auto& x = item.get_object();
                if (b.error.empty())
                    b.error = valid_utf8(str(x, "code") + ": " + str(x, "message"));
                if (auto line = num(x, "line"); line > 0) b.error_lines.push_back(line);
            }
    return b;
}

}  // namespace

std::string input_line(std::string_view custom_id, const ProviderApi& api,
                       const GenerationRequest& g, const ProviderConfig& provider,
                       std::string* endpoint) {
    HttpRequest http = api.build(g, provider, "");
    Url url;
    std::string path = parse_url(http.url, url) ? url.target : "/v1/images/generations";
    path = path.substr(0, path.find('?'));
    // The endpoint as the Batch API names it: from /v1 on (a relay's prefix dropped).
    if (auto v1 = path.find("/v1/"); v1 != std::string::npos) path = path.substr(v1);
    if (endpoint) *endpoint = path;
    std::string line = "{\"custom_id\":";
    line += json::serialize(json::value(custom_id));
    line += ",\"method\":\"POST\",\"url\":";
    line += json::serialize(json::value(path));
    line += ",\"body\":";
    line += http.body;
    line += "}\n";
    return line;
}

HttpRequest upload(const ProviderConfig& provider, std::string_view api_key,
                   std::string_view filename, std::string_view content) {
    HttpRequest r = request(provider, api_key, "POST", "/files");
    std::random_device rd;
    const std::string boundary =
        "imgbatch-" + std::to_string(rd()) + "-" + std::to_string(rd()) + "-boundary";
    for (auto& h : r.headers)
        if (h.first == "Content-Type") h.second = "multipart/form-data; boundary=" + boundary;
    std::string body;
    body.reserve(content.size() + 512);
    body +=
        "--" + boundary + "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n";
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"";
    body += filename;
    body += "\"\r\nContent-Type: application/jsonl\r\n\r\n";
    body += content;
    body += "\r\n--" + boundary + "--\r\n";
    r.body = std::move(body);
    return r;
}

HttpRequest create(const ProviderConfig& provider, std::string_view api_key,
                   std::string_view input_file_id, std::string_view endpoint,
                   std::string_view database, std::string_view chunk) {
    HttpRequest r = request(provider, api_key, "POST", "/batches");
    json::object body{{"input_file_id", input_file_id},
                      {"endpoint", endpoint},
                      {"completion_window", "24h"},
                      {"metadata", {{kMetaDatabase, database}, {kMetaChunk, chunk}}}};
    r.body = json::serialize(body);
    return r;
}

HttpRequest get(const ProviderConfig& provider, std::string_view api_key, std::string_view id) {
    return request(provider, api_key, "GET", "/batches/" + std::string(id));
}

HttpRequest list(const ProviderConfig& provider, std::string_view api_key, std::string_view after,
                 int limit) {
    std::string path = "/batches?limit=" + std::to_string(limit);
    if (!after.empty()) path += "&after=" + std::string(after);
    return request(provider, api_key, "GET", path);
}

HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key, std::string_view id) {
    HttpRequest r = request(provider, api_key, "POST", "/batches/" + std::string(id) + "/cancel");
    r.body = "{}";
    return r;
}

HttpRequest file_content(const ProviderConfig& provider, std::string_view api_key,
                         std::string_view file_id) {
    HttpRequest r =
        request(provider, api_key, "GET", "/files/" + std::string(file_id) + "/content");
    batch_lines::accept_any(r);
    return r;
}

std::string parse_file(const HttpResponse& response, std::optional<jobs::Error>& error) {
    json::value v;
    const auto* o = batch_lines::body_object(response, v, error);
    if (!o) return {};
    std::string id = valid_utf8(str(*o, "id"));
    if (id.empty()) error = bad_response_error(response.status, "no_id", "the file has no id");
    return id;
}

std::optional<Batch> parse_batch(const HttpResponse& response, std::optional<jobs::Error>& error) {
    return batch_lines::parse_batch(response, read_batch, "the batch has no id or status", error);
}

std::optional<BatchPage> parse_list(const HttpResponse& response,
                                    std::optional<jobs::Error>& error) {
    auto page = batch_lines::parse_page(response, "data", "last_id", "has_more", read_batch, error);
    if (page && page->last_id.empty() && !page->batches.empty())
        page->last_id = page->batches.back().id;
    return page;
}

bool is_open(std::string_view status) {
    return status == "validating" || status == "in_progress" || status == "finalizing" ||
           status == "cancelling";
}

std::optional<Line> parse_line(std::string_view text, std::string* why) {
    auto parsed = batch_lines::line_object(text, why);
    if (!parsed) return std::nullopt;
    const json::object& o = *parsed;
    Line line;
    line.custom_id = str(o, "custom_id");
    if (line.custom_id.empty()) {
        if (why) *why = "no custom_id";
        return std::nullopt;
    }
    if (auto* r = o.if_contains("response"); r && r->is_object()) {
        auto& ro = r->get_object();
        auto* b = ro.if_contains("body");
        // A status_code that is no HTTP status (missing, a string, out of range) reads as 0,
        // which the answer's parser takes as a bad answer, never as another status.
        const std::int64_t code = num(ro, "status_code");
        const int status = code >= 100 && code <= 599 ? static_cast<int>(code) : 0;
        line.response = batch_lines::json_response(status, b ? json::serialize(*b) : std::string());
    }
    if (auto* e = o.if_contains("error"); e && e->is_object()) {
        line.error_code = valid_utf8(str(e->get_object(), "code"));
        line.error_message = valid_utf8(str(e->get_object(), "message"));
    }
    if (!line.response && line.error_code.empty() && line.error_message.empty()) {
        if (why) *why = "neither response nor error";
        return std::nullopt;
    }
    return line;
}

}  // namespace imgbatch::daemon::openai_batch
