#include "daemon/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/net/http.hpp"
#include "jobs/text.hpp"

namespace imgbatch::daemon {
namespace {

namespace json = boost::json;

// Bounds of the numbers a configuration may hold. A time is at most a day (kDay): every
// clock and timer the daemon has holds that without overflow. A field not given its own
// bounds gets kMaxInteger / kMaxNumber.
constexpr long long kMaxInteger = 1'000'000'000;
constexpr double kMaxNumber = 1e9;
constexpr double kDay = 86400;
constexpr double kMinTime = 0.001;  // a millisecond: the resolution of the daemon's timers
constexpr double kMaxRate = 1e6;    // per minute
constexpr int kMaxCount = 1000;     // attempts, retries
constexpr long long kMaxResponseBytes = 16ll << 30;

// Reads a field of one JSON object, naming every problem with the file and the field's path
// ("providers[0].max_concurrency"), and refusing keys it was not asked about.
class Fields {
  public:
    Fields(const json::object& obj, std::string source, std::string path)
        : obj_(obj), source_(std::move(source)), path_(std::move(path)) {}

    [[noreturn]] void fail(std::string_view key, const std::string& what) const {
        throw ConfigError(source_ + ": '" + name(key) + "' " + what);
    }
    [[noreturn]] void bad(std::string_view key, const std::string& expected,
                          const json::value& got) const {
        fail(key, "must be " + expected + ", got " + json::serialize(got));
    }

    std::string name(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }

    const json::value* get(std::string_view key) {
        if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
        return obj_.if_contains(key);
    }

    void string(std::string_view key, std::string& out, bool non_empty = false) {
        const auto* v = get(key);
        if (!v) return;
        if (!v->is_string() || (non_empty && v->get_string().empty()))
            bad(key, non_empty ? "a non-empty string" : "a string", *v);
        out = std::string(v->get_string());
    }

    // An integer from min to max.
    void integer(std::string_view key, int& out, long long min, long long max = kMaxInteger) {
        const auto* v = get(key);
        if (!v) return;
        auto n = v->to_number<long long>(ec_);
        // Accept 3.0 but not 3.5 or "3": to_number converts exactly or fails.
        if (ec_ || v->is_bool() || n < min || n > max)
            bad(key, "an integer >= " + std::to_string(min) + " and <= " + std::to_string(max), *v);
        out = static_cast<int>(n);
    }

    void size(std::string_view key, std::size_t& out, long long min, long long max) {
        const auto* v = get(key);
        if (!v) return;
        auto n = v->to_number<long long>(ec_);
        if (ec_ || v->is_bool() || n < min || n > max)
            bad(key, "an integer >= " + std::to_string(min) + " and <= " + std::to_string(max), *v);
        out = static_cast<std::size_t>(n);
    }

    // A number >= min (or > min when strict) and <= max. Times are bounded so that no clock
    // or timer arithmetic can overflow (a day is far below that).
    void number(std::string_view key, double& out, double min, bool strict = false,
                double max = kMaxNumber) {
        const auto* v = get(key);
        if (!v) return;
        double d = v->is_number() ? v->to_number<double>() : NAN;
        if (!std::isfinite(d) || d < min || (strict && d == min) || d > max) {
            std::ostringstream expected;
            expected << "a number " << (strict ? "> " : ">= ") << min << " and <= " << max;
            bad(key, expected.str(), *v);
        }
        out = d;
    }

    // A time in seconds: at most a day unless max says less.
    void seconds(std::string_view key, double& out, double min, double max = kDay) {
        number(key, out, min, false, max);
    }
    // A rate per minute; 0 is "unlimited".
    void per_minute(std::string_view key, double& out) { number(key, out, 0, false, kMaxRate); }

    const json::object* object(std::string_view key) {
        const auto* v = get(key);
        if (!v) return nullptr;
        if (!v->is_object()) bad(key, "an object", *v);
        return &v->get_object();
    }

    // Every key of the object must have been asked for.
    void no_unknown_keys() const {
        for (const auto& [k, v] : obj_) {
            if (std::find(known_.begin(), known_.end(), std::string_view(k)) == known_.end())
                throw ConfigError(source_ + ": unknown key '" + name(k) +
                                  "' (known: " + jobs::join(known_) + ")");
        }
    }

  private:
    const json::object& obj_;
    std::string source_;
    std::string path_;
    std::vector<std::string> known_;
    boost::system::error_code ec_;
};

json::value parse_json(std::string_view text, const std::string& source) {
    json::parse_options opts;
    opts.allow_comments = true;
    opts.allow_trailing_commas = true;
    json::stream_parser parser({}, opts);
    boost::system::error_code ec;
    std::size_t used = parser.write_some(text.data(), text.size(), ec);
    if (!ec) {
        used = text.size();
        parser.finish(ec);
    }
    if (ec) {
        int line = 1, column = 1;
        for (std::size_t i = 0; i < used && i < text.size(); ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        throw ConfigError(source + ": malformed JSON at line " + std::to_string(line) + " column " +
                          std::to_string(column) + ": " + ec.message());
    }
    return parser.release();
}

// An HTTP field name (RFC 9110 token).
bool is_header_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                      std::string_view::npos;
    });
}

// An HTTP field value: no control characters but tab (a CR or LF would end the header).
bool is_header_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(),
                        [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

void parse_retry(const json::object& obj, const std::string& source, jobs::RetryConfig& r) {
    Fields f(obj, source, "retry");
    f.integer("max_attempts", r.max_attempts, 1, kMaxCount);
    f.seconds("base_delay_s", r.base_delay_s, 0);
    f.seconds("max_delay_s", r.max_delay_s, 0);
    f.integer("moderation_retries", r.moderation_retries, 0, kMaxCount);
    f.integer("max_rate_limited", r.max_rate_limited, 0, 100 * kMaxCount);
    f.seconds("auth_probe_s", r.auth_probe_s, kMinTime);
    f.integer("max_timeouts", r.max_timeouts, 1, kMaxCount);
    f.integer("max_provider_failures", r.max_provider_failures, 1, 100 * kMaxCount);
    f.no_unknown_keys();
    if (r.max_delay_s < r.base_delay_s) f.fail("max_delay_s", "must be >= retry.base_delay_s");
}

ProviderConfig parse_provider(const json::value& v, const std::string& source,
                              const std::string& path, const jobs::Catalog& catalog) {
    if (!v.is_object())
        throw ConfigError(source + ": '" + path + "' must be an object, got " + json::serialize(v));
    Fields f(v.get_object(), source, path);
    ProviderConfig p;
    if (!f.get("name")) f.fail("name", "is required");
    f.string("name", p.name, true);
    if (!f.get("api")) f.fail("api", "is required");
    f.string("api", p.api);
    if (p.api != "openai" && p.api != "google" && p.api != "openai-chat" && p.api != "gemini")
        f.bad("api", "one of openai, google, openai-chat, gemini", json::value(p.api));
    if (!f.get("base_url")) f.fail("base_url", "is required");
    f.string("base_url", p.base_url);
    Url url;
    if (!parse_url(p.base_url, url))
        f.bad("base_url", "an http:// or https:// URL", json::value(p.base_url));
    f.string("api_key_env", p.api_key_env);
    f.string("api_key_file", p.api_key_file);
    if (!p.api_key_env.empty() && !p.api_key_file.empty())
        f.fail("api_key_file", "cannot be combined with api_key_env (choose one)");
    if (const auto* cmd = f.get("api_key_command")) {
        const char* expected =
            "a non-empty string (run by /bin/sh -c) or a non-empty array of "
            "strings (program and arguments)";
        if (cmd->is_string()) {
            if (cmd->get_string().empty()) f.bad("api_key_command", expected, *cmd);
            p.api_key_command = {"/bin/sh", "-c", std::string(cmd->get_string())};
        } else if (cmd->is_array() && !cmd->get_array().empty()) {
            for (const auto& a : cmd->get_array()) {
                if (!a.is_string()) f.bad("api_key_command", expected, *cmd);
                p.api_key_command.emplace_back(a.get_string());
            }
            if (p.api_key_command.front().empty()) f.bad("api_key_command", expected, *cmd);
        } else {
            f.bad("api_key_command", expected, *cmd);
        }
        for (const auto& a : p.api_key_command)
            if (a.find('\0') != std::string::npos)
                f.bad("api_key_command", "free of NUL characters", *cmd);
        if (!p.api_key_env.empty() || !p.api_key_file.empty())
            f.fail("api_key_command",
                   "cannot be combined with " +
                       std::string(p.api_key_env.empty() ? "api_key_file" : "api_key_env") +
                       " (choose one)");
    }
    f.seconds("api_key_refresh_s", p.api_key_refresh_s, 0);
    if (p.api_key_refresh_s > 0 && p.api_key_refresh_s < 1)
        f.fail("api_key_refresh_s", "must be 0 (refresh only after a 401) or >= 1");
    f.seconds("api_key_command_timeout_s", p.api_key_command_timeout_s, kMinTime, 3600);
    if (p.api_key_command.empty()) {
        if (f.get("api_key_refresh_s") && p.api_key_refresh_s > 0)
            f.fail("api_key_refresh_s", "needs api_key_command");
        if (f.get("api_key_command_timeout_s"))
            f.fail("api_key_command_timeout_s", "needs api_key_command");
    }

    const auto* models = f.get("models");
    if (!models) f.fail("models", "is required");
    if (!models->is_array() || models->get_array().empty())
        f.bad("models", "a non-empty array of model names", *models);
    for (const auto& m : models->get_array()) {
        if (!m.is_string() || m.get_string().empty())
            f.bad("models", "a non-empty array of model names", *models);
        std::string name(m.get_string());
        if (!catalog.find(name))
            f.fail("models", "names unknown model '" + name +
                                 "' (known: " + jobs::join(catalog.names()) + ")");
        p.models.push_back(std::move(name));
    }

    f.integer("max_concurrency", p.max_concurrency, 1, 10'000);
    f.per_minute("requests_per_minute", p.requests_per_minute);
    f.per_minute("images_per_minute", p.images_per_minute);
    f.seconds("timeout_s", p.timeout_s, kMinTime);
    f.seconds("connect_timeout_s", p.connect_timeout_s, kMinTime);
    f.integer("max_images_per_request", p.max_images_per_request, 0, 10'000);
    f.size("max_response_bytes", p.max_response_bytes, 1, kMaxResponseBytes);
    f.string("auth", p.auth);
    if (!p.auth.empty() && p.auth != "bearer" && p.auth != "x-goog-api-key")
        f.bad("auth", "\"bearer\" or \"x-goog-api-key\"", json::value(p.auth));
    const bool google_key = p.api == "google" || p.api == "gemini";
    if (!google_key && p.auth == "x-goog-api-key")
        f.fail("auth", "may be \"x-goog-api-key\" only for api \"google\" or \"gemini\"");
    // Vertex AI takes OAuth access tokens (Bearer), not API keys.
    if (p.auth.empty())
        p.auth = google_key && !is_vertex_ai_url(p.base_url) ? "x-goog-api-key" : "bearer";
    f.string("image_size_key", p.image_size_key, true);
    f.string("mode", p.mode);
    if (p.mode != "direct" && p.mode != "batch")
        f.bad("mode", "\"direct\" or \"batch\"", json::value(p.mode));
    if (p.mode == "batch" && p.api != "openai" && p.api != "gemini")
        f.fail("mode", "\"batch\" is available for api \"openai\" and \"gemini\" only");
    // Vertex AI's batch prediction reads Cloud Storage or BigQuery: not this API.
    if (p.mode == "batch" && p.api == "gemini" && is_vertex_ai_url(p.base_url))
        f.fail("mode", "\"batch\" speaks the Gemini API's Batch Mode, not Vertex AI");
    f.integer("batch_max_requests", p.batch_max_requests, 1, kVendorBatchMaxRequests);
    f.size("batch_max_bytes", p.batch_max_bytes, 1024, kVendorBatchMaxBytes);
    f.seconds("batch_poll_s", p.batch_poll_s, kMinTime);
    f.seconds("batch_poll_max_s", p.batch_poll_max_s, kMinTime);
    if (p.batch_poll_max_s < p.batch_poll_s) f.fail("batch_poll_max_s", "must be >= batch_poll_s");
    f.integer("batch_max_open", p.batch_max_open, 1, 1000);
    f.string("batch_input", p.batch_input);
    f.string("batch_retry_direct", p.batch_retry_direct);
    if (!p.batch_retry_direct.empty() && p.mode != "batch")
        f.fail("batch_retry_direct", "is for a provider in \"mode\": \"batch\"");
    if (p.batch_input != "auto" && p.batch_input != "inline" && p.batch_input != "file")
        f.bad("batch_input", "\"auto\", \"inline\" or \"file\"", json::value(p.batch_input));
    if (const auto* headers = f.object("headers")) {
        for (const auto& [k, hv] : *headers) {
            if (!is_header_name(k))
                f.fail("headers", "names a header '" + std::string(k) +
                                      "' that is not a valid header name (letters, digits and "
                                      "!#$%&'*+-.^_`|~)");
            if (!hv.is_string()) f.bad("headers." + std::string(k), "a string", hv);
            if (!is_header_value(hv.get_string()))
                f.bad("headers." + std::string(k), "a header value without control characters", hv);
            p.headers[std::string(k)] = std::string(hv.get_string());
        }
    }
    if (const auto* prices = f.get("prices")) {
        try {
            p.prices = jobs::parse_provider_prices(*prices, f.name("prices"));
        } catch (const std::invalid_argument& e) {
            // "field: what" -> "'field' what", as the other fields' errors.
            const std::string what = e.what();
            const auto colon = what.find(": ");
            throw ConfigError(source + ": '" + what.substr(0, colon) + "' " +
                              (colon == std::string::npos ? "" : what.substr(colon + 2)));
        }
        for (const auto& [model, price] : p.prices)
            if (model != "*" &&
                std::find(p.models.begin(), p.models.end(), model) == p.models.end())
                f.fail("prices." + model,
                       "prices a model the provider does not serve (its "
                       "models: " +
                           jobs::join(p.models) + ")");
    }
    f.no_unknown_keys();
    return p;
}

// A key goes into a header: it may not carry a line break or another control character.
std::string checked_key(std::string key, const std::string& who, const std::string& where) {
    if (!is_header_value(key))
        throw ConfigError(who + ": the API key from " + where +
                          " contains control characters (a line break inside it?)");
    return key;
}

// "IP:PORT" (IPv6 in brackets or not), as serve_metrics binds it: an IPv4 or IPv6 address
// and a port from 1 to 65535.
bool is_listen_address(std::string_view s) {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string host(s.substr(0, colon));
    std::string_view port = s.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos)
        return false;
    int n = 0;
    std::from_chars(port.data(), port.data() + port.size(), n);
    if (n < 1 || n > 65535) return false;
    unsigned char addr[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), addr) == 1 ||
           inet_pton(AF_INET6, host.c_str(), addr) == 1;
}

std::string read_whole(const std::string& path, int& err) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        err = errno ? errno : ENOENT;
        return {};
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        err = errno ? errno : EIO;
        return {};
    }
    err = 0;
    return ss.str();
}

std::string trim_newlines(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

}  // namespace

std::string checked_api_key(std::string key, const std::string& who, const std::string& where) {
    return checked_key(std::move(key), who, where);
}

bool is_vertex_ai_url(std::string_view base_url) {
    Url url;
    if (!parse_url(std::string(base_url), url)) return false;
    std::string host = url.host;
    for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // aiplatform.googleapis.com (global) or LOCATION-aiplatform.googleapis.com.
    return host == "aiplatform.googleapis.com" || host.ends_with("-aiplatform.googleapis.com") ||
           host.ends_with(".aiplatform.googleapis.com");
}

const ProviderConfig* Config::provider(std::string_view name) const {
    for (const auto& p : providers)
        if (p.name == name) return &p;
    return nullptr;
}

std::vector<jobs::ProviderInfo> Config::provider_infos() const {
    std::vector<jobs::ProviderInfo> out;
    out.reserve(providers.size());
    for (const auto& p : providers)
        out.push_back(
            {p.name, p.api, p.models, p.max_images_per_request, is_vendor_api(p.base_url)});
    return out;
}

bool is_vendor_api(std::string_view base_url) {
    Url url;
    if (!parse_url(base_url, url)) return false;
    std::string host = url.host;
    for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (host.ends_with(".")) host.pop_back();
    return host == "api.openai.com" || host == "generativelanguage.googleapis.com" ||
           host == "aiplatform.googleapis.com" || host.ends_with("-aiplatform.googleapis.com");
}

double auto_shutdown_grace_s(const std::vector<ProviderConfig>& providers) {
    double longest = -1;
    for (const auto& p : providers) longest = std::max(longest, p.connect_timeout_s + p.timeout_s);
    return longest < 0 ? 0 : longest + kShutdownGraceMargin_s;
}

namespace {

// "budget": {"max_usd_per_batch", "max_usd_per_day", "max_usd_per_run": USD > 0,
// "day_starts": "HH:MM", "timezone": "UTC" | "local"}.
jobs::BudgetConfig parse_budget(const json::object& obj, const std::string& source) {
    Fields f(obj, source, "budget");
    jobs::BudgetConfig b;
    auto usd = [&](std::string_view key, std::optional<double>& out) {
        if (!f.get(key)) return;
        double v = 0;
        f.number(key, v, 0, true);
        out = v;
    };
    usd("max_usd_per_batch", b.max_usd_per_batch);
    usd("max_usd_per_day", b.max_usd_per_day);
    usd("max_usd_per_run", b.max_usd_per_run);
    std::string day = "00:00";
    f.string("day_starts", day);
    int h = -1, m = -1;
    if (day.size() != 5 || day[2] != ':' || std::sscanf(day.c_str(), "%2d:%2d", &h, &m) != 2 ||
        h < 0 || h > 23 || m < 0 || m > 59 || !std::isdigit(static_cast<unsigned char>(day[0])) ||
        !std::isdigit(static_cast<unsigned char>(day[3])))
        f.bad("day_starts", "a time \"HH:MM\" (00:00 to 23:59)", json::value(day));
    b.day_starts_min = h * 60 + m;
    std::string tz = "UTC";
    f.string("timezone", tz);
    if (tz != "UTC" && tz != "local") f.bad("timezone", "\"UTC\" or \"local\"", json::value(tz));
    b.day_utc = tz == "UTC";
    f.no_unknown_keys();
    return b;
}

}  // namespace

Config parse_config(std::string_view text, const std::string& source_name) {
    const std::string source = source_name.empty() ? "config" : source_name;
    json::value root = parse_json(text, source);
    if (!root.is_object())
        throw ConfigError(source + ": the configuration must be a JSON object, got " +
                          json::serialize(root));
    Config c;
    c.source = source_name;
    Fields f(root.get_object(), source, "");
    f.string("database", c.database, true);
    f.string("output_dir", c.output_dir, true);
    if (const auto* retry = f.object("retry")) parse_retry(*retry, source, c.retry);
    if (const auto* grace = f.get("shutdown_grace_s")) {
        if (grace->is_string()) {
            if (grace->get_string() != "auto")
                f.bad("shutdown_grace_s", "a number >= 0 or \"auto\"", *grace);
        } else {
            double seconds = 0;
            f.seconds("shutdown_grace_s", seconds, 0);
            c.shutdown_grace_s = seconds;
        }
    }
    {
        std::string name;
        f.string("output_name", name);
        try {
            c.output_name = NameTemplate::parse(name);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(source + ": '" + f.name("output_name") + "': " + e.what());
        }
    }
    if (const auto* sidecar = f.get("sidecar")) {
        if (!sidecar->is_bool()) f.bad("sidecar", "true or false", *sidecar);
        c.sidecar = sidecar->get_bool();
    }
    if (const auto* budget = f.object("budget")) c.budget = parse_budget(*budget, source);
    f.string("metrics_listen", c.metrics_listen);
    if (!c.metrics_listen.empty() && !is_listen_address(c.metrics_listen))
        f.bad("metrics_listen", "\"IP:PORT\" (port 1-65535, e.g. \"127.0.0.1:9464\") or \"\"",
              json::value(c.metrics_listen));
    f.seconds("poll_interval_s", c.poll_interval_s, kMinTime, 3600);
    // The catalog first, then its overrides: providers may name the models they add.
    f.string("catalog_file", c.catalog_file, true);
    if (!c.catalog_file.empty()) {
        std::filesystem::path path(c.catalog_file);
        if (path.is_relative() && !source_name.empty())
            path = std::filesystem::path(source_name).parent_path() / path;
        c.catalog_file = path.lexically_normal().string();
        int err = 0;
        std::string text = read_whole(c.catalog_file, err);
        std::error_code dir_ec;
        if (err == 0 && std::filesystem::is_directory(c.catalog_file, dir_ec)) err = EISDIR;
        if (err != 0)
            throw ConfigError(source + ": 'catalog_file': cannot read '" + c.catalog_file +
                              "': " + std::strerror(err));
        try {
            c.catalog = jobs::Catalog::from_json(text, c.catalog_file);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(source + ": 'catalog_file': " + e.what());
        }
    }
    if (const auto* models = f.object("models")) {
        c.models = *models;
        try {
            c.catalog.apply_config(c.models);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(source + ": " + e.what());
        }
    }
    if (const auto* providers = f.get("providers")) {
        if (!providers->is_array()) f.bad("providers", "an array", *providers);
        std::set<std::string> names;
        const auto& arr = providers->get_array();
        for (std::size_t i = 0; i < arr.size(); ++i) {
            const std::string path = "providers[" + std::to_string(i) + "]";
            auto p = parse_provider(arr[i], source, path, c.catalog);
            if (!names.insert(p.name).second)
                throw ConfigError(source + ": '" + path + ".name' repeats provider name '" +
                                  p.name + "' (names must be unique)");
            c.providers.push_back(std::move(p));
        }
        for (std::size_t i = 0; i < c.providers.size(); ++i) {
            const auto& p = c.providers[i];
            if (p.batch_retry_direct.empty()) continue;
            const ProviderConfig* direct = nullptr;
            for (const auto& o : c.providers)
                if (o.name == p.batch_retry_direct) direct = &o;
            if (!direct || direct->mode != "direct")
                throw ConfigError(source + ": 'providers[" + std::to_string(i) +
                                  "].batch_retry_direct' names '" + p.batch_retry_direct +
                                  "', which is not a provider in \"mode\": \"direct\"");
        }
    }
    f.no_unknown_keys();
    return c;
}

Config load_config(const std::string& path) {
    int err = 0;
    std::string text = read_whole(path, err);
    if (err != 0)
        throw ConfigError("cannot read config file '" + path + "': " + std::strerror(err));
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw ConfigError("cannot read config file '" + path + "': " + std::strerror(EISDIR));
    Config c = parse_config(text, path);
    // Relative paths are the config file's business, not the caller's working directory.
    const auto base = std::filesystem::absolute(path, ec).parent_path();
    auto anchor = [&base](std::string& p) {
        if (p != ":memory:" && std::filesystem::path(p).is_relative())
            p = (base / p).lexically_normal().string();
    };
    anchor(c.database);
    anchor(c.output_dir);
    return c;
}

std::string resolve_api_key(const ProviderConfig& provider) {
    const std::string who = "provider '" + provider.name + "'";
    if (!provider.api_key_command.empty()) return {};
    if (!provider.api_key_env.empty()) {
        const char* v = std::getenv(provider.api_key_env.c_str());
        if (!v || !*v)
            throw ConfigError(who + ": environment variable " + provider.api_key_env +
                              " (api_key_env) is not set or empty");
        return checked_key(v, who, "environment variable " + provider.api_key_env);
    }
    if (!provider.api_key_file.empty()) {
        int err = 0;
        std::string key = read_whole(provider.api_key_file, err);
        if (err != 0)
            throw ConfigError(who + ": cannot read api_key_file '" + provider.api_key_file +
                              "': " + std::strerror(err));
        return checked_key(trim_newlines(std::move(key)), who,
                           "api_key_file '" + provider.api_key_file + "'");
    }
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
        // <name>: a LoadCredential=NAME:FILE line of its own; imgbatch_<name>: a file of the
        // directory the shipped unit loads (LoadCredential=imgbatch:/etc/imgbatch/credentials).
        for (const std::string& id : {provider.name, "imgbatch_" + provider.name}) {
            const std::string path = std::string(dir) + "/" + id;
            std::error_code ec;
            if (!std::filesystem::is_regular_file(path, ec)) continue;
            int err = 0;
            std::string key = read_whole(path, err);
            if (err != 0)
                throw ConfigError(who + ": cannot read credential '" + path +
                                  "': " + std::strerror(err));
            return checked_key(trim_newlines(std::move(key)), who, "credential '" + path + "'");
        }
    }
    return {};
}

const jobs::Price* price_of(const Config& config, const ProviderConfig& provider,
                            std::string_view model) {
    const auto* info = config.catalog.find(model);
    const jobs::Price* catalog = info && info->price ? &*info->price : nullptr;
    return jobs::resolve_price(provider.prices, model, catalog);
}

}  // namespace imgbatch::daemon
