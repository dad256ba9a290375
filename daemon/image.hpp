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
// The same, decoding text into its own buffer (the bytes are never longer than the text):
// no second copy of a large image. On false, text holds garbage.
bool base64_decode_in_place(std::string& text);
std::string base64_encode(std::string_view bytes);

// base64_decode in pieces: feed() the text as it arrives (bytes are appended to out), then
// finish(). The same rules as base64_decode; false once anything was invalid.
class Base64Decoder {
  public:
    bool feed(std::string_view text, std::string& out);
    bool finish();

  private:
    unsigned acc_ = 0;
    int bits_ = 0, quad_ = 0, pad_ = 0;
    bool bad_ = false;
};

// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view bytes);

// A real PNG (RGB, 8-bit, stored deflate blocks) of width x height whose pixels derive from
// seed: used by the simulator and the tests.
std::string make_png(int width, int height, unsigned seed);

// A PNG chunk: length, type, data, CRC.
std::string png_chunk(std::string_view type, std::string_view data);
// An uncompressed iTXt chunk (UTF-8 text) with keyword.
std::string png_itxt_chunk(std::string_view keyword, std::string_view text);
// png with an iTXt chunk keyword=text inserted before IEND (the simulator tags each image with
// its prompt this way, so a test can tell which request an image answered).
std::string png_with_text(std::string_view png, std::string_view keyword, std::string_view text);
// The text of the first tEXt or uncompressed iTXt chunk with keyword; nullopt when none.
std::optional<std::string> png_text(std::string_view png, std::string_view keyword);

}  // namespace imgbatch::daemon
