// Simulator behaviour: routing, directives, rate limit, counters. Bodies are in bodies.cpp.
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>

#include "daemon/sim/state.hpp"

namespace imgbatch::daemon {
namespace {

namespace json = boost::json;

bool parse_int(std::string_view text, int& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size();
}

// The path of an origin-form or absolute-form target, without the query.
std::string_view path_of(std::string_view target) {
    if (auto scheme = target.find("://"); scheme != std::string_view::npos) {
        auto slash = target.find('/', scheme + 3);
        target = slash == std::string_view::npos ? "/" : target.substr(slash);
    }
    return target.substr(0, target.find('?'));
}

std::string string_at(const json::object& obj, std::string_view key) {
    auto it = obj.find(key);
    return it != obj.end() && it->value().is_string() ? std::string(it->value().get_string())
                                                      : std::string();
}

std::optional<std::int64_t> int_at(const json::object& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (it->value().is_int64()) return it->value().get_int64();
    if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().get_uint64());
    if (it->value().is_double()) return static_cast<std::int64_t>(it->value().get_double());
    return std::nullopt;
}

// The last user message of a chat request: a string, or the text parts of a content array.
std::string chat_prompt(const json::object& body) {
    auto it = body.find("messages");
    if (it == body.end() || !it->value().is_array()) return {};
    std::string prompt;
    for (const auto& m : it->value().get_array()) {
        if (!m.is_object() || string_at(m.get_object(), "role") != "user") continue;
        const auto* content = m.get_object().if_contains("content");
        prompt.clear();
        if (content && content->is_string()) prompt = std::string(content->get_string());
        if (content && content->is_array())
            for (const auto& part : content->get_array())
                if (part.is_object()) prompt += string_at(part.get_object(), "text");
    }
    return prompt;
}

// The text parts of the last user entry of a generateContent request.
std::string gemini_prompt(const json::object& body) {
    auto it = body.find("contents");
    if (it == body.end() || !it->value().is_array()) return {};
    std::string prompt;
    for (const auto& c : it->value().get_array()) {
        if (!c.is_object()) continue;
        auto role = string_at(c.get_object(), "role");
        if (!role.empty() && role != "user") continue;
        const auto* parts = c.get_object().if_contains("parts");
        if (!parts || !parts->is_array()) continue;
        prompt.clear();
        for (const auto& part : parts->get_array())
            if (part.is_object()) prompt += string_at(part.get_object(), "text");
    }
    return prompt;
}

// The aspect ratios the Gemini image models accept (3.1 Flash's extreme ones included).
bool gemini_aspect_ratio(std::string_view r) {
    for (std::string_view ok : {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9",
                                "21:9", "1:4", "4:1", "1:8", "8:1"})
        if (r == ok) return true;
    return false;
}

SimAnswer json_answer(int status, std::string body) {
    SimAnswer a;
    a.status = status;
    a.headers = {{"Content-Type", "application/json"}};
    a.body = std::move(body);
    return a;
}

}  // namespace

std::string query_param(std::string_view target, std::string_view name) {
    auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        if (pair.substr(0, pair.find('=')) == name && pair.find('=') != std::string_view::npos)
            return std::string(pair.substr(pair.find('=') + 1));
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    }
    return {};
}

SimDirectives parse_directives(std::string_view prompt) {
    SimDirectives d;
    std::size_t i = 0;
    while (i < prompt.size()) {
        while (i < prompt.size() && std::isspace(static_cast<unsigned char>(prompt[i]))) ++i;
        std::size_t end = i;
        while (end < prompt.size() && !std::isspace(static_cast<unsigned char>(prompt[end]))) ++end;
        std::string_view token = prompt.substr(i, end - i);
        i = end;
        if (token.starts_with("#fail=") && d.fail.empty()) {
            std::string_view spec = token.substr(6);
            auto star = spec.find('*');
            int count = -1;
            if (star != std::string_view::npos && !parse_int(spec.substr(star + 1), count))
                count = -1;
            d.fail = std::string(spec.substr(0, star));
            d.fail_count = count;
        } else if (token.starts_with("#slow=")) {
            int ms = 0;
            if (parse_int(token.substr(6), ms) && ms > 0) d.slow_ms = ms;
        } else if (token == "#url") {
            d.url = true;
        } else if (token == "#datauri") {
            d.datauri = true;
        } else if (token == "#chatshape") {
            d.chatshape = true;
        }
    }
    return d;
}

SimState::SimState(SimOptions options)
    : options_(std::move(options)),
      rng_(options_.seed),
      tokens_(std::max(1.0, options_.requests_per_minute / 60.0)),
      refilled_(std::chrono::steady_clock::now()),
      gateway_refilled_(refilled_) {}

SimAnswer SimState::handle(const SimRequest& request) {
    std::string_view path = path_of(request.target);
    if (path == "/sim/stats") return json_answer(200, stats_json());
    if (path == "/sim/reset") {
        if (request.method != "POST") return json_answer(405, R"({"error":"use POST"})");
        reset_counters();
        return json_answer(200, R"({"ok":true})");
    }
    if (path.starts_with("/sim/files/")) return serve_file(path);
    if (auto batch = batch_api(request, path)) {
        batch->delay_ms += std::max(0, options_.latency_ms);
        return std::move(*batch);
    }
    if (auto batch = gemini_batch_api(request, path)) {
        batch->delay_ms += std::max(0, options_.latency_ms);
        return std::move(*batch);
    }

    SimApi api;
    if (path.ends_with("/images/generations"))
        api = SimApi::openai;
    else if (path.ends_with("/chat/completions"))
        api = SimApi::chat;
    else if (path.find("/models/") != std::string_view::npos && path.ends_with(":predict"))
        api = SimApi::google;
    else if (path.find("/models/") != std::string_view::npos && path.ends_with(":generateContent"))
        api = SimApi::gemini;
    else
        return json_answer(
            404,
            R"({"error":{"message":"Unknown path","type":"invalid_request_error","code":"not_found"}})");
    if (request.method != "POST")
        return json_answer(405,
                           R"({"error":{"message":"Use POST","type":"invalid_request_error"}})");

    ++requests_;
    ++by_path_[std::string(path)];
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    SimAnswer answer;
    if (auto refused = gateway_limit())
        answer = std::move(*refused);
    else
        answer = api_call(api, request, path);
    if (options_.ratelimit_headers && options_.requests_per_minute > 0)
        add_ratelimit_headers(answer);
    answer.counted = true;
    return answer;
}

std::optional<SimAnswer> SimState::expired_token(SimApi api, const SimRequest& request) {
    std::string token;
    if (request.authorization.starts_with("Bearer "))
        token = request.authorization.substr(7);
    else if (api == SimApi::google || api == SimApi::gemini)
        token = request.goog_api_key;
    if (!token.empty() && token_calls_[token] < options_.token_uses) {
        ++token_calls_[token];
        return std::nullopt;
    }
    ++tokens_expired_;
    // As Google answers an expired OAuth access token (the token is not echoed).
    return error(api, 401, "invalid_request_error", "invalid_api_key",
                 "Request had invalid authentication credentials. Expected OAuth 2 access "
                 "token, login cookie or other valid authentication credential.",
                 "UNAUTHENTICATED");
}

SimAnswer SimState::api_call(SimApi api, const SimRequest& request, std::string_view path) {
    if (options_.token_uses > 0)
        if (auto expired = expired_token(api, request)) return std::move(*expired);
    if (!options_.api_key.empty()) {
        const std::string bearer = "Bearer " + options_.api_key;
        bool ok = request.authorization == bearer ||
                  ((api == SimApi::google || api == SimApi::gemini) &&
                   (request.goog_api_key == options_.api_key ||
                    query_param(request.target, "key") == options_.api_key));
        if (!ok)
            return error(api, 401, "invalid_request_error", "invalid_api_key",
                         "Incorrect API key provided.", "UNAUTHENTICATED");
    }
    if (auto limited = rate_limit(api)) return std::move(*limited);

    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec || !parsed.is_object())
        return error(api, 400, "invalid_request_error", "invalid_json",
                     "We could not parse the JSON body of your request.", "INVALID_ARGUMENT");
    const json::object& body = parsed.get_object();

    Call call;
    call.api = api;
    call.base =
        "http://" + (request.host.empty() ? "127.0.0.1:" + std::to_string(port_) : request.host);
    std::int64_t n = 1;
    if (api == SimApi::openai) {
        call.model = string_at(body, "model");
        call.prompt = string_at(body, "prompt");
        n = int_at(body, "n").value_or(1);
        call.url = string_at(body, "response_format") == "url";
    } else if (api == SimApi::google) {
        auto start = path.find("/models/") + 8;
        call.model = std::string(path.substr(start, path.size() - start - 8));
        if (const auto* inst = body.if_contains("instances"); inst && inst->is_array() &&
                                                              !inst->get_array().empty() &&
                                                              inst->get_array()[0].is_object())
            call.prompt = string_at(inst->get_array()[0].get_object(), "prompt");
        if (const auto* params = body.if_contains("parameters"); params && params->is_object())
            n = int_at(params->get_object(), "sampleCount").value_or(1);
    } else if (api == SimApi::gemini) {
        auto start = path.rfind("/models/") + 8;
        auto colon = path.rfind(':');
        call.model = std::string(path.substr(start, colon - start));
        call.prompt = gemini_prompt(body);
        const auto* gc = body.if_contains("generationConfig");
        const auto* ic =
            gc && gc->is_object() ? gc->get_object().if_contains("imageConfig") : nullptr;
        if (const auto* m = gc && gc->is_object()
                                ? gc->get_object().if_contains("responseModalities")
                                : nullptr;
            m && m->is_array()) {
            call.text_only = true;  // the models answer in text unless asked for images
            for (const auto& x : m->get_array())
                if (x.is_string() && x.get_string() == "IMAGE") call.text_only = false;
        }
        if (ic && ic->is_object()) {
            auto ratio = string_at(ic->get_object(), "aspectRatio");
            if (!ratio.empty() && !gemini_aspect_ratio(ratio))
                return error(api, 400, "invalid_request_error", "invalid_value",
                             "Unsupported aspect ratio: " + ratio, "INVALID_ARGUMENT");
        }
    } else {
        call.model = string_at(body, "model");
        call.prompt = chat_prompt(body);
    }
    if (call.prompt.empty())
        return error(api, 400, "invalid_request_error", "missing_required_parameter",
                     api == SimApi::chat     ? "Missing required parameter: 'messages'."
                     : api == SimApi::gemini ? "* GenerateContentRequest.contents: contents is "
                                               "not specified"
                                             : "Missing required parameter: 'prompt'.",
                     "INVALID_ARGUMENT");
    if (n < 1 || n > 100)
        return error(api, 400, "invalid_request_error", "invalid_value",
                     "Invalid value for 'n': must be between 1 and 100.", "INVALID_ARGUMENT");
    call.n = api == SimApi::chat || api == SimApi::gemini ? 1 : static_cast<int>(n);

    SimDirectives d = parse_directives(call.prompt);
    call.url = call.url || d.url;
    call.datauri = d.datauri;
    call.chatshape = d.chatshape && api == SimApi::openai;
    int delay = std::max(0, options_.latency_ms) + d.slow_ms;
    if (options_.jitter_ms > 0)
        delay += static_cast<int>(rng_() % static_cast<std::uint64_t>(options_.jitter_ms));

    SimAnswer answer;
    bool directed = false;
    if (!d.fail.empty()) {
        int seen = ++calls_by_prompt_[call.prompt];
        directed = d.fail_count < 0 || seen <= d.fail_count;
    }
    if (directed) {
        answer = fault(call, d.fail);
    } else if (options_.fault_rate > 0 &&
               std::uniform_real_distribution<double>(0, 1)(rng_) < options_.fault_rate) {
        static constexpr std::string_view kinds[] = {"429", "500", "503", "reset", "badjson"};
        answer = fault(call, kinds[rng_() % std::size(kinds)]);
    } else {
        answer = call.text_only ? gemini_no_image(call, "STOP", "")
                                : images(call, call.n, 0, Bytes::png);
    }
    answer.delay_ms += delay;
    return answer;
}

std::optional<SimAnswer> SimState::rate_limit(SimApi api) {
    if (options_.requests_per_minute <= 0 || batch_line_) return std::nullopt;
    // Token bucket: refills at rpm/60 per second, holds at most max(1, rpm/60).
    const double rate = options_.requests_per_minute / 60.0;
    const double burst = std::max(1.0, rate);
    auto now = std::chrono::steady_clock::now();
    tokens_ =
        std::min(burst, tokens_ + rate * std::chrono::duration<double>(now - refilled_).count());
    refilled_ = now;
    if (tokens_ >= 1.0) {
        tokens_ -= 1.0;
        return std::nullopt;
    }
    ++rate_limited_;
    const double wait_ms = std::ceil((1.0 - tokens_) / rate * 1000.0);
    SimAnswer a = error(api, 429, "requests", "rate_limit_exceeded", "Rate limit reached",
                        "RESOURCE_EXHAUSTED");
    a.headers.emplace_back(
        "Retry-After", std::to_string(std::max(1, static_cast<int>(std::ceil(wait_ms / 1000)))));
    a.headers.emplace_back("retry-after-ms", std::to_string(static_cast<long long>(wait_ms)));
    return a;
}

std::optional<SimAnswer> SimState::gateway_limit() {
    if (options_.gateway_rpm <= 0) return std::nullopt;
    // nginx limit_req without burst: a request sooner than 60/rate after the last one let
    // through is refused with 503 and nginx's error page, without Retry-After.
    const double rate = options_.gateway_rpm / 60.0;
    auto now = std::chrono::steady_clock::now();
    gateway_tokens_ =
        std::min(1.0, gateway_tokens_ +
                          rate * std::chrono::duration<double>(now - gateway_refilled_).count());
    gateway_refilled_ = now;
    if (gateway_tokens_ >= 1.0) {
        gateway_tokens_ -= 1.0;
        return std::nullopt;
    }
    ++gateway_refused_;
    SimAnswer a;
    a.status = 503;
    a.headers = {{"Content-Type", "text/html"}, {"Server", "nginx"}};
    a.body =
        "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
        "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx"
        "</center>\r\n</body>\r\n</html>\r\n";
    return a;
}

void SimState::add_ratelimit_headers(SimAnswer& answer) const {
    // OpenAI's shape: the limit per minute, what is left, and when the bucket is full again.
    const double rate = options_.requests_per_minute / 60.0;
    const double burst = std::max(1.0, rate);
    const double tokens = std::clamp(tokens_, 0.0, burst);
    const long long reset_ms = static_cast<long long>(std::ceil((burst - tokens) / rate * 1000));
    answer.headers.emplace_back(
        "x-ratelimit-limit-requests",
        std::to_string(static_cast<long long>(std::llround(options_.requests_per_minute))));
    answer.headers.emplace_back("x-ratelimit-remaining-requests",
                                std::to_string(static_cast<long long>(std::floor(tokens))));
    answer.headers.emplace_back("x-ratelimit-reset-requests", std::to_string(reset_ms) + "ms");
}

SimAnswer SimState::serve_file(std::string_view path) {
    ++by_path_["/sim/files"];
    std::string id(path.substr(std::string_view("/sim/files/").size()));
    if (id.ends_with(".png")) id.resize(id.size() - 4);
    auto it = file_index_.find(id);
    if (it == file_index_.end()) return json_answer(404, R"({"error":"no such file"})");
    files_.splice(files_.begin(), files_, it->second);  // most recently used first
    ++files_served_;
    SimAnswer a;
    a.headers = {{"Content-Type", "image/png"}};
    a.body = it->second->second;
    return a;
}

std::string SimState::store_file(std::string bytes) {
    std::string id = std::to_string(next_id_++) + "-" + std::to_string(rng_() % 1000000);
    files_.emplace_front(id, std::move(bytes));
    file_index_[id] = files_.begin();
    while (files_.size() > std::max<std::size_t>(1, options_.max_files)) {
        file_index_.erase(files_.back().first);
        files_.pop_back();
    }
    return id;
}

void SimState::finished(const SimAnswer& answer) {
    if (!answer.counted) return;
    if (in_flight_ > 0) --in_flight_;
    switch (answer.action) {
        case SimAnswer::Action::respond:
            ++by_status_[std::to_string(answer.status)];
            images_ += static_cast<std::uint64_t>(answer.images);
            break;
        case SimAnswer::Action::reset:
            ++by_status_["reset"];
            break;
        case SimAnswer::Action::hold:
            ++by_status_["timeout"];
            break;
        case SimAnswer::Action::truncate:
            ++by_status_["truncated"];
            break;
        case SimAnswer::Action::close:
            ++by_status_["closed"];
            break;
    }
}

std::string SimState::stats_json() const {
    json::object by_status, by_path;
    for (const auto& [k, v] : by_status_) by_status[k] = v;
    for (const auto& [k, v] : by_path_) by_path[k] = v;
    json::object o;
    o["requests"] = requests_;
    o["by_status"] = std::move(by_status);
    o["in_flight"] = in_flight_;
    o["max_in_flight"] = max_in_flight_;
    o["rate_limited"] = rate_limited_;
    o["gateway_refused"] = gateway_refused_;
    o["tokens"] = token_calls_.size();
    o["tokens_expired"] = tokens_expired_;
    o["images"] = images_;
    o["connections"] = connections_;
    o["files_served"] = files_served_;
    o["by_path"] = std::move(by_path);
    batch_stats(o);
    gemini_batch_stats(o);
    return json::serialize(o);
}

void SimState::reset_counters() {
    requests_ = rate_limited_ = gateway_refused_ = images_ = connections_ = files_served_ = 0;
    tokens_expired_ = 0;
    max_in_flight_ = in_flight_;  // requests still running stay counted
    by_status_.clear();
    by_path_.clear();
    calls_by_prompt_.clear();
}

}  // namespace imgbatch::daemon
