#include "daemon/image.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>

namespace imgbatch::daemon {
namespace {

std::uint32_t be32(std::string_view b, std::size_t at) {
    return (std::uint32_t(std::uint8_t(b[at])) << 24) |
           (std::uint32_t(std::uint8_t(b[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(b[at + 2])) << 8) | std::uint32_t(std::uint8_t(b[at + 3]));
}
unsigned be16(std::string_view b, std::size_t at) {
    return (unsigned(std::uint8_t(b[at])) << 8) | unsigned(std::uint8_t(b[at + 1]));
}
unsigned le16(std::string_view b, std::size_t at) {
    return unsigned(std::uint8_t(b[at])) | (unsigned(std::uint8_t(b[at + 1])) << 8);
}
std::uint32_t le24(std::string_view b, std::size_t at) {
    return std::uint32_t(std::uint8_t(b[at])) | (std::uint32_t(std::uint8_t(b[at + 1])) << 8) |
           (std::uint32_t(std::uint8_t(b[at + 2])) << 16);
}
std::uint32_t le32(std::string_view b, std::size_t at) {
    return le24(b, at) | (std::uint32_t(std::uint8_t(b[at + 3])) << 24);
}

std::optional<ImageInfo> sniff_png(std::string_view b) {
    static constexpr std::string_view sig{"\x89PNG\r\n\x1a\n", 8};
    if (b.substr(0, 8) != sig) return std::nullopt;
    ImageInfo info{"image/png", "png", 0, 0};
    // The first chunk must be IHDR: width and height are its first two fields.
    if (b.size() >= 24 && b.substr(12, 4) == "IHDR") {
        info.width = static_cast<int>(be32(b, 16) & 0x7fffffff);
        info.height = static_cast<int>(be32(b, 20) & 0x7fffffff);
    }
    return info;
}

std::optional<ImageInfo> sniff_jpeg(std::string_view b) {
    if (b.size() < 3 || b.substr(0, 3) != "\xff\xd8\xff") return std::nullopt;
    ImageInfo info{"image/jpeg", "jpg", 0, 0};
    // Walk the marker segments up to the first SOFn frame header.
    std::size_t at = 2;
    while (at + 4 <= b.size()) {
        if (std::uint8_t(b[at]) != 0xff) break;
        unsigned marker = std::uint8_t(b[at + 1]);
        if (marker == 0xff) {  // fill byte
            ++at;
            continue;
        }
        if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
            at += 2;  // standalone markers carry no length
            continue;
        }
        if (marker == 0xd9 || marker == 0xda) break;  // end of image / start of scan
        unsigned len = be16(b, at + 2);
        bool sof =
            marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
        if (sof) {
            if (at + 9 <= b.size()) {
                info.height = static_cast<int>(be16(b, at + 5));
                info.width = static_cast<int>(be16(b, at + 7));
            }
            break;
        }
        if (len < 2) break;
        at += 2 + len;
    }
    return info;
}

std::optional<ImageInfo> sniff_webp(std::string_view b) {
    if (b.size() < 16 || b.substr(0, 4) != "RIFF" || b.substr(8, 4) != "WEBP") return std::nullopt;
    std::string_view chunk = b.substr(12, 4);
    if (chunk != "VP8 " && chunk != "VP8L" && chunk != "VP8X") return std::nullopt;
    ImageInfo info{"image/webp", "webp", 0, 0};
    if (chunk == "VP8 ") {
        // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
        if (b.size() >= 30 && b.substr(23, 3) == "\x9d\x01\x2a") {
            info.width = static_cast<int>(le16(b, 26) & 0x3fff);
            info.height = static_cast<int>(le16(b, 28) & 0x3fff);
        }
    } else if (chunk == "VP8L") {
        // Signature 0x2f, then width-1 and height-1 as 14-bit fields.
        if (b.size() >= 25 && std::uint8_t(b[20]) == 0x2f) {
            std::uint32_t bits = le32(b, 21);
            info.width = static_cast<int>((bits & 0x3fff) + 1);
            info.height = static_cast<int>(((bits >> 14) & 0x3fff) + 1);
        }
    } else if (b.size() >= 30) {  // VP8X: flags, 3 reserved, canvas width-1, height-1 (24 bit)
        info.width = static_cast<int>(le24(b, 24) + 1);
        info.height = static_cast<int>(le24(b, 27) + 1);
    }
    return info;
}

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v';
}

std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; ++n) {
        std::uint32_t c = n;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[n] = c;
    }
    return table;
}

std::uint32_t crc32(std::string_view data) {
    static const auto table = make_crc_table();
    std::uint32_t c = 0xffffffffu;
    for (char ch : data) c = table[(c ^ std::uint8_t(ch)) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

std::uint32_t adler32(std::string_view data) {
    constexpr std::uint32_t mod = 65521;
    std::uint32_t a = 1, b = 0;
    for (char ch : data) {
        a = (a + std::uint8_t(ch)) % mod;
        b = (b + a) % mod;
    }
    return (b << 16) | a;
}

void put_be32(std::string& out, std::uint32_t v) {
    out.push_back(static_cast<char>(v >> 24));
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v));
}

}  // namespace

std::string png_chunk(std::string_view type, std::string_view data) {
    std::string out;
    out.reserve(12 + data.size());
    put_be32(out, static_cast<std::uint32_t>(data.size()));
    out.append(type);
    out.append(data);
    put_be32(out, crc32(std::string_view(out).substr(4)));
    return out;
}

namespace {

void put_chunk(std::string& out, std::string_view type, std::string_view data) {
    put_be32(out, static_cast<std::uint32_t>(data.size()));
    std::string body(type);
    body.append(data);
    out.append(body);
    put_be32(out, crc32(body));
}

// zlib stream of stored (uncompressed) deflate blocks: valid for every inflater, no zlib needed.
std::string zlib_stored(std::string_view raw) {
    std::string out;
    out.reserve(raw.size() + raw.size() / 65535 * 5 + 16);
    out.push_back('\x78');
    out.push_back('\x01');
    std::size_t at = 0;
    do {
        std::size_t len = std::min<std::size_t>(65535, raw.size() - at);
        bool last = at + len == raw.size();
        out.push_back(last ? '\x01' : '\x00');
        out.push_back(static_cast<char>(len & 0xff));
        out.push_back(static_cast<char>(len >> 8));
        out.push_back(static_cast<char>(~len & 0xff));
        out.push_back(static_cast<char>((~len >> 8) & 0xff));
        out.append(raw.substr(at, len));
        at += len;
    } while (at < raw.size());
    put_be32(out, adler32(raw));
    return out;
}

}  // namespace

std::optional<ImageInfo> sniff_image(std::string_view bytes) {
    if (auto png = sniff_png(bytes)) return png;
    if (auto jpeg = sniff_jpeg(bytes)) return jpeg;
    return sniff_webp(bytes);
}

namespace {

// Decodes text into out (which may alias text's buffer: it is written behind the reader).
// Returns the decoded length, or nullopt on invalid base64.
std::optional<std::size_t> base64_decode_to(std::string_view text, char* out) {
    std::size_t n = 0;
    std::uint32_t acc = 0;
    int bits = 0, quad = 0, pad = 0;
    for (char c : text) {
        if (is_space(c)) continue;
        if (c == '=') {
            ++pad;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad > 0) return std::nullopt;  // bad character, or data after padding
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        quad = (quad + 1) % 4;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = static_cast<char>((acc >> bits) & 0xff);
        }
    }
    // One leftover character cannot encode a byte; padding must complete the last quad.
    if (quad == 1) return std::nullopt;
    if (pad > 0 && (quad == 0 || quad + pad != 4)) return std::nullopt;
    return n;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    auto n = base64_decode_to(text, out.data());
    if (!n) return std::nullopt;
    out.resize(*n);
    return out;
}

bool Base64Decoder::feed(std::string_view text, std::string& out) {
    if (bad_) return false;
    for (char c : text) {
        if (is_space(c)) continue;
        if (c == '=') {
            ++pad_;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad_ > 0) {
            bad_ = true;
            return false;
        }
        acc_ = (acc_ << 6) | static_cast<unsigned>(v);
        bits_ += 6;
        quad_ = (quad_ + 1) % 4;
        if (bits_ >= 8) {
            bits_ -= 8;
            out.push_back(static_cast<char>((acc_ >> bits_) & 0xff));
        }
    }
    return true;
}

bool Base64Decoder::finish() {
    if (bad_ || quad_ == 1) return false;
    return !(pad_ > 0 && (quad_ == 0 || quad_ + pad_ != 4));
}

bool base64_decode_in_place(std::string& text) {
    auto n = base64_decode_to(text, text.data());
    if (!n) return false;
    text.resize(*n);
    return true;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                          (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) |
                          std::uint32_t(std::uint8_t(bytes[i + 2]));
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    if (std::size_t rest = bytes.size() - i; rest > 0) {
        std::uint32_t v = std::uint32_t(std::uint8_t(bytes[i])) << 16;
        if (rest == 2) v |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("sha256 failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(hex[digest[i] >> 4]);
        out.push_back(hex[digest[i] & 15]);
    }
    return out;
}

std::string make_png(int width, int height, unsigned seed) {
    if (width <= 0 || height <= 0) throw std::invalid_argument("make_png: empty image");
    // Raw scanlines: filter byte 0 then RGB. The pattern is a seeded gradient so that different
    // seeds give different bytes (and hashes).
    std::string raw;
    raw.reserve(static_cast<std::size_t>(height) * (1 + 3 * static_cast<std::size_t>(width)));
    std::uint32_t h = seed * 2654435761u + 0x9e3779b9u;
    auto r0 = static_cast<std::uint8_t>(h), g0 = static_cast<std::uint8_t>(h >> 8),
         b0 = static_cast<std::uint8_t>(h >> 16);
    for (int y = 0; y < height; ++y) {
        raw.push_back('\0');
        for (int x = 0; x < width; ++x) {
            raw.push_back(static_cast<char>(r0 + x * 255 / width));
            raw.push_back(static_cast<char>(g0 + y * 255 / height));
            raw.push_back(static_cast<char>(b0 + (x ^ y)));
        }
    }
    std::string png("\x89PNG\r\n\x1a\n", 8);
    std::string ihdr;
    put_be32(ihdr, static_cast<std::uint32_t>(width));
    put_be32(ihdr, static_cast<std::uint32_t>(height));
    ihdr.append(
        std::string_view("\x08\x02\x00\x00\x00", 5));  // 8-bit, RGB, deflate, no filter/interlace
    put_chunk(png, "IHDR", ihdr);
    put_chunk(png, "IDAT", zlib_stored(raw));
    put_chunk(png, "IEND", {});
    return png;
}

}  // namespace imgbatch::daemon

namespace imgbatch::daemon {

std::string png_itxt_chunk(std::string_view keyword, std::string_view text) {
    // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated
    // keyword NUL, text.
    std::string data(keyword);
    data.append(std::string_view("\0\0\0\0\0", 5));
    data.append(text);
    return png_chunk("iTXt", data);
}

std::string png_with_text(std::string_view png, std::string_view keyword, std::string_view text) {
    constexpr std::size_t kIend = 12;  // IEND: empty data
    if (png.size() < 8 + kIend || png.substr(png.size() - 8, 4) != "IEND")
        throw std::invalid_argument("png_with_text: not a PNG ending with IEND");
    std::string out(png.substr(0, png.size() - kIend));
    out += png_itxt_chunk(keyword, text);
    out.append(png.substr(png.size() - kIend));
    return out;
}

std::optional<std::string> png_text(std::string_view png, std::string_view keyword) {
    std::size_t at = 8;
    while (at + 12 <= png.size()) {
        std::size_t len = be32(png, at);
        if (len > png.size() - at - 12) break;
        std::string_view type = png.substr(at + 4, 4);
        std::string_view data = png.substr(at + 8, len);
        at += 12 + len;
        if (type != "tEXt" && type != "iTXt") continue;
        auto nul = data.find('\0');
        if (nul == std::string_view::npos || data.substr(0, nul) != keyword) continue;
        data.remove_prefix(nul + 1);
        if (type == "tEXt") return std::string(data);
        // iTXt: compression flag, method, language tag NUL, translated keyword NUL, text.
        if (data.size() < 2 || data[0] != '\0') continue;  // compressed: not read here
        data.remove_prefix(2);
        for (int i = 0; i < 2; ++i) {
            auto end = data.find('\0');
            if (end == std::string_view::npos) return std::nullopt;
            data.remove_prefix(end + 1);
        }
        return std::string(data);
    }
    return std::nullopt;
}

}  // namespace imgbatch::daemon
