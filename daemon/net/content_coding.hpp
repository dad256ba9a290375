#pragma once
// Content-Encoding (RFC 9110 8.4) of HTTP answers: gzip and deflate decoded with zlib, never
// past a size bound (a small compressed body can inflate to gigabytes). No Beast here.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/net/http.hpp"

namespace imgbatch::daemon {

// The request header value that announces what decode_content can decode.
inline constexpr std::string_view kAcceptEncoding = "gzip, deflate";

// Decodes response.body in place according to its Content-Encoding (gzip, x-gzip, deflate
// as zlib or raw deflate, identity; a list such as "gzip, identity" is decoded right to left)
// and removes the header. nullopt on success. A failure: invalid_request
// "response_too_large" when the decoded body would exceed max_bytes, bad_response
// "bad_encoding" for a corrupt body or a coding other than these.
std::optional<HttpFailure> decode_content(HttpResponse& response, std::size_t max_bytes);

// The failure of an answer over max_bytes (also used by the client for a plain body).
HttpFailure response_too_large(std::size_t max_bytes);

// gzip (RFC 1952) and deflate (zlib RFC 1950, or raw RFC 1951) encoders: for the simulator
// and the tests.
std::string gzip_compress(std::string_view data);
std::string deflate_compress(std::string_view data, bool raw);

}  // namespace imgbatch::daemon
