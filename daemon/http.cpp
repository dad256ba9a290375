#include "daemon/http.hpp"

#include <algorithm>
#include <cctype>

namespace imgbatch::daemon {

std::string_view find_header(const Headers& headers, std::string_view name) {
    auto same = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    };
    for (const auto& [k, v] : headers)
        if (same(k, name)) return v;
    return {};
}

namespace {

bool is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 3986 reg-name: unreserved, sub-delims and pct-encoded characters.
bool is_reg_name_char(unsigned char c) {
    return is_alnum(c) || std::string_view("-._~!$&'()*+,;=%").find(static_cast<char>(c)) !=
                              std::string_view::npos;
}

// The inside of an IP literal: an IPv6 address (hex digits, ':' and a dotted IPv4 tail), with
// an optional zone ("%25eth0").
bool is_ip_literal(std::string_view s) {
    auto zone = s.find('%');
    std::string_view address = s.substr(0, zone);
    if (address.find(':') == std::string_view::npos) return false;
    if (!std::all_of(address.begin(), address.end(),
                     [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; }))
        return false;
    if (zone == std::string_view::npos) return true;
    std::string_view id = s.substr(zone);
    return id.size() > 3 && id.starts_with("%25") &&
           std::all_of(id.begin() + 3, id.end(), [](unsigned char c) {
               return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
           });
}

// A port: 1 to 5 digits, 1..65535.
bool is_port(std::string_view s) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v >= 1 && v <= 65535;
}

// Control characters and spaces would end or split a request line or a header.
bool has_control_or_space(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

}  // namespace

bool parse_url(std::string_view text, Url& out) {
    if (has_control_or_space(text)) return false;
    auto sep = text.find("://");
    if (sep == std::string_view::npos) return false;
    std::string scheme(text.substr(0, sep));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "http" && scheme != "https") return false;
    std::string_view rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find('#'));  // the fragment is not sent
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "/" : rest.substr(slash);
    std::string target;
    if (path.front() == '?') target = "/";
    // Bytes beyond ASCII are sent percent-encoded.
    static constexpr std::string_view kHex = "0123456789ABCDEF";
    for (unsigned char c : path) {
        if (c < 0x80) {
            target += static_cast<char>(c);
        } else {
            target += '%';
            target += kHex[c >> 4];
            target += kHex[c & 15];
        }
    }
    if (auto at = authority.rfind('@'); at != std::string_view::npos)
        authority = authority.substr(at + 1);  // userinfo is not used
    std::string_view host, port;
    if (!authority.empty() && authority[0] == '[') {  // [v6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = authority.substr(1, close - 1);
        if (!is_ip_literal(host)) return false;
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return false;
            port = authority.substr(close + 2);
        }
    } else {
        auto colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
        if (!std::all_of(host.begin(), host.end(),
                         [](unsigned char c) { return is_reg_name_char(c); }))
            return false;
    }
    if (host.empty()) return false;
    std::string port_text = port.empty() ? (scheme == "https" ? "443" : "80") : std::string(port);
    if (!is_port(port_text)) return false;
    out = Url{scheme, std::string(host), std::move(port_text), std::move(target)};
    return true;
}

}  // namespace imgbatch::daemon
