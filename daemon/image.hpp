#pragma once
// Image bytes: type from magic bytes, dimensions, base64, sha256. No I/O.
#include <optional>
#include <string>
#include <string_view>

namespace imgbatch::daemon {

struct ImageInfo {
    std::string mime;  // image/png, image/jpeg, image/webp
    std::string ext;   // png, jpg, webp
    int width = 0;     // 0 when the header does not say
    int height = 0;
};

// From the magic bytes (PNG, JPEG, WebP VP8/VP8L/VP8X); nullopt when the bytes are no image.
std::optional<ImageInfo> sniff_image(std::string_view bytes);

// Standard base64 (whitespace ignored, padding optional); nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view bytes);

// A real PNG (RGB, 8-bit, stored deflate blocks) of width x height whose pixels derive from
// seed: used by the simulator and the tests.
std::string make_png(int width, int height, unsigned seed);

}  // namespace imgbatch::daemon
