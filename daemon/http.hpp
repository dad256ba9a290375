#pragma once
// Plain HTTP message types shared by the client, the providers and the sim. No Beast here.
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
// Parses an absolute http(s) URL; false if it is not one.
bool parse_url(std::string_view text, Url& out);

}  // namespace imgbatch::daemon
