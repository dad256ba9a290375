#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/openai_chat.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
namespace json = boost::json;

namespace {

ProviderConfig chat_provider() {
    ProviderConfig p;
    p.name = "relay";
    p.api = "openai-chat";
    p.base_url = "https://relay.example.com/v1";
    return p;
}

GenerationRequest request(json::object params = {}) {
    return {"sora_image", "a paper boat on a pond", 1, std::move(params)};
}

// A chat completion whose first choice says content (a JSON string literal) and finish_reason.
HttpResponse completion(const std::string& content_literal, std::string finish = "stop") {
    return {
        200,
        {{"Content-Type", "application/json"}},
        R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"choices":[{"index":0,"message":{"role":"assistant","content":)" +
            content_literal + R"(},"finish_reason":")" + finish +
            R"("}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}})"};
}

}  // namespace

TEST_CASE("chat request: model, one user message, no streaming, chat options merged") {
    json::object params{
        {"size", "1024x1024"},
        {"chat", json::object{{"temperature", 0.2}, {"stream", true}, {"max_tokens", 500}}}};
    auto http = build_openai_chat(request(params), chat_provider(), "sk-r");
    CHECK(http.url == "https://relay.example.com/v1/chat/completions");
    CHECK(find_header(http.headers, "Authorization") == "Bearer sk-r");
    auto body = json::parse(http.body).as_object();
    CHECK(body.at("model") == "sora_image");
    auto& messages = body.at("messages").as_array();
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].as_object().at("role") == "user");
    CHECK(messages[0].as_object().at("content") == "a paper boat on a pond");
    CHECK(body.at("stream") == false);  // the job cannot turn streaming on
    CHECK(body.at("temperature") == 0.2);
    CHECK(body.at("max_tokens") == 500);
    CHECK_FALSE(body.contains("size"));
    CHECK_FALSE(body.contains("chat"));
}

TEST_CASE("find_message_images: markdown images and data URIs, not links") {
    std::string png64 = base64_encode(make_png(2, 2, 1));
    std::string text =
        "Here you go:\n![boat](https://cdn.example.com/boat.png)\n"
        "[Download](https://cdn.example.com/boat-full.png) or visit https://example.com/x.png\n"
        "![inline](data:image/png;base64," +
        png64 +
        ")\n"
        "again ![boat](https://cdn.example.com/boat.png \"title\") and bare "
        "data:image/webp;base64,UklGRg== end";
    auto refs = find_message_images(text);
    REQUIRE(refs.size() == 3);
    CHECK(refs[0] == "https://cdn.example.com/boat.png");
    CHECK(refs[1] == "data:image/png;base64," + png64);
    CHECK(refs[2] == "data:image/webp;base64,UklGRg==");
    CHECK(find_message_images("[link](https://a.example/b.png) ![local](/tmp/x.png)").empty());
}

TEST_CASE("parse markdown image, plain link and data URI") {
    std::string png = make_png(3, 3, 9);
    std::string content =
        "\"> progress 100%\\n\\n![image](https://files.example.com/a.png)\\n\\n"
        "[open in new tab](https://files.example.com/a.png?download=1)\\n"
        "![second](data:image/png;base64," +
        base64_encode(png) + ")\"";
    auto parsed = parse_openai_chat(completion(content), request());
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].url == "https://files.example.com/a.png");
    CHECK(parsed.images[0].bytes.empty());
    CHECK(parsed.images[1].bytes == png);
    CHECK(parsed.images[1].claimed_mime == "image/png");
    CHECK(json::parse(parsed.usage_json).as_object().at("total_tokens") == 21);
}

TEST_CASE("content parts and message.images are read too") {
    auto parts = parse_openai_chat(
        {200,
         {},
         R"({"choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"done"},{"type":"image_url","image_url":{"url":"https://x.example/1.png"}}],"images":[{"type":"image_url","image_url":{"url":"https://x.example/2.png"}}]},"finish_reason":"stop"}]})"},
        request());
    CHECK_FALSE(parts.error);
    REQUIRE(parts.images.size() == 2);
    CHECK(parts.images[0].url == "https://x.example/2.png");
    CHECK(parts.images[1].url == "https://x.example/1.png");
}

TEST_CASE("no image: content filter, refusal, or bad_response") {
    auto filtered = parse_openai_chat(completion("\"\"", "content_filter"), request());
    REQUIRE(filtered.error);
    CHECK(filtered.error->cls == ErrorClass::moderation);
    CHECK(filtered.error->code == "content_filter");

    auto refused = parse_openai_chat(completion("\"I'm sorry, I can't create images of that person "
                                                "because it violates our content policy.\""),
                                     request());
    REQUIRE(refused.error);
    CHECK(refused.error->cls == ErrorClass::moderation);
    CHECK(refused.error->code == "refused");
    CHECK(refused.error->message.find("content policy") != std::string::npos);

    auto chinese = parse_openai_chat(completion("\"抱歉，该提示词违反了内容政策\""), request());
    REQUIRE(chinese.error);
    CHECK(chinese.error->code == "refused");

    auto nothing =
        parse_openai_chat(completion("\"Generating... [queue](https://x.example/q)\""), request());
    REQUIRE(nothing.error);
    CHECK(nothing.error->cls == ErrorClass::bad_response);
    CHECK(nothing.error->message.starts_with("no image in the message"));
}

TEST_CASE("chat errors: bad data URI, not JSON, HTTP errors") {
    auto bad = parse_openai_chat(completion("\"![x](data:image/png;base64,@@@@)\""), request());
    REQUIRE(bad.error);
    CHECK(bad.error->cls == ErrorClass::bad_response);
    CHECK(bad.error->message == "image 1: invalid base64");

    auto not_json = parse_openai_chat({200, {}, "data: {\"choices\":[]}\n\n"}, request());
    REQUIRE(not_json.error);
    CHECK(not_json.error->cls == ErrorClass::bad_response);

    auto limited =
        parse_openai_chat({429, {{"Retry-After", "3"}}, "rate limited, try later"}, request());
    REQUIRE(limited.error);
    CHECK(limited.error->cls == ErrorClass::rate_limited);
    CHECK(limited.error->message == "rate limited, try later");
}

// Each shape made a quadratic scan: an unclosed "![", "![...]" with no "data:image/" after it,
// "data:image/" with no "![" after it, and many distinct images (a linear duplicate check).
// 2 MiB of each took minutes; a linear scan takes milliseconds. The limit is far above that.
TEST_CASE("find_message_images is linear in the text" * doctest::timeout(20)) {
    constexpr std::size_t kSize = 2u << 20;
    auto repeat = [&](std::string_view unit) {
        std::string s;
        s.reserve(kSize + unit.size());
        while (s.size() < kSize) s += unit;
        return s;
    };
    CHECK(find_message_images(repeat("![")).empty());
    CHECK(find_message_images(repeat("![a]x")).empty());
    CHECK(find_message_images(repeat("data:image/x")).empty());
    CHECK(find_message_images(repeat("![a](data:image/png;base64,!)")).size() == 1);
    std::string many;
    int count = 0;
    while (many.size() < kSize) many += "![a](https://x.example/" + std::to_string(count++) + ")";
    auto refs = find_message_images(many + many);  // every image twice: listed once
    REQUIRE(refs.size() == static_cast<std::size_t>(count));
    CHECK(refs.front() == "https://x.example/0");
    CHECK(refs.back() == "https://x.example/" + std::to_string(count - 1));
}

TEST_CASE("a refusal made only of markup keeps a message") {
    for (const char* content : {R"("<p><b></b></p> <br/>")", R"("   ")"}) {
        CAPTURE(content);
        auto body =
            std::string(R"({"choices":[{"index":0,"message":{"role":"assistant","refusal":)") +
            content + R"(,"content":null},"finish_reason":"stop"}]})";
        auto r = parse_openai_chat({200, {}, body}, request());
        REQUIRE(r.error);
        CHECK(r.error->cls == ErrorClass::moderation);
        CHECK(r.error->code == "refused");
        CHECK_FALSE(r.error->message.empty());
    }
    auto markup = parse_openai_chat(completion(R"("<sorry></sorry>")"), request());
    REQUIRE(markup.error);
    CHECK(markup.error->code == "refused");
    CHECK(markup.error->message == "<sorry></sorry>");
    auto filtered = parse_openai_chat(completion(R"("<div></div>")", "content_filter"), request());
    REQUIRE(filtered.error);
    CHECK(filtered.error->code == "content_filter");
    CHECK(filtered.error->message == "<div></div>");
}

TEST_CASE("chat image URLs that are not valid http(s) URLs are bad_response") {
    auto parts = parse_openai_chat(
        {200,
         {},
         R"({"choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x.example/1.png\r\nX-Injected: 1"}}]},"finish_reason":"stop"}]})"},
        request());
    REQUIRE(parts.error);
    CHECK(parts.error->cls == ErrorClass::bad_response);
    CHECK(parts.error->code == "invalid_url");
    CHECK(parts.images.empty());

    auto control =
        parse_openai_chat(completion(R"x("![a](https://x.example/\u0001.png)")x"), request());
    REQUIRE(control.error);
    CHECK(control.error->code == "invalid_url");
}

TEST_CASE("a data URI with no data is not an image reference") {
    CHECK(find_message_images("bare data:image/png;base64,*VBOR and ![a](data:image/png;base64,)")
              .empty());
    CHECK(find_message_images("data:image/png;base64,QUJD") ==
          std::vector<std::string>{"data:image/png;base64,QUJD"});
    auto empty = parse_openai_chat(completion(R"("here: data:image/png;base64,")"), request());
    REQUIRE(empty.error);
    CHECK(empty.error->cls == ErrorClass::bad_response);
    CHECK(empty.images.empty());
}
