// The simulator over real loopback HTTP, driven by a plain blocking socket client so that
// resets, held and truncated answers are seen exactly as sent.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <string>
#include <thread>

#include "daemon/image.hpp"
#include "daemon/sim/server.hpp"
#include "daemon/sim/state.hpp"
#include "tests/daemon/sim_thread.hpp"

using namespace imgbatch::daemon;
using imgbatch::daemon::testing::SimThread;
namespace json = boost::json;

namespace {

struct Raw {
    bool connected = false;
    int status = 0;  // 0: no answer at all
    std::string head;
    std::string body;
    long content_length = -1;
};

// One request on a fresh connection (Connection: close); reads until the server closes it or
// nothing arrives for timeout_ms.
Raw raw_request(int port, const std::string& method, const std::string& target,
                const std::string& body = "", const std::string& headers = "",
                int timeout_ms = 10'000) {
    Raw out;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return out;
    }
    out.connected = true;
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
        "\r\nConnection: close\r\n" + headers +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    for (std::size_t sent = 0; sent < req.size();) {
        ssize_t k = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (k <= 0) break;
        sent += static_cast<std::size_t>(k);
    }
    std::string all;
    char buf[65536];
    for (;;) {
        ssize_t k = ::recv(fd, buf, sizeof buf, 0);
        if (k <= 0) break;
        all.append(buf, static_cast<std::size_t>(k));
    }
    ::close(fd);
    auto end = all.find("\r\n\r\n");
    if (end == std::string::npos) return out;
    out.head = all.substr(0, end);
    out.body = all.substr(end + 4);
    out.status = std::stoi(out.head.substr(9, 3));
    if (auto cl = out.head.find("Content-Length: "); cl != std::string::npos)
        out.content_length = std::stol(out.head.substr(cl + 16));
    return out;
}

json::object json_of(const Raw& r) {
    INFO("body: " << r.body);
    return json::parse(r.body).as_object();
}

std::string openai_body(const std::string& prompt, int n = 1, const std::string& extra = "") {
    return R"({"model":"gpt-image-2","prompt":)" + json::serialize(json::string(prompt)) +
           ",\"n\":" + std::to_string(n) + extra + "}";
}
std::string google_body(const std::string& prompt, int k = 1) {
    return R"({"instances":[{"prompt":)" + json::serialize(json::string(prompt)) +
           R"(}],"parameters":{"sampleCount":)" + std::to_string(k) + "}}";
}
std::string chat_body(const std::string& prompt) {
    return R"({"model":"sora_image","messages":[{"role":"system","content":"be nice"},)"
           R"({"role":"user","content":)" +
           json::serialize(json::string(prompt)) + "}]}";
}

const std::string kOpenai = "/v1/images/generations";
const std::string kGoogle = "/v1beta/models/imagen-4.0-generate-001:predict";
const std::string kChat = "/v1/chat/completions";

void check_png(const std::string& base64, int size) {
    auto bytes = base64_decode(base64);
    REQUIRE(bytes);
    auto info = sniff_image(*bytes);
    REQUIRE(info);
    CHECK(info->mime == "image/png");
    CHECK(info->width == size);
}

bool has_header(const Raw& r, const std::string& line) {
    return r.head.find("\r\n" + line + "\r\n") != std::string::npos ||
           r.head.ends_with("\r\n" + line);
}

long long stat(int port, const char* name) {
    auto o = json_of(raw_request(port, "GET", "/sim/stats"));
    return o.at(name).as_int64();
}

}  // namespace

TEST_CASE("sim: OpenAI images as base64 PNGs with revised prompt and usage") {
    SimOptions opt;
    opt.image_size = 24;
    SimThread sim(opt);
    Raw r = raw_request(sim.port(), "POST", kOpenai, openai_body("a red fox", 2));
    REQUIRE(r.status == 200);
    auto o = json_of(r);
    CHECK(o.at("created").as_int64() > 0);
    auto& data = o.at("data").as_array();
    REQUIRE(data.size() == 2);
    for (auto& item : data) {
        check_png(std::string(item.at("b64_json").as_string()), 24);
        CHECK(item.at("revised_prompt").as_string() == "a red fox (revised)");
    }
    CHECK(data[0].at("b64_json") != data[1].at("b64_json"));  // different images
    auto& usage = o.at("usage").as_object();
    CHECK(usage.at("total_tokens").as_int64() ==
          usage.at("input_tokens").as_int64() + usage.at("output_tokens").as_int64());
    CHECK(usage.at("input_tokens_details").at("image_tokens").as_int64() == 0);
}

TEST_CASE("sim: url answers are served from /sim/files") {
    SimThread sim;
    for (std::string body :
         {openai_body("a fox", 1, R"(,"response_format":"url")"), openai_body("a fox #url", 1)}) {
        Raw r = raw_request(sim.port(), "POST", kOpenai, body);
        REQUIRE(r.status == 200);
        std::string url(json_of(r).at("data").at(0).at("url").as_string());
        std::string prefix = "http://127.0.0.1:" + std::to_string(sim.port()) + "/sim/files/";
        REQUIRE(url.starts_with(prefix));
        CHECK(url.ends_with(".png"));
        Raw file = raw_request(sim.port(), "GET", url.substr(url.find("/sim/")));
        CHECK(file.status == 200);
        CHECK(has_header(file, "Content-Type: image/png"));
        auto info = sniff_image(file.body);
        REQUIRE(info);
        CHECK(info->width == 64);
    }
    CHECK(raw_request(sim.port(), "GET", "/sim/files/nope.png").status == 404);
}

TEST_CASE("sim: a request without prompt is an invalid_request_error") {
    SimThread sim;
    Raw r = raw_request(sim.port(), "POST", kOpenai, R"({"model":"gpt-image-2"})");
    CHECK(r.status == 400);
    CHECK(json_of(r).at("error").at("type").as_string() == "invalid_request_error");
}

TEST_CASE("sim: Google predict answers sampleCount images") {
    SimThread sim;
    Raw r = raw_request(sim.port(), "POST", kGoogle, google_body("a cat", 3));
    REQUIRE(r.status == 200);
    auto preds = json_of(r).at("predictions").as_array();
    REQUIRE(preds.size() == 3);
    for (auto& p : preds) {
        CHECK(p.at("mimeType").as_string() == "image/png");
        check_png(std::string(p.at("bytesBase64Encoded").as_string()), 64);
    }
}

TEST_CASE("sim: chat completions answer with a markdown image link, or a data URI") {
    SimThread sim;
    Raw r = raw_request(sim.port(), "POST", kChat, chat_body("a dog"));
    REQUIRE(r.status == 200);
    auto o = json_of(r);
    CHECK(o.at("object").as_string() == "chat.completion");
    auto& choice = o.at("choices").at(0);
    CHECK(choice.at("finish_reason").as_string() == "stop");
    std::string content(choice.at("message").at("content").as_string());
    std::string base = "http://127.0.0.1:" + std::to_string(sim.port()) + "/sim/files/";
    auto img = content.find("![image](" + base);
    REQUIRE(img != std::string::npos);
    CHECK(content.find("[Download](" + base) != std::string::npos);
    std::string url = content.substr(img + 9, content.find(')', img) - img - 9);
    Raw file = raw_request(sim.port(), "GET", url.substr(url.find("/sim/")));
    CHECK(sniff_image(file.body).has_value());

    Raw inline_r = raw_request(sim.port(), "POST", kChat, chat_body("a dog #datauri"));
    std::string inline_content(
        json_of(inline_r).at("choices").at(0).at("message").at("content").as_string());
    auto data = inline_content.find("(data:image/png;base64,");
    REQUIRE(data != std::string::npos);
    auto start = data + 23;
    check_png(inline_content.substr(start, inline_content.find(')', start) - start), 64);
}

TEST_CASE("sim: directive syntax") {
    auto d = parse_directives("a fox #fail=429ms*3 #slow=250 #url");
    CHECK(d.fail == "429ms");
    CHECK(d.fail_count == 3);
    CHECK(d.slow_ms == 250);
    CHECK(d.url);
    CHECK_FALSE(d.datauri);
    auto always = parse_directives("#datauri a fox #fail=reset");
    CHECK(always.fail == "reset");
    CHECK(always.fail_count == -1);
    CHECK(always.datauri);
    CHECK(parse_directives("no directives here #failing").fail.empty());
}

TEST_CASE("sim: #fail=KIND*COUNT fails the first COUNT calls of that prompt") {
    SimThread sim;
    auto body = openai_body("a fox #fail=500*2");
    CHECK(raw_request(sim.port(), "POST", kOpenai, body).status == 500);
    CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("another fox")).status == 200);
    CHECK(raw_request(sim.port(), "POST", kOpenai, body).status == 500);
    CHECK(raw_request(sim.port(), "POST", kOpenai, body).status == 200);
    // Without COUNT every call fails.
    for (int i = 0; i < 3; ++i)
        CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("x #fail=503")).status == 503);
}

TEST_CASE("sim: fault kinds in the OpenAI shape") {
    SimThread sim;
    auto call = [&](const std::string& kind, int n = 1) {
        return raw_request(sim.port(), "POST", kOpenai, openai_body("fox #fail=" + kind, n));
    };
    auto error_of = [](const Raw& r) { return json_of(r).at("error").as_object(); };

    Raw r429 = call("429");
    CHECK(r429.status == 429);
    CHECK(has_header(r429, "Retry-After: 1"));
    CHECK(error_of(r429).at("code").as_string() == "rate_limit_exceeded");

    Raw ms = call("429ms");
    CHECK(ms.status == 429);
    CHECK(has_header(ms, "retry-after-ms: 300"));
    CHECK(ms.head.find("Retry-After:") == std::string::npos);

    Raw text = call("429text");
    CHECK(text.status == 429);
    CHECK(text.body == "Too Many Requests");
    CHECK(has_header(text, "Content-Type: text/plain"));
    CHECK(has_header(text, "Retry-After: 1"));

    Raw r500 = call("500");
    CHECK(r500.status == 500);
    CHECK(error_of(r500).at("type").as_string() == "server_error");

    Raw html = call("502html");
    CHECK(html.status == 502);
    CHECK(has_header(html, "Content-Type: text/html"));
    CHECK(html.body.find("<html>") != std::string::npos);

    Raw r503 = call("503");
    CHECK(r503.status == 503);
    CHECK(has_header(r503, "Retry-After: 1"));

    Raw mod = call("moderation");
    CHECK(mod.status == 400);
    CHECK(error_of(mod).at("code").as_string() == "moderation_blocked");
    CHECK(error_of(mod).at("type").as_string() == "image_generation_user_error");

    Raw partial = call("partial", 4);
    CHECK(partial.status == 200);
    CHECK(json_of(partial).at("data").as_array().size() == 2);
    CHECK(json_of(call("partial", 1)).at("data").as_array().empty());

    Raw bad = call("badjson");
    CHECK(bad.status == 200);
    CHECK(bad.body == R"({"data": [ not json)");

    Raw b64 = call("badbase64");
    CHECK(json_of(b64).at("data").at(0).at("b64_json").as_string() == "!!!not-base64!!!");

    Raw notimage = call("notimage");
    auto decoded =
        base64_decode(std::string(json_of(notimage).at("data").at(0).at("b64_json").as_string()));
    REQUIRE(decoded);
    CHECK(*decoded == "hello, this is not an image");

    Raw invalid = call("invalid");
    CHECK(invalid.status == 400);
    CHECK(error_of(invalid).at("code").as_string() == "invalid_value");
    CHECK(std::string(error_of(invalid).at("message").as_string()).find("'size'") !=
          std::string::npos);

    Raw auth = call("auth");
    CHECK(auth.status == 401);
    CHECK(error_of(auth).at("code").as_string() == "invalid_api_key");

    Raw quota = call("quota");
    CHECK(quota.status == 429);
    CHECK(error_of(quota).at("code").as_string() == "insufficient_quota");

    Raw empty = call("empty", 3);
    CHECK(empty.status == 200);
    CHECK(json_of(empty).at("data").as_array().empty());
}

TEST_CASE("sim: fault kinds in the Google shape") {
    SimThread sim;
    auto call = [&](const std::string& kind, int k = 1) {
        return raw_request(sim.port(), "POST", kGoogle, google_body("cat #fail=" + kind, k));
    };
    Raw r429 = call("429");
    CHECK(r429.status == 429);
    auto err = json_of(r429).at("error").as_object();
    CHECK(err.at("code").as_int64() == 429);
    CHECK(err.at("status").as_string() == "RESOURCE_EXHAUSTED");

    Raw mod = call("moderation", 2);
    CHECK(mod.status == 200);
    auto filtered = json_of(mod).at("predictions").as_array();
    REQUIRE(filtered.size() == 2);
    for (auto& p : filtered) {
        CHECK(p.as_object().contains("raiFilteredReason"));
        CHECK_FALSE(p.as_object().contains("bytesBase64Encoded"));
    }

    auto partial = json_of(call("partial", 4)).at("predictions").as_array();
    REQUIRE(partial.size() == 4);
    int with_bytes = 0;
    for (auto& p : partial) with_bytes += p.as_object().contains("bytesBase64Encoded");
    CHECK(with_bytes == 2);

    CHECK(json_of(call("empty", 2)).at("predictions").as_array().empty());
}

TEST_CASE("sim: chat faults: moderation error and partial without an image") {
    SimThread sim;
    Raw mod = raw_request(sim.port(), "POST", kChat, chat_body("dog #fail=moderation"));
    CHECK(mod.status == 400);
    CHECK(json_of(mod).at("error").at("code").as_string() == "moderation_blocked");
    Raw partial = raw_request(sim.port(), "POST", kChat, chat_body("dog #fail=partial"));
    CHECK(partial.status == 200);
    std::string content(
        json_of(partial).at("choices").at(0).at("message").at("content").as_string());
    CHECK(content.find("![") == std::string::npos);
}

TEST_CASE("sim: transport faults: reset, truncated, timeout") {
    SimThread sim;
    Raw reset = raw_request(sim.port(), "POST", kOpenai, openai_body("#fail=reset"));
    CHECK(reset.connected);
    CHECK(reset.status == 0);
    CHECK(reset.head.empty());

    Raw truncated = raw_request(sim.port(), "POST", kOpenai, openai_body("#fail=truncated"));
    CHECK(truncated.status == 200);
    CHECK(truncated.content_length > static_cast<long>(truncated.body.size()));

    // Held: nothing arrives before the client gives up.
    Raw held = raw_request(sim.port(), "POST", kOpenai, openai_body("#fail=timeout"), "", 300);
    CHECK(held.connected);
    CHECK(held.status == 0);

    auto by_status = json_of(raw_request(sim.port(), "GET", "/sim/stats")).at("by_status");
    CHECK(by_status.at("reset").as_int64() == 1);
    CHECK(by_status.at("truncated").as_int64() == 1);
}

TEST_CASE("sim: stats count requests, statuses, images and paths; reset zeroes them") {
    SimThread sim;
    raw_request(sim.port(), "POST", kOpenai, openai_body("fox", 3));
    raw_request(sim.port(), "POST", kGoogle, google_body("cat", 2));
    raw_request(sim.port(), "POST", kOpenai, openai_body("fox #fail=500"));
    auto o = json_of(raw_request(sim.port(), "GET", "/sim/stats"));
    CHECK(o.at("requests").as_int64() == 3);
    CHECK(o.at("images").as_int64() == 5);
    CHECK(o.at("by_status").at("200").as_int64() == 2);
    CHECK(o.at("by_status").at("500").as_int64() == 1);
    CHECK(o.at("by_path").at(kOpenai).as_int64() == 2);
    CHECK(o.at("by_path").at(kGoogle).as_int64() == 1);
    CHECK(o.at("in_flight").as_int64() == 0);
    CHECK(o.at("max_in_flight").as_int64() >= 1);
    CHECK(o.at("rate_limited").as_int64() == 0);
    CHECK(o.at("connections").as_int64() >= 3);

    CHECK(raw_request(sim.port(), "POST", "/sim/reset").status == 200);
    CHECK(stat(sim.port(), "requests") == 0);
    CHECK(stat(sim.port(), "images") == 0);
    // Fault counts start again too.
    auto once = openai_body("fox #fail=500*1");
    CHECK(raw_request(sim.port(), "POST", kOpenai, once).status == 500);
    CHECK(raw_request(sim.port(), "POST", kOpenai, once).status == 200);
    raw_request(sim.port(), "POST", "/sim/reset");
    CHECK(raw_request(sim.port(), "POST", kOpenai, once).status == 500);
}

TEST_CASE("sim: requests over the rate limit get 429 with Retry-After") {
    SimOptions opt;
    opt.requests_per_minute = 6;  // one permit per 10 s, burst 1
    SimThread sim(opt);
    CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("fox")).status == 200);
    Raw limited = raw_request(sim.port(), "POST", kOpenai, openai_body("fox"));
    REQUIRE(limited.status == 429);
    CHECK(json_of(limited).at("error").at("code").as_string() == "rate_limit_exceeded");
    auto ra = limited.head.find("Retry-After: ");
    REQUIRE(ra != std::string::npos);
    CHECK(std::stoi(limited.head.substr(ra + 13)) >= 1);
    auto ms = limited.head.find("retry-after-ms: ");
    REQUIRE(ms != std::string::npos);
    CHECK(std::stol(limited.head.substr(ms + 16)) > 0);
    CHECK(stat(sim.port(), "rate_limited") == 1);
    CHECK(json_of(raw_request(sim.port(), "GET", "/sim/stats"))
              .at("by_status")
              .at("429")
              .as_int64() == 1);
}

TEST_CASE("sim: api_key requires the right Bearer or x-goog-api-key") {
    SimOptions opt;
    opt.api_key = "sk-test";
    SimThread sim(opt);
    CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("fox")).status == 401);
    CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("fox"),
                      "Authorization: Bearer wrong\r\n")
              .status == 401);
    CHECK(raw_request(sim.port(), "POST", kOpenai, openai_body("fox"),
                      "Authorization: Bearer sk-test\r\n")
              .status == 200);
    CHECK(
        raw_request(sim.port(), "POST", kGoogle, google_body("cat"), "x-goog-api-key: sk-test\r\n")
            .status == 200);
}

TEST_CASE("sim: fault_rate 1 gives every image request a fault") {
    SimOptions opt;
    opt.fault_rate = 1;
    SimThread sim(opt);
    for (int i = 0; i < 10; ++i) {
        Raw r = raw_request(sim.port(), "POST", kOpenai, openai_body("fox"));
        bool fault = r.status == 0 || r.status >= 429 || r.body == R"({"data": [ not json)";
        CHECK(fault);
    }
    CHECK(stat(sim.port(), "images") == 0);
}

TEST_CASE("sim: #chatshape answers the images endpoint like chat completions") {
    CHECK(parse_directives("a fox #chatshape").chatshape);
    CHECK_FALSE(parse_directives("a fox #chatshapes").chatshape);
    SimThread sim;
    Raw r = raw_request(sim.port(), "POST", kOpenai, openai_body("two dogs #chatshape", 2));
    REQUIRE(r.status == 200);
    auto o = json_of(r);
    CHECK_FALSE(o.contains("data"));
    CHECK(o.at("object").as_string() == "chat.completion");
    std::string content(o.at("choices").at(0).at("message").at("content").as_string());
    std::string base = "http://127.0.0.1:" + std::to_string(sim.port()) + "/sim/files/";
    CHECK(content.find("![image 1](" + base) != std::string::npos);
    CHECK(content.find("![image 2](" + base) != std::string::npos);
    CHECK(content.find("[Download](" + base) != std::string::npos);
    CHECK(o.at("usage").as_object().contains("prompt_tokens"));

    Raw inline_r =
        raw_request(sim.port(), "POST", kOpenai, openai_body("two dogs #chatshape #datauri", 2));
    std::string inline_content(
        json_of(inline_r).at("choices").at(0).at("message").at("content").as_string());
    auto data = inline_content.find("](data:image/png;base64,");
    REQUIRE(data != std::string::npos);
    CHECK(inline_content.find("](data:image/png;base64,", data + 1) != std::string::npos);
    auto start = data + 24;
    check_png(inline_content.substr(start, inline_content.find(')', start) - start), 64);
}

TEST_CASE("sim: token_uses expires each token after N calls, and calls without one") {
    SimOptions opt;
    opt.token_uses = 2;
    SimThread sim(opt);
    auto call = [&](const std::string& header) {
        return raw_request(sim.port(), "POST", kOpenai, openai_body("fox"), header).status;
    };
    CHECK(call("") == 401);
    CHECK(call("Authorization: Bearer t1\r\n") == 200);
    CHECK(call("Authorization: Bearer t1\r\n") == 200);
    Raw expired = raw_request(sim.port(), "POST", kOpenai, openai_body("fox"),
                              "Authorization: Bearer t1\r\n");
    CHECK(expired.status == 401);
    CHECK(expired.body.find("t1") == std::string::npos);  // the token is not echoed
    CHECK(call("Authorization: Bearer t2\r\n") == 200);
    CHECK(call("Authorization: Bearer t1\r\n") == 401);  // expired stays expired
    // x-goog-api-key counts for the Google styles.
    CHECK(raw_request(sim.port(), "POST", kGoogle, google_body("cat"), "x-goog-api-key: g1\r\n")
              .status == 200);
    CHECK(stat(sim.port(), "tokens") == 3);
    CHECK(stat(sim.port(), "tokens_expired") == 3);
}
