#pragma once
// Plain HTTP message types shared by the client, the providers and the sim. No Beast here.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgbatch::daemon {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup; empty when absent.
std::string_view find_header(const Headers& headers, std::string_view name);

struct HttpRequest {
    std::string method = "POST";
    std::string url;  // absolute: http://host:port/path or https://...
    Headers headers;  // Content-Type, Authorization, ... (Host is set by the client)
    std::string body;
};

struct HttpResponse {
    int status = 0;
    Headers headers;
    std::string body;
    std::string_view header(std::string_view name) const { return find_header(headers, name); }
};

struct Url {
    std::string scheme;  // "http" or "https"
    std::string host;
    std::string port;    // defaulted from the scheme
    std::string target;  // path and query, at least "/"
};
// Parses an absolute http(s) URL; false if it is not one, or if it could not go into a request
// line and a Host header as it is: control characters or spaces anywhere, a host that is not a
// registered name or a bracketed IPv6 address, a port outside 1-65535. The fragment is dropped
// and bytes beyond ASCII in the path are percent-encoded.
bool parse_url(std::string_view text, Url& out);

// An HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or the obsolete RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994") forms that RFC
// 9110 asks recipients to read; any year 0000-9999. Seconds since 1970 (negative before),
// read without time_t, tm or clock arithmetic that could overflow; an RFC 850 year more than
// 50 years after now's is in the previous century. nullopt when text is none of these.
std::optional<std::int64_t> parse_http_date(std::string_view text,
                                            std::chrono::system_clock::time_point now);

}  // namespace imgbatch::daemon
