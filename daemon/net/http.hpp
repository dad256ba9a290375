#pragma once
// Plain HTTP message types shared by the client, the providers and the sim. No Beast here.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jobs/error.hpp"

namespace imgbatch::daemon {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup; empty when absent.
std::string_view find_header(const Headers& headers, std::string_view name);

struct HttpRequest {
    std::string method = "POST";
    std::string url;  // absolute: http://host:port/path or https://...
    Headers headers;  // Content-Type, Authorization, ... (Host is set by the client)
    std::string body;
    // When set, a gzip/deflate answer is returned as received (Content-Encoding kept) for the
    // caller to decode with decode_content (content_coding.hpp) off the network thread.
    bool defer_decoding = false;
    // When set, the body of a 2xx answer is written to this file (created or truncated) as it
    // arrives, in pieces of 256 KiB written off the network thread, never held whole in memory
    // (the HttpResponse's body stays empty); other answers
    // are read as usual. Up to body_file_max bytes (0: no limit; a longer body fails as
    // response_too_large); response_timeout is then the longest wait for each piece of the
    // body, not for the whole answer. No content coding is asked for (identity).
    std::string body_file;
    std::uint64_t body_file_max = 0;
};

struct HttpResponse {
    int status = 0;
    Headers headers;
    std::string body;
    std::string_view header(std::string_view name) const { return find_header(headers, name); }
};

// A failure without an HTTP answer: timeout or network; invalid_request for a URL or proxy
// setting that cannot work and for an answer over max_response_bytes (it will not shrink on a
// retry); bad_response for an answer that is not HTTP or whose Content-Encoding cannot be
// decoded; auth for a TLS certificate that fails verification (it will not fix itself). Never
// an HTTP status: every status, 4xx/5xx included, is an HttpResponse.
struct HttpFailure {
    HttpFailure() = default;
    HttpFailure(jobs::ErrorClass c, std::string m, std::string error_code = {})
        : cls(c), message(std::move(m)), code(std::move(error_code)) {}
    jobs::ErrorClass cls = jobs::ErrorClass::network;
    std::string message;  // e.g. "connect to api.example.com:443: Connection refused"
    std::string code;     // response_too_large, bad_encoding, tls_certificate,
                          // jobs::kAfterSend; else empty
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
