#include "daemon/providers/batch_lines.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cmath>
#include <cstdint>
#include <limits>

#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon::batch_lines {
namespace json = boost::json;

HttpRequest request(std::string_view method, std::string url, Headers headers) {
    HttpRequest r;
    r.method = std::string(method);
    r.url = std::move(url);
    r.headers = std::move(headers);
    if (method == "GET")
        r.headers.erase(std::remove_if(r.headers.begin(), r.headers.end(),
                                       [](const auto& h) { return h.first == "Content-Type"; }),
                        r.headers.end());
    return r;
}

void accept_any(HttpRequest& request) {
    for (auto& h : request.headers)
        if (h.first == "Accept") h.second = "*/*";
}

const json::object* body_object(const HttpResponse& response, json::value& storage,
                                std::optional<jobs::Error>& error) {
    if (response.status < 200 || response.status > 299) {
        error = error_from_response(response);
        return nullptr;
    }
    boost::system::error_code ec;
    storage = json::parse(response.body, ec);
    if (ec || !storage.is_object()) {
        error =
            bad_response_error(response.status, "not_json",
                               "the answer is not a JSON object: " + body_excerpt(response.body));
        return nullptr;
    }
    return &storage.get_object();
}

std::optional<batch_types::Batch> parse_batch(const HttpResponse& response, ReadBatch read,
                                              std::string_view no_id_message,
                                              std::optional<jobs::Error>& error) {
    json::value v;
    const auto* o = body_object(response, v, error);
    if (!o) return std::nullopt;
    batch_types::Batch b = read(*o);
    if (b.id.empty() || b.status.empty()) {
        error = bad_response_error(response.status, "no_id", std::string(no_id_message));
        return std::nullopt;
    }
    return b;
}

std::optional<batch_types::BatchPage> parse_page(const HttpResponse& response,
                                                 std::string_view list_key,
                                                 std::string_view cursor_key,
                                                 std::string_view more_key, ReadBatch read,
                                                 std::optional<jobs::Error>& error) {
    json::value v;
    const auto* o = body_object(response, v, error);
    if (!o) return std::nullopt;
    batch_types::BatchPage page;
    if (auto* d = o->if_contains(list_key); d && d->is_array())
        for (const auto& item : d->get_array())
            if (item.is_object()) page.batches.push_back(read(item.get_object()));
    page.last_id = str(*o, cursor_key);
    if (more_key.empty())
        page.has_more = !page.last_id.empty();
    else if (auto* m = o->if_contains(more_key); m && m->is_bool())
        page.has_more = m->get_bool();
    return page;
}

std::optional<json::object> line_object(std::string_view text, std::string* why) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) {
        if (why) *why = "not a JSON object";
        return std::nullopt;
    }
    return std::move(v.get_object());
}

HttpResponse json_response(int status, std::string body) {
    return HttpResponse{status, {{"Content-Type", "application/json"}}, std::move(body)};
}

std::string str(const json::object& o, std::string_view key) {
    auto* p = o.if_contains(key);
    return p && p->is_string() ? std::string(p->get_string()) : std::string();
}

std::int64_t num(const json::object& o, std::string_view key, Digits digits) {
    auto* p = o.if_contains(key);
    if (!p) return 0;
    // A count out of the int64 range is as unreadable as a missing one: 0, never a wrapped
    // value (nor the undefined behaviour of converting it).
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    if (p->is_int64()) return p->get_int64();
    if (p->is_uint64())
        return p->get_uint64() <= static_cast<std::uint64_t>(kMax)
                   ? static_cast<std::int64_t>(p->get_uint64())
                   : 0;
    if (p->is_double()) {
        const double d = p->get_double();
        // 2^63 is exact as a double; everything below it converts.
        return std::isfinite(d) && d > -9223372036854775808.0 && d < 9223372036854775808.0
                   ? static_cast<std::int64_t>(d)
                   : 0;
    }
    if (p->is_string() && digits == Digits::accept) {
        std::int64_t v = 0;
        for (char c : p->get_string()) {
            if (c < '0' || c > '9') return 0;
            if (v > (kMax - (c - '0')) / 10) return 0;
            v = v * 10 + (c - '0');
        }
        return v;
    }
    return 0;
}

const json::object* object_at(const json::object& o, std::string_view key) {
    auto* p = o.if_contains(key);
    return p && p->is_object() ? &p->get_object() : nullptr;
}

}  // namespace imgbatch::daemon::batch_lines
