#include "daemon/image.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace imgbatch::daemon;

namespace {

std::string bytes(std::initializer_list<int> list) {
    std::string out;
    for (int b : list) out.push_back(static_cast<char>(b));
    return out;
}

std::uint32_t read_be32(const std::string& s, std::size_t at) {
    return (std::uint32_t(std::uint8_t(s[at])) << 24) |
           (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
}

// Bitwise CRC-32 (independent of the table-driven one under test).
std::uint32_t crc32_slow(std::string_view data) {
    std::uint32_t c = 0xffffffffu;
    for (char ch : data) {
        c ^= std::uint8_t(ch);
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

}  // namespace

TEST_CASE("sniff_image reads PNG type and IHDR dimensions") {
    std::string png =
        bytes({0x89, 'P', 'N', 'G',  0x0d, 0x0a, 0x1a, 0x0a, 0,    0, 0, 13, 'I', 'H', 'D',
               'R',  0,   0,   0x04, 0x00, 0,    0,    0x02, 0x58, 8, 2, 0,  0,   0});
    auto info = sniff_image(png);
    REQUIRE(info);
    CHECK(info->mime == "image/png");
    CHECK(info->ext == "png");
    CHECK(info->width == 1024);
    CHECK(info->height == 600);
}

TEST_CASE("sniff_image finds the JPEG frame header after other segments") {
    // SOI, APP0 (length 16), SOF0 with height 0x0300 and width 0x0400.
    std::string jpeg = bytes({0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',  'F',  'I', 'F',  0,
                              1,    1,    0,    0,    1,    0,    1,    0,    0,   0xff, 0xc0,
                              0x00, 0x11, 0x08, 0x03, 0x00, 0x04, 0x00, 0x03, 1,   0x22, 0});
    auto info = sniff_image(jpeg);
    REQUIRE(info);
    CHECK(info->mime == "image/jpeg");
    CHECK(info->ext == "jpg");
    CHECK(info->width == 1024);
    CHECK(info->height == 768);
}

TEST_CASE("sniff_image reads the three WebP variants") {
    std::string riff = bytes({'R', 'I', 'F', 'F', 0x40, 0, 0, 0, 'W', 'E', 'B', 'P'});
    SUBCASE("lossy VP8") {
        std::string w = riff + "VP8 " + bytes({0x30, 0, 0, 0}) + bytes({0, 0, 0}) +
                        bytes({0x9d, 0x01, 0x2a}) + bytes({0x00, 0x03, 0x00, 0x02});
        auto info = sniff_image(w);
        REQUIRE(info);
        CHECK(info->mime == "image/webp");
        CHECK(info->ext == "webp");
        CHECK(info->width == 768);
        CHECK(info->height == 512);
    }
    SUBCASE("lossless VP8L") {
        // width-1 = 99 (14 bits), height-1 = 49 (next 14 bits).
        std::uint32_t bits = 99u | (49u << 14);
        std::string w = riff + "VP8L" + bytes({0x20, 0, 0, 0}) + bytes({0x2f}) +
                        bytes({int(bits & 0xff), int((bits >> 8) & 0xff), int((bits >> 16) & 0xff),
                               int((bits >> 24) & 0xff)});
        auto info = sniff_image(w);
        REQUIRE(info);
        CHECK(info->width == 100);
        CHECK(info->height == 50);
    }
    SUBCASE("extended VP8X") {
        // canvas 1920x1080 stored as width-1 and height-1, 24-bit little-endian.
        std::string w = riff + "VP8X" + bytes({10, 0, 0, 0}) + bytes({0, 0, 0, 0}) +
                        bytes({0x7f, 0x07, 0x00}) + bytes({0x37, 0x04, 0x00});
        auto info = sniff_image(w);
        REQUIRE(info);
        CHECK(info->width == 1920);
        CHECK(info->height == 1080);
    }
}

TEST_CASE("sniff_image rejects bytes that are no image") {
    CHECK_FALSE(sniff_image(""));
    CHECK_FALSE(sniff_image("{\"error\":\"not an image\"}"));
    CHECK_FALSE(sniff_image("<html><body>502 Bad Gateway</body></html>"));
    CHECK_FALSE(sniff_image(bytes({0x89, 'P', 'N', 'G'})));
    CHECK_FALSE(sniff_image(
        bytes({'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' '})));
}

TEST_CASE("base64 round trip and known vectors") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    for (std::size_t len : {0u, 1u, 2u, 3u, 100u, 256u}) {
        std::string part = all.substr(0, len);
        auto back = base64_decode(base64_encode(part));
        REQUIRE(back);
        CHECK(*back == part);
    }
}

TEST_CASE("base64_decode accepts whitespace and missing padding") {
    CHECK(base64_decode("Zm9v\nYmFy") == std::optional<std::string>("foobar"));
    CHECK(base64_decode("  Zm8 ") == std::optional<std::string>("fo"));
    CHECK(base64_decode("Zg") == std::optional<std::string>("f"));
    CHECK(base64_decode("Zg==") == std::optional<std::string>("f"));
}

TEST_CASE("base64_decode rejects invalid input") {
    CHECK_FALSE(base64_decode("Zm9v!"));
    CHECK_FALSE(base64_decode("Zm9v-_"));    // URL-safe alphabet is not standard base64
    CHECK_FALSE(base64_decode("Z"));         // a lone character encodes no byte
    CHECK_FALSE(base64_decode("Zg==Zg=="));  // data after padding
    CHECK_FALSE(base64_decode("Zm9v="));     // padding that completes nothing
}

TEST_CASE("sha256_hex of known inputs") {
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("make_png builds a PNG that sniffs with its size and has valid chunk CRCs") {
    std::string png = make_png(300, 200, 7);
    auto info = sniff_image(png);
    REQUIRE(info);
    CHECK(info->mime == "image/png");
    CHECK(info->width == 300);
    CHECK(info->height == 200);

    // Walk the chunks: IHDR, IDAT, IEND, each with a matching CRC over type + data.
    std::size_t at = 8;
    std::vector<std::string> types;
    while (at + 12 <= png.size()) {
        std::uint32_t len = read_be32(png, at);
        REQUIRE(at + 12 + len <= png.size());
        std::string type = png.substr(at + 4, 4);
        types.push_back(type);
        CHECK_MESSAGE(read_be32(png, at + 8 + len) == crc32_slow(png.substr(at + 4, 4 + len)),
                      type);
        at += 12 + len;
    }
    CHECK(at == png.size());
    CHECK(types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});

    // Stored deflate holds the raw scanlines: filter byte + 3 bytes per pixel, per row.
    CHECK(png.size() > 200u * (1 + 300 * 3));
}

TEST_CASE("make_png depends on the seed and is deterministic") {
    CHECK(make_png(16, 16, 1) == make_png(16, 16, 1));
    CHECK(make_png(16, 16, 1) != make_png(16, 16, 2));
    // Large enough to need several stored deflate blocks (> 65535 bytes of scanlines).
    auto big = sniff_image(make_png(256, 128, 3));
    REQUIRE(big);
    CHECK(big->width == 256);
    CHECK(big->height == 128);
}

TEST_CASE("png_with_text adds an iTXt chunk before IEND that png_text reads back") {
    const std::string png = make_png(8, 8, 1);
    const std::string tagged = png_with_text(png, "prompt", "a red fox \xe7\x8c\xab #fail=interim");
    auto info = sniff_image(tagged);
    REQUIRE(info);
    CHECK(info->width == 8);
    CHECK(tagged.ends_with(png.substr(png.size() - 12)));  // still ends with IEND
    CHECK(png_text(tagged, "prompt") == "a red fox \xe7\x8c\xab #fail=interim");
    CHECK_FALSE(png_text(tagged, "other").has_value());
    CHECK_FALSE(png_text(png, "prompt").has_value());
    // Every chunk's CRC holds.
    std::size_t at = 8;
    while (at + 12 <= tagged.size()) {
        std::uint32_t len = read_be32(tagged, at);
        REQUIRE(at + 12 + len <= tagged.size());
        CHECK(read_be32(tagged, at + 8 + len) == crc32_slow(tagged.substr(at + 4, 4 + len)));
        at += 12 + len;
    }
    CHECK(at == tagged.size());
}

TEST_CASE("base64_decode_in_place decodes into the same buffer") {
    std::string text = base64_encode(make_png(16, 16, 4));
    std::string expected = *base64_decode(text);
    CHECK(base64_decode_in_place(text));
    CHECK(text == expected);
    std::string bad = "abc$";
    CHECK_FALSE(base64_decode_in_place(bad));
    std::string spaced = "aGVs\nbG8=";
    CHECK(base64_decode_in_place(spaced));
    CHECK(spaced == "hello");
}
