#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/openai_images.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
namespace json = boost::json;

namespace {

ProviderConfig openai_provider() {
    ProviderConfig p;
    p.name = "openai";
    p.api = "openai";
    p.base_url = "https://api.openai.com/v1/";
    return p;
}

GenerationRequest request(std::string model, int n, json::object params = {}) {
    return {std::move(model), "a lighthouse at dusk", n, std::move(params)};
}

HttpResponse ok(std::string body) {
    return {200, {{"Content-Type", "application/json"}}, std::move(body)};
}

std::string b64_item(const std::string& bytes) {
    return R"({"b64_json":")" + base64_encode(bytes) + R"("})";
}

}  // namespace

TEST_CASE("gpt-image-2 request: URL, bearer auth, params as given, no response_format") {
    json::object params{
        {"size", "1536x1024"}, {"quality", "high"},       {"background", "transparent"},
        {"moderation", "low"}, {"output_format", "webp"}, {"output_compression", 80},
        {"user", "batch-7"}};
    auto http =
        build_openai_images(request("gpt-image-2", 3, params), openai_provider(), "sk-test");
    CHECK(http.method == "POST");
    CHECK(http.url == "https://api.openai.com/v1/images/generations");
    CHECK(find_header(http.headers, "authorization") == "Bearer sk-test");
    CHECK(find_header(http.headers, "content-type") == "application/json");

    auto body = json::parse(http.body).as_object();
    CHECK(body.at("model") == "gpt-image-2");
    CHECK(body.at("prompt") == "a lighthouse at dusk");
    CHECK(body.at("n") == 3);
    CHECK(body.at("size") == "1536x1024");
    CHECK(body.at("quality") == "high");
    CHECK(body.at("background") == "transparent");
    CHECK(body.at("moderation") == "low");
    CHECK(body.at("output_format") == "webp");
    CHECK(body.at("output_compression") == 80);
    CHECK(body.at("user") == "batch-7");
    // The schema: response_format is for dall-e-2/3 only.
    CHECK_FALSE(body.contains("response_format"));
    CHECK(body.size() == 10);
}

TEST_CASE("dall-e requests ask for b64_json unless the job chose a format") {
    auto d3 = json::parse(build_openai_images(request("dall-e-3", 1, {{"style", "natural"}}),
                                              openai_provider(), "k")
                              .body)
                  .as_object();
    CHECK(d3.at("response_format") == "b64_json");
    CHECK(d3.at("style") == "natural");
    auto d2 = json::parse(build_openai_images(request("dall-e-2", 2, {{"response_format", "url"}}),
                                              openai_provider(), "k")
                              .body)
                  .as_object();
    CHECK(d2.at("response_format") == "url");
    CHECK(d2.at("n") == 2);
    auto gpt =
        json::parse(build_openai_images(request("gpt-image-2", 1, {{"response_format", "url"}}),
                                        openai_provider(), "k")
                        .body)
            .as_object();
    CHECK_FALSE(gpt.contains("response_format"));
}

TEST_CASE("no Authorization without a key; configured headers are added and override") {
    auto p = openai_provider();
    p.headers = {{"X-Relay-Group", "night"}, {"Accept", "*/*"}};
    auto http = build_openai_images(request("gpt-image-2", 1), p, "");
    CHECK(find_header(http.headers, "Authorization").empty());
    CHECK(find_header(http.headers, "X-Relay-Group") == "night");
    CHECK(find_header(http.headers, "Accept") == "*/*");
    int accepts = 0;
    for (const auto& [k, v] : http.headers) accepts += k == "Accept";
    CHECK(accepts == 1);
}

TEST_CASE("parse b64_json images with revised prompt and usage") {
    std::string a = make_png(8, 8, 1), b = make_png(8, 8, 2);
    auto parsed = parse_openai_images(
        ok(R"({"created":1713833628,"output_format":"png","data":[{"b64_json":")" +
           base64_encode(a) + R"(","revised_prompt":"A tall lighthouse"},)" + b64_item(b) +
           R"(],"usage":{"total_tokens":100,"input_tokens":50,"output_tokens":50,"input_tokens_details":{"text_tokens":10,"image_tokens":40}}})"),
        request("gpt-image-2", 2));
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].bytes == a);
    CHECK(parsed.images[0].revised_prompt == "A tall lighthouse");
    CHECK(parsed.images[0].claimed_mime == "image/png");
    CHECK(parsed.images[1].bytes == b);
    CHECK(parsed.images[1].url.empty());
    auto usage = json::parse(parsed.usage_json).as_object();
    CHECK(usage.at("total_tokens") == 100);
    CHECK(usage.at("input_tokens_details").as_object().at("image_tokens") == 40);
}

TEST_CASE("parse url images and relay string entries") {
    auto parsed = parse_openai_images(
        ok(R"({"created":1,"data":[{"url":"https://cdn.example.com/a.png","revised_prompt":"r"},"https://cdn.example.com/b.png"]})"),
        request("dall-e-3", 2));
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].url == "https://cdn.example.com/a.png");
    CHECK(parsed.images[0].bytes.empty());
    CHECK(parsed.images[0].revised_prompt == "r");
    CHECK(parsed.images[1].url == "https://cdn.example.com/b.png");
}

TEST_CASE("fewer images than asked is not an error here") {
    auto parsed =
        parse_openai_images(ok(R"({"created":1,"data":[)" + b64_item(make_png(4, 4, 1)) + "]}"),
                            request("gpt-image-2", 4));
    CHECK_FALSE(parsed.error);
    CHECK(parsed.images.size() == 1);
}

TEST_CASE("an empty data array is bad_response") {
    auto parsed = parse_openai_images(ok(R"({"created":1,"data":[]})"), request("gpt-image-2", 2));
    REQUIRE(parsed.error);
    CHECK(parsed.error->cls == ErrorClass::bad_response);
    CHECK(parsed.error->message == "no images in the answer");
    CHECK(parsed.error->http_status == 200);
}

TEST_CASE("malformed answers are bad_response with an excerpt") {
    auto not_json = parse_openai_images(ok("<html><body>Gateway says hi</body></html>"),
                                        request("gpt-image-2", 1));
    REQUIRE(not_json.error);
    CHECK(not_json.error->cls == ErrorClass::bad_response);
    CHECK(not_json.error->message.find("Gateway says hi") != std::string::npos);

    auto no_data =
        parse_openai_images(ok(R"({"created":1,"data":"nope"})"), request("gpt-image-2", 1));
    REQUIRE(no_data.error);
    CHECK(no_data.error->cls == ErrorClass::bad_response);
    CHECK(no_data.error->message.find("no data array") != std::string::npos);

    auto truncated = parse_openai_images(ok(R"({"created":1,"data":[{"b64_json":"iVBO)"),
                                         request("gpt-image-2", 1));
    REQUIRE(truncated.error);
    CHECK(truncated.error->cls == ErrorClass::bad_response);
}

TEST_CASE("invalid base64 names the image and keeps the good ones") {
    auto parsed = parse_openai_images(
        ok(R"({"created":1,"data":[)" + b64_item("fine") + R"(,{"b64_json":"%%%not base64%%%"},)" +
           b64_item("also fine") + "]}"),
        request("gpt-image-2", 3));
    // Not an error of the whole answer: the engine decides once it counts the images.
    CHECK_FALSE(parsed.error);
    CHECK(parsed.item_error == "image 2: invalid base64");
    REQUIRE(parsed.images.size() == 2);
    CHECK(parsed.images[0].bytes == "fine");
    CHECK(parsed.images[1].bytes == "also fine");

    auto only_bad = parse_openai_images(ok(R"({"created":1,"data":[{"b64_json":"%%%"}]})"),
                                        request("gpt-image-2", 1));
    REQUIRE(only_bad.error);
    CHECK(only_bad.error->cls == ErrorClass::bad_response);
    CHECK(only_bad.error->code == "invalid_base64");
    CHECK(only_bad.error->message == "image 1: invalid base64");
}

TEST_CASE("revised prompts and usage are valid UTF-8") {
    auto parsed =
        parse_openai_images(ok(R"({"created":1,"data":[{"b64_json":")" + base64_encode("x") +
                               R"(","revised_prompt":"a\u0000b"}],"usage":{"note":"ok"}})"),
                            request("gpt-image-2", 1));
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].revised_prompt ==
          "a\xef\xbf\xbd"
          "b");
}

TEST_CASE("bytes that are no image are still returned (the writer checks them)") {
    auto parsed =
        parse_openai_images(ok(R"({"created":1,"data":[)" + b64_item("hello, not a png") + "]}"),
                            request("gpt-image-2", 1));
    CHECK_FALSE(parsed.error);
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].bytes == "hello, not a png");
}

TEST_CASE("HTTP errors go through error_from_response") {
    auto mod = parse_openai_images(
        {400,
         {},
         R"({"error":{"message":"Your request was rejected by the safety system.","type":"image_generation_user_error","param":null,"code":"moderation_blocked"}})"},
        request("gpt-image-2", 1));
    REQUIRE(mod.error);
    CHECK(mod.error->cls == ErrorClass::moderation);
    CHECK(mod.error->code == "moderation_blocked");
    CHECK(mod.error->http_status == 400);

    auto limited = parse_openai_images(
        {429,
         {{"Retry-After", "12"}},
         R"({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})"},
        request("gpt-image-2", 1));
    REQUIRE(limited.error);
    CHECK(limited.error->cls == ErrorClass::rate_limited);
    REQUIRE(limited.error->retry_after_s);
    CHECK(*limited.error->retry_after_s == doctest::Approx(12));
}

TEST_CASE("a relay's error inside a 200 answer") {
    auto mod = parse_openai_images(
        ok(R"({"error":{"message":"rejected by the safety system","type":"invalid_request_error","code":"moderation_blocked"}})"),
        request("sora_image", 1));
    REQUIRE(mod.error);
    CHECK(mod.error->cls == ErrorClass::moderation);
    CHECK(mod.error->code == "moderation_blocked");

    auto other = parse_openai_images(
        ok(R"({"error":{"message":"upstream timeout","type":"new_api_error"}})"),
        request("sora_image", 1));
    REQUIRE(other.error);
    CHECK(other.error->cls == ErrorClass::bad_response);
    CHECK(other.error->message == "upstream timeout");
}

TEST_CASE("the owned parse gives the same images and frees the answer's text") {
    std::string a = make_png(8, 8, 1), b = make_png(8, 8, 2);
    const std::string text =
        R"({"created":1,"data":[)" + b64_item(a) + "," + b64_item(b) + R"(],"usage":{"t":1}})";
    auto shared = parse_openai_images(ok(text), request("gpt-image-2", 2));
    HttpResponse owned_response = ok(text);
    auto owned = parse_openai_images_owned(std::move(owned_response), request("gpt-image-2", 2));
    CHECK(owned_response.body.empty());
    CHECK_FALSE(owned.error);
    REQUIRE(owned.images.size() == 2);
    CHECK(owned.images[0].bytes == shared.images[0].bytes);
    CHECK(owned.images[1].bytes == b);
    CHECK(owned.usage_json == shared.usage_json);
    // No data array: the message still quotes the answer.
    HttpResponse no_data = ok(R"({"created":1,"what":"no images here"})");
    auto missing = parse_openai_images_owned(std::move(no_data), request("gpt-image-2", 1));
    REQUIRE(missing.error);
    CHECK(missing.error->code == "no_data");
    CHECK(missing.error->message.find("no images here") != std::string::npos);
    const bool openai_owned = find_provider_api("openai")->parse_owned != nullptr;
    const bool google_owned = find_provider_api("google")->parse_owned != nullptr;
    CHECK(openai_owned);
    CHECK(google_owned);
}

TEST_CASE("image URLs that are not valid http(s) URLs are bad_response, never downloaded") {
    for (std::string url : {"https://cdn.test/a.png\r\nX-Injected: 1", "https://cdn test/a.png",
                            "https://cdn.test/a b.png", "http://cdn.test:70000/a.png",
                            "https://cdn.test\u0001/a.png"}) {
        CAPTURE(url);
        json::object body{{"data", json::array{json::object{{"url", url}}}}};
        auto parsed = parse_openai_images(ok(json::serialize(body)), request("dall-e-3", 1));
        REQUIRE(parsed.error);
        CHECK(parsed.error->cls == ErrorClass::bad_response);
        CHECK(parsed.error->code == "invalid_url");
        CHECK(parsed.error->message.starts_with("image 1: not a valid http(s) URL"));
        CHECK(parsed.images.empty());
    }
    // A good entry before a bad one is kept (it has its bytes); the bad one is dropped.
    json::object mixed{{"data", json::array{json::object{{"b64_json", base64_encode("xyz")}},
                                            "https://cdn.test/b.png\n"}}};
    auto parsed = parse_openai_images(ok(json::serialize(mixed)), request("dall-e-3", 2));
    REQUIRE(parsed.error);
    CHECK(parsed.error->code == "invalid_url");
    CHECK(parsed.error->message.starts_with("image 2: not a valid http(s) URL"));
    REQUIRE(parsed.images.size() == 1);
    CHECK(parsed.images[0].bytes == "xyz");
}

namespace {

// The images endpoint of a relay answering in the chat-completion shape (seeds 000 and 004).
std::string chat_shaped(const std::string& content) {
    json::object message{{"role", "assistant"}, {"content", content}};
    json::object o{
        {"id", "chatcmpl-123"},
        {"object", "chat.completion"},
        {"created", 1677652288},
        {"choices", json::array{json::object{
                        {"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}}}},
        {"usage", {{"prompt_tokens", 9}, {"completion_tokens", 12}, {"total_tokens", 21}}}};
    return json::serialize(o);
}

}  // namespace

TEST_CASE("a chat-shaped images answer: markdown image links and data URIs, download links not") {
    const std::string png = make_png(8, 8, 3);
    const std::string content =
        "\xe5\x9b\xbe\xe7\x89\x87\xe5\xb7\xb2\xe7\x94\x9f\xe6\x88\x90\n"  // 图片已生成
        "![image](https://filesystem.site/cdn/20260401/a.png)\n"
        "[\xe7\x82\xb9\xe5\x87\xbb\xe4\xb8\x8b\xe8\xbd\xbd](https://filesystem.site/cdn/download/"
        "20260401/a.png)\n"
        "![image 2](data:image/png;base64," +
        base64_encode(png) + ")";
    for (const char* model : {"gpt-image-2", "imagen-4.0-generate-preview-05-20", "sora_image"}) {
        CAPTURE(model);
        auto parsed = parse_openai_images(ok(chat_shaped(content)), request(model, 2));
        CHECK_FALSE(parsed.error);
        REQUIRE(parsed.images.size() == 2);
        CHECK(parsed.images[0].url == "https://filesystem.site/cdn/20260401/a.png");
        CHECK(parsed.images[0].bytes.empty());
        CHECK(parsed.images[1].url.empty());
        CHECK(parsed.images[1].bytes == png);
        CHECK(parsed.images[1].claimed_mime == "image/png");
        CHECK(parsed.usage_json.find("\"total_tokens\":21") != std::string::npos);

        HttpResponse owned_response = ok(chat_shaped(content));
        auto owned = parse_openai_images_owned(std::move(owned_response), request(model, 2));
        CHECK_FALSE(owned.error);
        REQUIRE(owned.images.size() == 2);
        CHECK(owned.images[0].url == parsed.images[0].url);
        CHECK(owned.images[1].bytes == png);
        CHECK(owned.usage_json == parsed.usage_json);
    }
}

TEST_CASE("a chat-shaped images answer without an image: a refusal or a bad response") {
    // The seeds' own example: text only, no image.
    auto text = parse_openai_images(ok(chat_shaped("Hello there, how may I assist you today?")),
                                    request("gpt-image-2", 1));
    REQUIRE(text.error);
    CHECK(text.error->cls == ErrorClass::bad_response);
    CHECK(text.error->code == "no_image");
    CHECK(text.images.empty());

    // Only a plain download link: not an image.
    HttpResponse link = ok(chat_shaped("[download](https://filesystem.site/cdn/a.png)"));
    auto owned = parse_openai_images_owned(std::move(link), request("gpt-image-2", 1));
    REQUIRE(owned.error);
    CHECK(owned.error->cls == ErrorClass::bad_response);
    CHECK(owned.images.empty());

    auto refusal = parse_openai_images(
        ok(chat_shaped(
            "\xe6\x8a\xb1\xe6\xad\x89\xef\xbc\x8c\xe6\x97\xa0\xe6\xb3\x95\xe7\x94\x9f"
            "\xe6\x88\x90\xe8\xaf\xa5\xe5\x9b\xbe\xe7\x89\x87")),  // 抱歉，无法生成该图片
        request("gpt-image-2", 1));
    REQUIRE(refusal.error);
    CHECK(refusal.error->cls == ErrorClass::moderation);
    CHECK(refusal.error->code == "refused");

    // A chat-shaped image URL that is no valid URL is never downloaded.
    auto bad = parse_openai_images(ok(chat_shaped("![x](https://cdn.test/a\x01.png)")),
                                   request("gpt-image-2", 1));
    REQUIRE(bad.error);
    CHECK(bad.images.empty());
}
