// Proxy selection from HTTP(S)_PROXY / NO_PROXY: pure functions, so the rules are testable.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include "daemon/image.hpp"
#include "daemon/net/http_client.hpp"

namespace imgbatch::daemon {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string env(const char* lower_name, const char* upper_name) {
    if (const char* v = std::getenv(lower_name); v && *v) return v;
    if (const char* v = std::getenv(upper_name); v && *v) return v;
    return {};
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Strips [] and a trailing dot so "example.com." and "[::1]" compare as expected.
std::string normal_host(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    while (!host.empty() && host.back() == '.') host.remove_suffix(1);
    return lower(host);
}

bool entry_matches(std::string_view entry, const std::string& host, std::string_view port) {
    std::string_view pattern = entry;
    // An optional ":port" suffix, but not the colons of a bare IPv6 address.
    if (auto colon = pattern.rfind(':'); colon != std::string_view::npos) {
        bool bracketed = !pattern.empty() && pattern.front() == '[';
        bool v6_bare = pattern.find(':') != colon;
        if (bracketed ? colon > pattern.find(']') : !v6_bare) {
            if (pattern.substr(colon + 1) != port) return false;
            pattern = pattern.substr(0, colon);
        }
    }
    if (pattern == "*") return true;
    while (!pattern.empty() && pattern.front() == '*') pattern.remove_prefix(1);
    while (!pattern.empty() && pattern.front() == '.') pattern.remove_prefix(1);
    std::string p = normal_host(pattern);
    if (p.empty()) return false;
    if (host == p) return true;
    return host.size() > p.size() && host.compare(host.size() - p.size(), p.size(), p) == 0 &&
           host[host.size() - p.size() - 1] == '.';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
            hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

ProxySettings ProxySettings::from_env() {
    return ProxySettings{env("http_proxy", "HTTP_PROXY"), env("https_proxy", "HTTPS_PROXY"),
                         env("no_proxy", "NO_PROXY")};
}

bool is_loopback_host(std::string_view host) {
    std::string h = normal_host(host);
    if (h == "localhost" || h.ends_with(".localhost") || h == "::1" || h == "0:0:0:0:0:0:0:1")
        return true;
    if (!h.starts_with("127.")) return false;
    // 127.0.0.0/8 in dotted-quad form only (a host name such as "127.example" is not).
    int dots = 0;
    for (char c : h) {
        if (c == '.')
            ++dots;
        else if (!std::isdigit(static_cast<unsigned char>(c)))
            return false;
    }
    return dots == 3;
}

bool no_proxy_matches(std::string_view host, std::string_view port, std::string_view no_proxy) {
    std::string h = normal_host(host);
    while (!no_proxy.empty()) {
        auto sep = no_proxy.find_first_of(", \t");
        std::string_view entry = trim(no_proxy.substr(0, sep));
        no_proxy = sep == std::string_view::npos ? std::string_view{} : no_proxy.substr(sep + 1);
        if (!entry.empty() && entry_matches(entry, h, port)) return true;
    }
    return false;
}

std::optional<ProxyRoute> proxy_for(const Url& url, const ProxySettings& settings) {
    const std::string& proxy = url.scheme == "https" ? settings.https_proxy : settings.http_proxy;
    std::string_view text = trim(proxy);
    if (text.empty() || is_loopback_host(url.host) ||
        no_proxy_matches(url.host, url.port, settings.no_proxy))
        return std::nullopt;
    std::string with_scheme(text);
    if (with_scheme.find("://") == std::string::npos) with_scheme = "http://" + with_scheme;
    Url p;
    if (!parse_url(with_scheme, p))
        throw std::invalid_argument("proxy URL is not http://[user:pass@]host[:port]: " +
                                    std::string(text));
    if (p.scheme != "http")
        throw std::invalid_argument("only http:// proxies are supported: " + std::string(text));
    ProxyRoute route{p.host, p.port, {}};
    // parse_url drops the userinfo; read it here for Proxy-Authorization.
    std::string_view rest = std::string_view(with_scheme).substr(with_scheme.find("://") + 3);
    std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        auto colon = userinfo.find(':');
        std::string user = percent_decode(userinfo.substr(0, colon));
        std::string pass =
            colon == std::string_view::npos ? "" : percent_decode(userinfo.substr(colon + 1));
        route.authorization = "Basic " + base64_encode(user + ":" + pass);
    }
    return route;
}

}  // namespace imgbatch::daemon
