#include "daemon/providers/gemini_batch.hpp"

#include <boost/json.hpp>
#include <cstdio>
#include <stdexcept>

#include "daemon/providers/batch_lines.hpp"

namespace imgbatch::daemon::gemini_batch {
namespace json = boost::json;
using batch_lines::object_at;
using batch_lines::str;
using batch_types::Batch;
using batch_types::BatchPage;
using batch_types::Line;

namespace {

constexpr std::string_view kPrefix = "imgbatch ";

HttpRequest request(const ProviderConfig& provider, std::string_view api_key,
                    std::string_view method, std::string url) {
    std::string key(api_key);
    return batch_lines::request(
        method, std::move(url),
        provider.auth == "bearer"
            ? json_request_headers(provider, "Authorization", key.empty() ? "" : "Bearer " + key)
            : json_request_headers(provider, "x-goog-api-key", key));
}

// base_url's version segment ("v1beta") moved behind "/upload" or "/download":
// http://h/v1beta -> http://h/upload/v1beta (a relay's prefix before the version is kept).
std::string service_base(std::string_view base_url, std::string_view service) {
    std::string base(base_url);
    while (!base.empty() && base.back() == '/') base.pop_back();
    auto slash = base.rfind('/');
    auto scheme = base.find("://");
    if (slash == std::string::npos || scheme == std::string::npos || slash < scheme + 3)
        return base + "/" + std::string(service) + "/v1beta";
    return base.substr(0, slash) + "/" + std::string(service) + base.substr(slash);
}

// An int64 of proto3 JSON: a string of digits, or a number.
std::int64_t num(const json::object& o, std::string_view key) {
    return batch_lines::num(o, key, batch_lines::Digits::accept);
}

// Seconds since 1970 of an RFC 3339 timestamp ("2025-07-01T12:00:00.123Z"); 0 if unreadable.
std::int64_t rfc3339(std::string_view t) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (t.size() < 19 || std::sscanf(std::string(t.substr(0, 19)).c_str(),
                                     "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6)
        return 0;
    // days_from_civil (H. Hinnant)
    y -= mo <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
    return days * 86400 + h * 3600 + mi * 60 + s;
}

// The output of an Operation: metadata.output, else response (the LRO's result).
const json::object* output_of(const json::object& op) {
    if (auto* m = object_at(op, "metadata"))
        if (auto* out = object_at(*m, "output")) return out;
    return object_at(op, "response");
}

Batch read_operation(const json::object& op) {
    Batch b;
    b.id = valid_utf8(str(op, "name"));
    const json::object* m = object_at(op, "metadata");
    static const json::object empty;
    if (!m) m = &empty;
    if (b.id.empty()) b.id = valid_utf8(str(*m, "name"));
    b.status = valid_utf8(str(*m, "state"));
    b.created_at = rfc3339(str(*m, "createTime"));
    if (auto* stats = object_at(*m, "batchStats")) {
        b.total = num(*stats, "requestCount");
        b.completed = num(*stats, "successfulRequestCount");
        b.failed = num(*stats, "failedRequestCount");
    }
    std::string display = str(*m, "displayName");
    if (display.starts_with(kPrefix)) {
        std::string_view rest = std::string_view(display).substr(kPrefix.size());
        auto sp = rest.find(' ');
        if (sp != std::string_view::npos) {
            b.database = std::string(rest.substr(0, sp));
            b.chunk = std::string(rest.substr(sp + 1));
        }
    }
    if (auto* in = object_at(*m, "inputConfig")) b.input_file_id = valid_utf8(str(*in, "fileName"));
    if (auto* out = output_of(op)) {
        b.output_file_id = valid_utf8(str(*out, "responsesFile"));
        if (b.output_file_id.empty() && out->if_contains("inlinedResponses"))
            b.output_file_id = std::string(kInlineResults);
    }
    if (auto* e = object_at(op, "error"))
        b.error = valid_utf8(std::to_string(num(*e, "code")) + ": " + str(*e, "message"));
    return b;
}

}  // namespace

std::string display_name(std::string_view database, std::string_view chunk) {
    return std::string(kPrefix) + std::string(database) + " " + std::string(chunk);
}

std::string input_line(std::string_view custom_id, const ProviderApi& api,
                       const GenerationRequest& g, const ProviderConfig& provider) {
    HttpRequest http = api.build(g, provider, "");
    std::string line = "{\"key\":";
    line += json::serialize(json::value(custom_id));
    line += ",\"request\":";
    line += http.body;
    line += "}\n";
    return line;
}

std::string inline_requests(std::string_view jsonl) {
    std::string out = "[";
    for (std::size_t pos = 0; pos < jsonl.size();) {
        auto nl = jsonl.find('\n', pos);
        if (nl == std::string_view::npos) nl = jsonl.size();
        std::string_view text = jsonl.substr(pos, nl - pos);
        pos = nl + 1;
        if (text.empty()) continue;
        json::value v = json::parse(text);
        auto& o = v.as_object();
        json::object item{{"request", o.at("request")},
                          {"metadata", {{"key", o.at("key").as_string()}}}};
        if (out.size() > 1) out += ',';
        out += json::serialize(item);
    }
    out += ']';
    return out;
}

HttpRequest upload_start(const ProviderConfig& provider, std::string_view api_key,
                         std::string_view display, std::size_t bytes) {
    HttpRequest r =
        request(provider, api_key, "POST", service_base(provider.base_url, "upload") + "/files");
    r.headers.emplace_back("X-Goog-Upload-Protocol", "resumable");
    r.headers.emplace_back("X-Goog-Upload-Command", "start");
    r.headers.emplace_back("X-Goog-Upload-Header-Content-Length", std::to_string(bytes));
    r.headers.emplace_back("X-Goog-Upload-Header-Content-Type", "application/jsonl");
    r.body = json::serialize(
        json::object{{"file", {{"displayName", display}, {"mimeType", "application/jsonl"}}}});
    return r;
}

HttpRequest upload_finish(const ProviderConfig& provider, std::string_view api_key,
                          std::string_view upload_url, std::string content) {
    HttpRequest r = request(provider, api_key, "POST", std::string(upload_url));
    for (auto& h : r.headers)
        if (h.first == "Content-Type") h.second = "application/jsonl";
    r.headers.emplace_back("X-Goog-Upload-Offset", "0");
    r.headers.emplace_back("X-Goog-Upload-Command", "upload, finalize");
    r.body = std::move(content);
    return r;
}

std::string parse_upload_start(const HttpResponse& response, std::optional<jobs::Error>& error) {
    if (response.status < 200 || response.status > 299) {
        error = error_from_response(response);
        return {};
    }
    std::string url(response.header("X-Goog-Upload-URL"));
    Url parsed;
    if (url.empty() || !parse_url(url, parsed))
        error = bad_response_error(response.status, "no_upload_url",
                                   "the upload start has no valid X-Goog-Upload-URL");
    return url;
}

std::string parse_file(const HttpResponse& response, std::optional<jobs::Error>& error) {
    json::value v;
    const auto* o = batch_lines::body_object(response, v, error);
    if (!o) return {};
    std::string name;
    if (auto* f = object_at(*o, "file")) name = valid_utf8(str(*f, "name"));
    if (name.empty())
        error = bad_response_error(response.status, "no_name", "the file has no name");
    return name;
}

HttpRequest create(const ProviderConfig& provider, std::string_view api_key, std::string_view model,
                   std::string_view database, std::string_view chunk, std::string_view input) {
    HttpRequest r = request(
        provider, api_key, "POST",
        join_url(provider.base_url, "/models/" + std::string(model) + ":batchGenerateContent"));
    // The inline array is spliced in as text: no second copy of up to 20 MB as a JSON tree.
    std::string head = "{\"batch\":{\"displayName\":";
    head += json::serialize(json::value(display_name(database, chunk)));
    head += ",\"inputConfig\":";
    if (input.starts_with("inline:")) {
        r.body.reserve(head.size() + input.size() + 64);
        r.body = head + "{\"requests\":{\"requests\":";
        r.body += input.substr(7);
        r.body += "}}}}";
    } else {
        r.body = head + "{\"fileName\":" + json::serialize(json::value(input)) + "}}}";
    }
    return r;
}

HttpRequest get(const ProviderConfig& provider, std::string_view api_key, std::string_view name) {
    return request(provider, api_key, "GET", join_url(provider.base_url, "/" + std::string(name)));
}

HttpRequest list(const ProviderConfig& provider, std::string_view api_key,
                 std::string_view page_token, int page_size) {
    std::string path = "/batches?pageSize=" + std::to_string(page_size);
    if (!page_token.empty()) path += "&pageToken=" + std::string(page_token);
    return request(provider, api_key, "GET", join_url(provider.base_url, path));
}

HttpRequest cancel(const ProviderConfig& provider, std::string_view api_key,
                   std::string_view name) {
    HttpRequest r = request(provider, api_key, "POST",
                            join_url(provider.base_url, "/" + std::string(name) + ":cancel"));
    r.body = "{}";
    return r;
}

HttpRequest download(const ProviderConfig& provider, std::string_view api_key,
                     std::string_view file_name) {
    HttpRequest r = request(provider, api_key, "GET",
                            service_base(provider.base_url, "download") + "/" +
                                std::string(file_name) + ":download?alt=media");
    batch_lines::accept_any(r);
    return r;
}

std::optional<Batch> parse_batch(const HttpResponse& response, std::optional<jobs::Error>& error) {
    return batch_lines::parse_batch(response, read_operation, "the batch has no name or state",
                                    error);
}

std::optional<BatchPage> parse_list(const HttpResponse& response,
                                    std::optional<jobs::Error>& error) {
    return batch_lines::parse_page(response, "operations", "nextPageToken", "", read_operation,
                                   error);
}

namespace {
bool state_is(std::string_view state, std::string_view what) {
    return state == "BATCH_STATE_" + std::string(what) || state == "JOB_STATE_" + std::string(what);
}
}  // namespace

bool is_open(std::string_view state) {
    return state_is(state, "PENDING") || state_is(state, "RUNNING") ||
           state_is(state, "UNSPECIFIED");
}
bool is_failed(std::string_view state) {
    return state_is(state, "FAILED");
}
bool is_expired(std::string_view state) {
    return state_is(state, "EXPIRED");
}

std::string inline_lines(std::string_view operation) {
    boost::system::error_code ec;
    json::value v = json::parse(operation, ec);
    if (ec || !v.is_object()) throw std::runtime_error("the batch is not a JSON object");
    const json::object* out = output_of(v.get_object());
    const json::object* wrap = out ? object_at(*out, "inlinedResponses") : nullptr;
    const json::value* items = wrap ? wrap->if_contains("inlinedResponses") : nullptr;
    std::string lines;
    if (!items || !items->is_array()) return lines;
    for (const auto& item : items->get_array()) {
        if (!item.is_object()) continue;
        const auto& o = item.get_object();
        json::object line;
        if (auto* m = object_at(o, "metadata")) line["key"] = json::value(str(*m, "key"));
        if (auto* r = o.if_contains("response")) line["response"] = *r;
        if (auto* e = o.if_contains("error")) line["error"] = *e;
        lines += json::serialize(line);
        lines += '\n';
    }
    return lines;
}

int http_status_of_code(std::int64_t code) {
    switch (code) {
        case 0:
            return 200;
        case 1:
            return 499;  // CANCELLED
        case 3:
            return 400;  // INVALID_ARGUMENT
        case 4:
            return 504;  // DEADLINE_EXCEEDED
        case 5:
            return 404;  // NOT_FOUND
        case 6:
            return 409;  // ALREADY_EXISTS
        case 7:
            return 403;  // PERMISSION_DENIED
        case 8:
            return 429;  // RESOURCE_EXHAUSTED
        case 9:
            return 400;  // FAILED_PRECONDITION
        case 10:
            return 409;  // ABORTED
        case 11:
            return 400;  // OUT_OF_RANGE
        case 12:
            return 501;  // UNIMPLEMENTED
        case 14:
            return 503;  // UNAVAILABLE
        case 16:
            return 401;  // UNAUTHENTICATED
        default:
            return 500;  // UNKNOWN, INTERNAL, DATA_LOSS
    }
}

std::optional<Line> parse_line(std::string_view text, std::string* why) {
    auto parsed = batch_lines::line_object(text, why);
    if (!parsed) return std::nullopt;
    const json::object& o = *parsed;
    Line line;
    line.custom_id = str(o, "key");
    if (line.custom_id.empty())
        if (auto* m = object_at(o, "metadata")) line.custom_id = str(*m, "key");
    if (line.custom_id.empty()) {
        if (why) *why = "no key";
        return std::nullopt;
    }
    if (auto* r = o.if_contains("response"); r && r->is_object()) {
        line.response = batch_lines::json_response(200, json::serialize(*r));
    } else if (auto* e = object_at(o, "error")) {
        // A google.rpc.Status: the HTTP error answer a direct call would have had.
        const int status = http_status_of_code(num(*e, "code"));
        json::object err{
            {"code", status}, {"message", str(*e, "message")}, {"status", str(*e, "status")}};
        if (auto* d = e->if_contains("details")) err["details"] = *d;
        line.response = batch_lines::json_response(
            status, json::serialize(json::object{{"error", std::move(err)}}));
    } else {
        if (why) *why = "neither response nor error";
        return std::nullopt;
    }
    return line;
}

}  // namespace imgbatch::daemon::gemini_batch
