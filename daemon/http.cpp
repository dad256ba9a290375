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

bool parse_url(std::string_view text, Url& out) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos) return false;
    std::string scheme(text.substr(0, sep));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "http" && scheme != "https") return false;
    std::string_view rest = text.substr(sep + 3);
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (!target.empty() && target[0] == '?') target.insert(target.begin(), '/');
    if (auto at = authority.rfind('@'); at != std::string_view::npos)
        authority = authority.substr(at + 1);  // userinfo is not used
    std::string host, port;
    if (!authority.empty() && authority[0] == '[') {  // [v6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return false;
            port = std::string(authority.substr(close + 2));
        }
    } else {
        auto colon = authority.rfind(':');
        host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port = std::string(authority.substr(colon + 1));
    }
    if (host.empty()) return false;
    if (port.empty()) port = scheme == "https" ? "443" : "80";
    if (!std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
        return false;
    out = Url{scheme, host, port, target};
    return true;
}

}  // namespace imgbatch::daemon
