// parse_answer_json: large image strings decoded while read, the text taken and released.
#include "daemon/providers/answer_json.hpp"

#include <doctest/doctest.h>

#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/google_predict.hpp"
#include "daemon/providers/openai_images.hpp"

using namespace imgbatch::daemon;
namespace json = boost::json;

TEST_CASE("answer json: large image strings become blobs, the rest stays a document") {
    const std::string big = make_png(200, 200, 3);  // ~120 KB of bytes, ~160 KB of base64
    const std::string small = make_png(2, 2, 1);
    // A relay that escapes slashes ("\/") in its base64 is read the same.
    std::string escaped = base64_encode(big);
    for (std::size_t at = escaped.find('/'); at != std::string::npos;
         at = escaped.find('/', at + 2))
        escaped.replace(at, 1, "\\/");
    std::string text = R"({"created":1,"data":[{"b64_json":")" + base64_encode(big) +
                       R"(","revised_prompt":"p"},{"b64_json":")" + base64_encode(small) +
                       R"("},{"b64_json":")" + escaped + R"("},{"b64_json":"%%)" +
                       std::string(100000, 'A') + R"("}],"usage":{"total_tokens":5}})";
    auto doc = parse_answer_json(std::move(text), {"b64_json"});
    REQUIRE(doc);
    CHECK(text.empty());
    REQUIRE(doc->blobs.size() == 3);
    auto& data = doc->value.at("data").as_array();
    auto* first = doc->blob(data[0].at("b64_json"));
    REQUIRE(first);
    REQUIRE(first->has_value());
    CHECK(**first == big);
    CHECK(data[0].at("revised_prompt") == "p");
    // Below the threshold: an ordinary string.
    CHECK(doc->blob(data[1].at("b64_json")) == nullptr);
    CHECK(std::string(data[1].at("b64_json").as_string()) == base64_encode(small));
    auto* third = doc->blob(data[2].at("b64_json"));
    REQUIRE(third);
    CHECK(third->value_or("") == big);
    auto* bad = doc->blob(data[3].at("b64_json"));
    REQUIRE(bad);
    CHECK_FALSE(bad->has_value());  // not valid base64
    CHECK(doc->value.at("usage").at("total_tokens") == 5);
    // A string that looks like a placeholder from elsewhere is not one.
    CHECK(doc->blob(json::value("\x01imgbatch-blob-1:0")) == nullptr);
}

TEST_CASE("answer json: not JSON, cut short or followed by junk is refused") {
    for (std::string text : {std::string("not json"), std::string(R"({"data":[)"),
                             std::string(R"({"a":1} x)"), std::string("")}) {
        INFO(text);
        CHECK_FALSE(parse_answer_json(std::move(text), {"b64_json"}).has_value());
    }
    CHECK(parse_answer_json(std::string("{\"a\":1}  \n"), {"b64_json"}).has_value());
}

TEST_CASE("answer json: a large answer through the owned parsers keeps every image") {
    const std::string a = make_png(300, 300, 1), b = make_png(300, 300, 2);
    HttpResponse openai{200,
                        {{"Content-Type", "application/json"}},
                        R"({"created":1,"data":[{"b64_json":")" + base64_encode(a) +
                            R"(","revised_prompt":"r"},{"b64_json":")" + base64_encode(b) +
                            R"("}]})"};
    GenerationRequest req{"gpt-image-1", "x", 2, {}};
    auto parsed = parse_openai_images_owned(std::move(openai), req);
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].bytes == a);
    CHECK(parsed.images[0].revised_prompt == "r");
    CHECK(parsed.images[1].bytes == b);

    HttpResponse google{200,
                        {{"Content-Type", "application/json"}},
                        R"({"predictions":[{"bytesBase64Encoded":")" + base64_encode(a) +
                            R"(","mimeType":"image/png"},{"bytesBase64Encoded":"**)" +
                            std::string(90000, 'A') + R"(","mimeType":"image/png"}]})"};
    auto g = parse_google_predict_owned(std::move(google), GenerationRequest{"imagen", "x", 2, {}});
    CHECK_FALSE(g.error);
    CHECK(g.item_error == "image 2: invalid base64");
    REQUIRE(g.images.size() == 1);
    CHECK(g.images[0].bytes == a);
}

TEST_CASE("Base64Decoder decodes in pieces like base64_decode") {
    const std::string bytes = make_png(20, 20, 5);
    const std::string text = base64_encode(bytes);
    for (std::size_t piece : {1u, 3u, 7u, 1000u}) {
        Base64Decoder d;
        std::string out;
        for (std::size_t at = 0; at < text.size(); at += piece)
            CHECK(d.feed(std::string_view(text).substr(at, piece), out));
        CHECK(d.finish());
        CHECK(out == bytes);
    }
    Base64Decoder bad;
    std::string out;
    CHECK_FALSE(bad.feed("ab$c", out));
    CHECK_FALSE(bad.finish());
    Base64Decoder cut;
    CHECK(cut.feed("abcde", out));
    CHECK_FALSE(cut.finish());  // one character left over
}
