// OpenAI Batch and Files requests and answers, without a socket.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "daemon/providers/openai_batch.hpp"

using namespace imgbatch::daemon;
namespace ob = imgbatch::daemon::openai_batch;
namespace json = boost::json;

namespace {

ProviderConfig provider() {
    ProviderConfig p;
    p.name = "openai";
    p.api = "openai";
    p.base_url = "https://api.openai.com/v1/";
    return p;
}

HttpResponse ok(std::string body) {
    return {200, {{"Content-Type", "application/json"}}, std::move(body)};
}

}  // namespace

TEST_CASE("an input line carries the custom_id, the endpoint and the direct call's body") {
    GenerationRequest g{"gpt-image-2", "a fox", 2, {{"size", "1024x1024"}}};
    std::string endpoint;
    std::string line =
        ob::input_line("r7-a1", *find_provider_api("openai"), g, provider(), &endpoint);
    REQUIRE(line.ends_with("\n"));
    CHECK(endpoint == "/v1/images/generations");
    auto v = json::parse(line).as_object();
    CHECK(v.at("custom_id") == "r7-a1");
    CHECK(v.at("method") == "POST");
    CHECK(v.at("url") == "/v1/images/generations");
    auto body = v.at("body").as_object();
    CHECK(body.at("model") == "gpt-image-2");
    CHECK(body.at("prompt") == "a fox");
    CHECK(body.at("n") == 2);
    CHECK(body.at("size") == "1024x1024");
}

TEST_CASE("upload is multipart with purpose=batch; create names the database and chunk") {
    HttpRequest up = ob::upload(provider(), "KEY", "c-1.jsonl", "{\"a\":1}\n");
    CHECK(up.url == "https://api.openai.com/v1/files");
    CHECK(find_header(up.headers, "Authorization") == "Bearer KEY");
    auto ct = std::string(find_header(up.headers, "Content-Type"));
    REQUIRE(ct.starts_with("multipart/form-data; boundary="));
    const std::string boundary = ct.substr(ct.find('=') + 1);
    CHECK(up.body.starts_with("--" + boundary + "\r\n"));
    CHECK(up.body.find("name=\"purpose\"\r\n\r\nbatch\r\n") != std::string::npos);
    CHECK(up.body.find("filename=\"c-1.jsonl\"") != std::string::npos);
    CHECK(up.body.ends_with("{\"a\":1}\n\r\n--" + boundary + "--\r\n"));

    HttpRequest cr =
        ob::create(provider(), "KEY", "file-1", "/v1/images/generations", "abcd", "abcd-3");
    CHECK(cr.url == "https://api.openai.com/v1/batches");
    auto b = json::parse(cr.body).as_object();
    CHECK(b.at("input_file_id") == "file-1");
    CHECK(b.at("endpoint") == "/v1/images/generations");
    CHECK(b.at("completion_window") == "24h");
    CHECK(b.at("metadata").at("imgbatch_db") == "abcd");
    CHECK(b.at("metadata").at("imgbatch_chunk") == "abcd-3");
    CHECK(ob::list(provider(), "", "batch_9", 100).url ==
          "https://api.openai.com/v1/batches?limit=100&after=batch_9");
    CHECK(ob::cancel(provider(), "", "batch_9").url ==
          "https://api.openai.com/v1/batches/batch_9/cancel");
    CHECK(ob::file_content(provider(), "", "file-2").url ==
          "https://api.openai.com/v1/files/file-2/content");
    CHECK(ob::get(provider(), "", "batch_9").method == "GET");
}

TEST_CASE("a Batch object: status, counts, files, metadata and the lines its errors name") {
    std::optional<imgbatch::jobs::Error> err;
    auto b = ob::parse_batch(
        ok(R"({"id":"batch_1","object":"batch","status":"failed","input_file_id":"file-1",
              "output_file_id":null,"error_file_id":"file-3","created_at":1711471533,
              "request_counts":{"total":3,"completed":1,"failed":2},
              "metadata":{"imgbatch_db":"abcd","imgbatch_chunk":"abcd-3"},
              "errors":{"object":"list","data":[{"code":"invalid_json_line",
                        "message":"bad line","param":null,"line":2}]}})"),
        err);
    REQUIRE(b);
    CHECK_FALSE(err);
    CHECK(b->status == "failed");
    CHECK(b->output_file_id.empty());
    CHECK(b->error_file_id == "file-3");
    CHECK(b->total == 3);
    CHECK(b->completed == 1);
    CHECK(b->chunk == "abcd-3");
    CHECK(b->error == "invalid_json_line: bad line");
    CHECK(b->error_lines == std::vector<std::int64_t>{2});
    CHECK_FALSE(ob::is_open(b->status));
    CHECK(ob::is_open("finalizing"));

    auto refused = ob::parse_batch({429, {}, R"({"error":{"message":"slow down",
        "type":"requests","code":"rate_limit_exceeded"}})"},
                                   err);
    CHECK_FALSE(refused);
    REQUIRE(err);
    CHECK(err->cls == imgbatch::jobs::ErrorClass::rate_limited);

    err.reset();
    auto page = ob::parse_list(ok(R"({"object":"list","data":[{"id":"batch_2","status":
        "completed"},{"id":"batch_1","status":"expired"}],"first_id":"batch_2",
        "last_id":"batch_1","has_more":true})"),
                               err);
    REQUIRE(page);
    CHECK(page->batches.size() == 2);
    CHECK(page->has_more);
    CHECK(page->last_id == "batch_1");
}

TEST_CASE("output and error lines: the response as a direct answer, or the line's error") {
    std::string why;
    auto line = ob::parse_line(
        R"({"id":"batch_req_1","custom_id":"r7-a1","response":{"status_code":400,
            "request_id":"req_1","body":{"error":{"code":"moderation_blocked","message":"no"}}},
            "error":null})",
        &why);
    REQUIRE(line);
    CHECK(line->custom_id == "r7-a1");
    REQUIRE(line->response);
    CHECK(line->response->status == 400);
    CHECK(json::parse(line->response->body).at("error").at("code") == "moderation_blocked");

    auto expired = ob::parse_line(
        R"({"id":"batch_req_2","custom_id":"r8-a1","response":null,"error":{"code":
            "batch_expired","message":"This request could not be executed before the completion window expired."}})",
        &why);
    REQUIRE(expired);
    CHECK_FALSE(expired->response);
    CHECK(expired->error_code == "batch_expired");

    CHECK_FALSE(ob::parse_line("not json", &why));
    CHECK_FALSE(ob::parse_line(R"({"custom_id":"x"})", &why));
    CHECK(why == "neither response nor error");
}

TEST_CASE("a line's status_code that is no HTTP status reads as 0, never as another status") {
    // 4294967496 = 2^32 + 200: cut to an int it was a success.
    for (const char* code : {"4294967496", "-200", "42", "600", "\"200\"", "null"}) {
        INFO(code);
        std::string why;
        auto line =
            ob::parse_line(std::string(R"({"custom_id":"r1-a1","response":{"status_code":)") +
                               code + R"(,"body":{"created":1,"data":[]}}})",
                           &why);
        REQUIRE(line);
        REQUIRE(line->response);
        CHECK(line->response->status == 0);
    }
}
