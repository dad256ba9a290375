// Content-Encoding with zlib: bounded inflate for answers, deflate/gzip for the simulator.
#include "daemon/net/content_coding.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <vector>

namespace imgbatch::daemon {
namespace {

using jobs::ErrorClass;

std::string lower_trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

HttpFailure bad_encoding(std::string message) {
    return HttpFailure{ErrorClass::bad_response, std::move(message), "bad_encoding"};
}

enum class Inflated { ok, too_large, corrupt };

// Inflates in into out (replacing it) with zlib's window_bits; stops past max_bytes. Output
// goes through a small buffer and is appended: only bytes really produced are touched.
Inflated inflate_into(std::string_view in, int window_bits, std::size_t max_bytes,
                      std::string& out) {
    z_stream z{};
    if (inflateInit2(&z, window_bits) != Z_OK) throw std::runtime_error("inflateInit2 failed");
    out.clear();
    // A first guess: base64 JSON shrinks to about 3/4 in gzip (unused capacity is not touched).
    out.reserve(std::min(max_bytes, in.size() / 2 * 3 + 4096));
    std::vector<char> buffer(64 * 1024);
    Inflated result = Inflated::ok;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    std::size_t in_left = in.size();
    for (;;) {
        if (z.avail_in == 0 && in_left > 0) {
            const auto in_chunk = static_cast<uInt>(std::min<std::size_t>(in_left, 1u << 30));
            z.avail_in = in_chunk;
            in_left -= in_chunk;
        }
        z.next_out = reinterpret_cast<Bytef*>(buffer.data());
        z.avail_out = static_cast<uInt>(buffer.size());
        const int rc = inflate(&z, Z_NO_FLUSH);
        const std::size_t produced = buffer.size() - z.avail_out;
        if (out.size() + produced > max_bytes) {
            result = Inflated::too_large;
            break;
        }
        out.append(buffer.data(), produced);
        if (rc == Z_STREAM_END) {
            // gzip allows several members one after the other.
            if (z.avail_in == 0 && in_left == 0) break;
            if (inflateReset(&z) != Z_OK) {
                result = Inflated::corrupt;
                break;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0 && in_left == 0) {
            result = Inflated::corrupt;  // the stream ends before its end marker
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            result = Inflated::corrupt;
            break;
        }
    }
    inflateEnd(&z);
    if (result != Inflated::ok) std::string().swap(out);
    return result;
}

std::string compress(std::string_view data, int window_bits) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out;
    out.resize(deflateBound(&z, static_cast<uLong>(data.size())) + 32);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&z, Z_FINISH);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
    out.resize(z.total_out);
    return out;
}

}  // namespace

HttpFailure response_too_large(std::size_t max_bytes) {
    return HttpFailure{ErrorClass::invalid_request,
                       "the answer is larger than max_response_bytes (" +
                           std::to_string(max_bytes) +
                           " bytes): raise it or ask for fewer or smaller images",
                       "response_too_large"};
}

std::optional<HttpFailure> decode_content(HttpResponse& response, std::size_t max_bytes) {
    auto header = std::find_if(response.headers.begin(), response.headers.end(), [](auto& h) {
        return lower_trimmed(h.first) == "content-encoding";
    });
    if (header == response.headers.end()) return std::nullopt;
    std::vector<std::string> codings;
    std::string_view list = header->second;
    while (!list.empty()) {
        auto comma = list.find(',');
        std::string c = lower_trimmed(list.substr(0, comma));
        if (!c.empty() && c != "identity") codings.push_back(std::move(c));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
    // The last coding listed was applied last: undo it first.
    for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
        const std::string& c = *it;
        if (c != "gzip" && c != "x-gzip" && c != "deflate")
            return bad_encoding("unsupported Content-Encoding: " + header->second);
        std::string out;
        // 15 + 32: zlib or gzip header, detected. "deflate" is zlib by the RFC, but some
        // servers send raw deflate: tried when the zlib header is not there.
        Inflated r = inflate_into(response.body, 15 + 32, max_bytes, out);
        if (r == Inflated::corrupt && c == "deflate")
            r = inflate_into(response.body, -15, max_bytes, out);
        if (r == Inflated::too_large) return response_too_large(max_bytes);
        if (r == Inflated::corrupt)
            return bad_encoding("the answer's " + c + " body is corrupt or cut short");
        response.body = std::move(out);
    }
    response.headers.erase(header);
    return std::nullopt;
}

std::string gzip_compress(std::string_view data) {
    return compress(data, 15 + 16);
}

std::string deflate_compress(std::string_view data, bool raw) {
    return compress(data, raw ? -15 : 15);
}

}  // namespace imgbatch::daemon
