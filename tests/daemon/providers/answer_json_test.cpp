// parse_answer_json: large image strings decoded while read, the text taken and released.
#include "daemon/providers/answer_json.hpp"

#include <doctest/doctest.h>

#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/google_predict.hpp"
#include "daemon/providers/openai_chat.hpp"
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
    GenerationRequest req{"gpt-image-2", "x", 2, {}};
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

namespace {

// A chat completion whose message content is the JSON string text (quotes added here).
std::string chat_answer(const std::string& text) {
    return "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
           "\"message\":{\"role\":\"assistant\",\"content\":\"" +
           text + "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":4}}";
}

}  // namespace

TEST_CASE("answer json: data URIs in a large message are decoded while read, not held as text") {
    const std::string a = make_png(200, 200, 4), b = make_png(180, 180, 6);
    // Markdown with two inline images, a head with no data and a bare URI, as relays answer.
    auto doc = parse_answer_json(
        chat_answer("images:\\n![one](data:image/png;base64," + base64_encode(a) +
                    ")\\nnot one: data:image/png;base64,) and data:image/webp;base64," +
                    base64_encode(b) + " end"),
        {}, {"content"});
    REQUIRE(doc);
    REQUIRE(doc->blobs.size() == 2);
    std::string kept(
        doc->value.at("choices").as_array()[0].at("message").at("content").as_string());
    // The text stays, the data is gone: what is left is small.
    CHECK(kept.size() < 300);
    CHECK(kept.starts_with("images:\n![one](data:image/png;base64," + doc->marker + "0)"));
    CHECK(kept.find("not one: data:image/png;base64,) and data:image/webp;base64," + doc->marker +
                    "1 end") != std::string::npos);
    CHECK(doc->blobs[0].value_or("") == a);
    CHECK(doc->blobs[1].value_or("") == b);

    // The same image linked twice is one image, as when the message is read whole.
    auto twice = parse_answer_json(
        chat_answer("![a](data:image/png;base64," + base64_encode(a) +
                    ") [download](data:image/png;base64," + base64_encode(a) + ")"),
        {}, {"content"});
    REQUIRE(twice);
    CHECK(twice->blobs.size() == 1);

    // Below the threshold a message is an ordinary string.
    auto plain = parse_answer_json(
        chat_answer("![x](data:image/png;base64," + base64_encode(make_png(2, 2, 1)) + ")"), {},
        {"content"});
    REQUIRE(plain);
    CHECK(plain->blobs.empty());
}

TEST_CASE("answer json: chat-shaped answers through the owned parsers keep every image") {
    const std::string a = make_png(300, 300, 1), b = make_png(300, 300, 2);
    const std::string body =
        chat_answer("done\\n![1](data:image/png;base64," + base64_encode(a) +
                    ")\\n![2](data:image/png;base64," + base64_encode(b) + ")");
    GenerationRequest req{"gpt-image-2-all", "x", 2, {}};
    for (bool images_endpoint : {true, false}) {
        INFO("images endpoint: " << images_endpoint);
        HttpResponse resp{200, {{"Content-Type", "application/json"}}, body};
        auto parsed = images_endpoint ? parse_openai_images_owned(std::move(resp), req)
                                      : parse_openai_chat_owned(std::move(resp), req);
        CHECK_FALSE(parsed.error);
        REQUIRE(parsed.images.size() == 2);
        CHECK(parsed.images[0].bytes == a);
        CHECK(parsed.images[0].claimed_mime == "image/png");
        CHECK(parsed.images[1].bytes == b);
        CHECK_FALSE(parsed.usage_json.empty());
    }
    // One image's data is not valid base64: the answer fails as it did before.
    HttpResponse bad{
        200, {}, chat_answer("![1](data:image/png;base64," + base64_encode(a) + "==AAAA)")};
    auto refused = parse_openai_chat_owned(std::move(bad), req);
    REQUIRE(refused.error);
    CHECK(refused.error->message == "image 1: invalid base64");
}
