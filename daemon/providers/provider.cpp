#include "daemon/providers/provider.hpp"

#include "jobs/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "daemon/image.hpp"
#include "daemon/providers/gemini.hpp"
#include "daemon/providers/google_predict.hpp"
#include "daemon/providers/openai_chat.hpp"
#include "daemon/providers/openai_images.hpp"
#include "jobs/retry_policy.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

constexpr std::array<ProviderApi, 4> kApis{{
    {"openai", &build_openai_images, &parse_openai_images, &parse_openai_images_owned},
    {"google", &build_google_predict, &parse_google_predict, &parse_google_predict_owned},
    {"openai-chat", &build_openai_chat, &parse_openai_chat, &parse_openai_chat_owned},
    {"gemini", &build_gemini, &parse_gemini, &parse_gemini_owned},
}};

// Provider messages are kept whole unless absurdly long.
constexpr std::size_t kMaxMessage = 1000;

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Cuts s to at most max bytes without splitting a UTF-8 sequence.
std::string truncate_utf8(std::string s, std::size_t max) {
    if (s.size() <= max) return s;
    std::size_t cut = max >= 3 ? max - 3 : 0;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
    s.resize(cut);
    s += "...";
    return s;
}

std::optional<double> parse_number(std::string_view s) {
    s = trim(s);
    if (s.empty()) return std::nullopt;
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
    return std::max(0.0, v);
}

double clamp_wait(double seconds) {
    return std::clamp(seconds, 0.0, kMaxRetryAfterS);
}

std::string string_field(const json::object& o, std::string_view key) {
    if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->get_string());
    return {};
}

struct ErrorFields {
    std::string code;
    std::string message;
};

// The provider's code and message from the error shapes seen in the wild: OpenAI
// {"error":{code,type,message,param}}, Google {"error":{code:429,status,message}}, relays'
// {"error":"text"}, {"message":...} and FastAPI's {"detail":...}.
ErrorFields error_fields(const json::object& body) {
    ErrorFields f;
    if (auto* e = body.if_contains("error")) {
        if (e->is_object()) {
            const auto& eo = e->get_object();
            f.code = string_field(eo, "code");
            if (f.code.empty()) f.code = string_field(eo, "status");
            if (f.code.empty()) f.code = string_field(eo, "type");
            f.message = string_field(eo, "message");
            if (auto param = string_field(eo, "param"); !param.empty() && !f.message.empty())
                f.message += " (param: " + param + ")";
        } else if (e->is_string()) {
            f.message = std::string(e->get_string());
        }
    }
    if (f.code.empty()) f.code = string_field(body, "code");
    if (f.code.empty()) f.code = string_field(body, "type");
    if (f.message.empty()) f.message = string_field(body, "message");
    if (f.message.empty()) {
        if (auto* d = body.if_contains("detail")) {
            f.message = d->is_string() ? std::string(d->get_string()) : json::serialize(*d);
        }
    }
    f.code = valid_utf8(f.code);
    f.message = truncate_utf8(valid_utf8(trim(f.message)), kMaxMessage);
    return f;
}

void append_entity(std::string_view& in, std::string& out) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kEntities{{
        {"&amp;", "&"},
        {"&lt;", "<"},
        {"&gt;", ">"},
        {"&quot;", "\""},
        {"&#39;", "'"},
        {"&apos;", "'"},
        {"&nbsp;", " "},
    }};
    for (auto [name, text] : kEntities) {
        if (in.substr(0, name.size()) == name) {
            out += text;
            in.remove_prefix(name.size());
            return;
        }
    }
    out += '&';
    in.remove_prefix(1);
}

}  // namespace

const ProviderApi* find_provider_api(std::string_view api) {
    for (const auto& a : kApis)
        if (a.name == api) return &a;
    return nullptr;
}

std::string body_excerpt(std::string_view body, std::size_t max_chars) {
    std::string out;
    bool space = false;
    auto push = [&](char c) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            space = !out.empty();
            return;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    };
    std::string_view in = body;
    while (!in.empty() && out.size() <= max_chars + 4) {
        char c = in.front();
        if (c == '<') {
            // Script and style bodies are not text a person would read.
            for (std::string_view skip : {"<script", "<style"}) {
                if (in.size() >= skip.size() &&
                    std::equal(skip.begin(), skip.end(), in.begin(), [](char a, char b) {
                        return a == std::tolower(static_cast<unsigned char>(b));
                    })) {
                    auto close = in.find(skip == "<script" ? "</script" : "</style");
                    in.remove_prefix(close == std::string_view::npos ? in.size() : close);
                    break;
                }
            }
            auto end = in.find('>');
            in.remove_prefix(end == std::string_view::npos ? in.size() : end + 1);
            push(' ');  // a tag separates words
            continue;
        }
        if (c == '&') {
            std::string decoded;
            append_entity(in, decoded);
            for (char d : decoded) push(d);
            continue;
        }
        push(c);
        in.remove_prefix(1);
    }
    return truncate_utf8(valid_utf8(out), max_chars);
}

std::string valid_utf8(std::string_view text) {
    static constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        std::size_t n = jobs::utf8_sequence_at(text, i);
        if (n == 0 || text[i] == '\0') {  // NUL, a stray byte or a broken sequence: one
            out += kReplacement;          // replacement per byte
            ++i;
            continue;
        }
        out.append(text.substr(i, n));
        i += n;
    }
    return out;
}

std::optional<double> retry_after_seconds(const Headers& headers,
                                          std::chrono::system_clock::time_point now) {
    if (auto ms = find_header(headers, "retry-after-ms"); !ms.empty()) {
        if (auto v = parse_number(ms)) return clamp_wait(*v / 1000.0);
    }
    auto ra = trim(find_header(headers, "retry-after"));
    if (ra.empty()) return std::nullopt;
    if (auto v = parse_number(ra)) return clamp_wait(*v);
    if (auto t = parse_http_date(ra, now)) {
        // In seconds as doubles: exact enough, and no clock type can overflow.
        const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
        return clamp_wait(static_cast<double>(*t) - now_s);
    }
    return std::nullopt;
}

jobs::Error error_from_response(const HttpResponse& response) {
    return error_from_response(response, std::chrono::system_clock::now());
}

jobs::Error error_from_response(const HttpResponse& response,
                                std::chrono::system_clock::time_point now) {
    jobs::Error err;
    err.http_status = response.status;
    err.retry_after_s = retry_after_seconds(response.headers, now);

    ErrorFields f;
    json::error_code ec;
    json::value v = json::parse(response.body, ec);
    if (!ec && v.is_object()) f = error_fields(v.get_object());
    if (f.message.empty()) f.message = body_excerpt(response.body);
    if (f.message.empty())
        f.message = "HTTP " + std::to_string(response.status) + " with an empty body";

    err.cls =
        jobs::classify_http(response.status, f.code, f.message, err.retry_after_s.has_value());
    err.code = f.code.empty() ? "http_" + std::to_string(response.status) : f.code;
    err.message = std::move(f.message);
    return err;
}

jobs::Error bad_response_error(int http_status, std::string code, std::string message) {
    jobs::Error err;
    err.cls = jobs::ErrorClass::bad_response;
    err.http_status = http_status;
    err.code = std::move(code);
    err.message = std::move(message);
    return err;
}

std::optional<jobs::Error> error_in_success_body(const json::object& body, int http_status) {
    auto* e = body.if_contains("error");
    if (!e || e->is_null()) return std::nullopt;
    ErrorFields f = error_fields(body);
    if (f.message.empty()) f.message = truncate_utf8(valid_utf8(json::serialize(*e)), 300);
    // Classify as the 400 it stands for, but keep only the classes that a 200 can mean: a
    // relay's unknown error is retried, not failed at once.
    auto cls = jobs::classify_http(400, f.code, f.message, false);
    if (cls != jobs::ErrorClass::moderation && cls != jobs::ErrorClass::quota)
        cls = jobs::ErrorClass::bad_response;
    jobs::Error err = bad_response_error(http_status, f.code.empty() ? "error_in_body" : f.code,
                                         std::move(f.message));
    err.cls = cls;
    return err;
}

Headers json_request_headers(const ProviderConfig& provider, std::string_view auth_name,
                             std::string auth_value) {
    Headers h{{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!auth_value.empty()) h.emplace_back(std::string(auth_name), std::move(auth_value));
    for (const auto& header : provider.headers) {
        const std::string& name = header.first;  // (clang 14 cannot capture a binding)
        std::erase_if(h, [&](const auto& kv) {
            return kv.first.size() == name.size() &&
                   std::equal(name.begin(), name.end(), kv.first.begin(), [](char a, char b) {
                       return std::tolower(static_cast<unsigned char>(a)) ==
                              std::tolower(static_cast<unsigned char>(b));
                   });
        });
        h.emplace_back(name, header.second);
    }
    return h;
}

std::optional<ImageItem> decode_data_uri(std::string_view uri) {
    auto comma = uri.find(',');
    if (!uri.starts_with("data:") || comma == std::string_view::npos) return std::nullopt;
    std::string_view meta = uri.substr(5, comma - 5);
    if (!meta.ends_with(";base64")) return std::nullopt;
    auto bytes = base64_decode(uri.substr(comma + 1));
    if (!bytes) return std::nullopt;
    ImageItem item;
    item.bytes = std::move(*bytes);
    item.claimed_mime = std::string(meta.substr(0, meta.size() - 7));
    return item;
}

std::string join_url(std::string_view base_url, std::string_view path) {
    while (!base_url.empty() && base_url.back() == '/') base_url.remove_suffix(1);
    std::string url(base_url);
    if (!path.empty() && path.front() != '/') url += '/';
    url += path;
    return url;
}

std::optional<jobs::Error> drop_invalid_urls(std::vector<ImageItem>& images, int http_status) {
    std::optional<jobs::Error> err;
    std::size_t index = 0;
    std::erase_if(images, [&](const ImageItem& item) {
        ++index;
        Url url;
        if (!item.bytes.empty() || item.url.empty() || parse_url(item.url, url)) return false;
        if (!err)
            err =
                bad_response_error(http_status, "invalid_url",
                                   "image " + std::to_string(index) +
                                       ": not a valid http(s) URL: " + body_excerpt(item.url, 200));
        return true;
    });
    return err;
}

bool says_model_gone(const jobs::Error& error, std::string_view model) {
    const auto lower = [](std::string_view s) {
        std::string out(s);
        for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return out;
    };
    const int status = error.http_status;
    if (status == 0 || status == 401 || status == 429) return false;
    if (lower(error.code) == "model_not_found") return true;
    const bool client_error = status == 400 || status == 403 || status == 404 || status == 410;
    const bool body_error = status >= 200 && status <= 299;
    if (!client_error && !body_error) return false;
    const std::string msg = lower(error.message);
    if (model.empty() || msg.find(lower(model)) == std::string::npos) return false;
    for (std::string_view phrase :
         {"does not exist", "not found", "has been deprecated", "was deprecated", "was retired",
          "has been retired", "has been shut down", "was shut down", "no longer available",
          "no longer supported"})
        if (msg.find(phrase) != std::string::npos) return true;
    return false;
}

void mark_model_gone(jobs::Error& error, std::string_view replacement) {
    error.cls = jobs::ErrorClass::invalid_request;
    error.retry_after_s.reset();
    if (!replacement.empty())
        error.message += "; the catalog's replacement: " + std::string(replacement);
}

json::object* success_body(const HttpResponse& response, json::value& storage, ParsedResponse& out,
                           ErrorObject error_object) {
    if (response.status < 200 || response.status > 299) {
        out.error = error_from_response(response);
        return nullptr;
    }
    json::error_code ec;
    storage = json::parse(response.body, ec);
    if (ec || !storage.is_object()) {
        out.error = bad_response_error(
            response.status, "not_json",
            "the answer is not a JSON object: " + body_excerpt(response.body, 200));
        return nullptr;
    }
    auto& body = storage.get_object();
    if (error_object == ErrorObject::reject) {
        if (auto err = error_in_success_body(body, response.status)) {
            out.error = std::move(err);
            return nullptr;
        }
    }
    return &body;
}

}  // namespace imgbatch::daemon

namespace imgbatch::daemon {

HttpRequest google_style_request(const ProviderConfig& provider, std::string_view api_key,
                                 const std::string& path, const boost::json::object& body) {
    HttpRequest http;
    http.url = join_url(provider.base_url, path);
    std::string key(api_key);
    if (provider.auth == "bearer")
        http.headers =
            json_request_headers(provider, "Authorization", key.empty() ? "" : "Bearer " + key);
    else
        http.headers = json_request_headers(provider, "x-goog-api-key", key);
    http.body = boost::json::serialize(body);
    return http;
}

}  // namespace imgbatch::daemon
