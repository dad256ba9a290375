// Gemini Batch Mode and Files API requests and answers, without a socket: the REST shapes of
// the Gemini API reference (camelCase, the "batch" wrapper of the create body, Operations).
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "daemon/providers/gemini_batch.hpp"

using namespace imgbatch::daemon;
namespace gb = imgbatch::daemon::gemini_batch;
namespace json = boost::json;

namespace {

ProviderConfig provider() {
    ProviderConfig p;
    p.name = "gem";
    p.api = "gemini";
    p.base_url = "https://generativelanguage.googleapis.com/v1beta";
    p.auth = "x-goog-api-key";
    return p;
}

HttpResponse ok(std::string body) {
    return {200, {{"Content-Type", "application/json"}}, std::move(body)};
}

}  // namespace

TEST_CASE("gemini batch: input lines and inline requests carry the key and the direct body") {
    GenerationRequest g{"gemini-2.5-flash-image", "a fox", 1, {{"aspect_ratio", "16:9"}}};
    std::string line = gb::input_line("r7-a1", *find_provider_api("gemini"), g, provider());
    REQUIRE(line.ends_with("\n"));
    auto v = json::parse(line).as_object();
    CHECK(v.at("key") == "r7-a1");
    auto& req = v.at("request").as_object();
    CHECK(req.at("contents").as_array()[0].at("parts").as_array()[0].at("text") == "a fox");
    CHECK(req.at("generationConfig").at("imageConfig").at("aspectRatio") == "16:9");

    auto inl = json::parse(gb::inline_requests(line + line)).as_array();
    REQUIRE(inl.size() == 2);
    CHECK(inl[0].at("metadata").at("key") == "r7-a1");
    CHECK(inl[0].at("request") == req);
}

TEST_CASE("gemini batch: create wraps the batch with displayName and inputConfig") {
    auto inline_req = gb::create(provider(), "k", "gemini-2.5-flash-image", "db1", "db1-3",
                                 "inline:[{\"request\":{},\"metadata\":{\"key\":\"r1-a1\"}}]");
    CHECK(inline_req.url ==
          "https://generativelanguage.googleapis.com/v1beta/models/"
          "gemini-2.5-flash-image:batchGenerateContent");
    CHECK(find_header(inline_req.headers, "x-goog-api-key") == "k");
    auto b = json::parse(inline_req.body).as_object().at("batch").as_object();
    CHECK(b.at("displayName") == "imgbatch db1 db1-3");
    CHECK(
        b.at("inputConfig").at("requests").at("requests").as_array()[0].at("metadata").at("key") ==
        "r1-a1");

    auto file_req = gb::create(provider(), "k", "m", "db1", "db1-3", "files/abc");
    CHECK(json::parse(file_req.body).at("batch").at("inputConfig").at("fileName") == "files/abc");
}

TEST_CASE("gemini batch: upload, download, get, list and cancel addresses") {
    auto start = gb::upload_start(provider(), "k", "db1-3.jsonl", 1234);
    CHECK(start.url == "https://generativelanguage.googleapis.com/upload/v1beta/files");
    CHECK(find_header(start.headers, "X-Goog-Upload-Protocol") == "resumable");
    CHECK(find_header(start.headers, "X-Goog-Upload-Command") == "start");
    CHECK(find_header(start.headers, "X-Goog-Upload-Header-Content-Length") == "1234");
    CHECK(json::parse(start.body).at("file").at("displayName") == "db1-3.jsonl");

    HttpResponse answer = ok("");
    answer.headers.emplace_back("X-Goog-Upload-URL", "https://up.example/u?upload_id=9");
    std::optional<imgbatch::jobs::Error> err;
    CHECK(gb::parse_upload_start(answer, err) == "https://up.example/u?upload_id=9");
    CHECK_FALSE(err);
    auto fin = gb::upload_finish(provider(), "k", "https://up.example/u?upload_id=9", "x\n");
    CHECK(fin.url == "https://up.example/u?upload_id=9");
    CHECK(find_header(fin.headers, "X-Goog-Upload-Command") == "upload, finalize");
    CHECK(find_header(fin.headers, "X-Goog-Upload-Offset") == "0");
    CHECK(gb::parse_file(ok(R"({"file":{"name":"files/abc","state":"ACTIVE"}})"), err) ==
          "files/abc");

    CHECK(gb::download(provider(), "k", "files/batch-1").url ==
          "https://generativelanguage.googleapis.com/download/v1beta/files/"
          "batch-1:download?alt=media");
    CHECK(gb::get(provider(), "k", "batches/7").url ==
          "https://generativelanguage.googleapis.com/v1beta/batches/7");
    CHECK(gb::get(provider(), "k", "batches/7").method == "GET");
    CHECK(gb::cancel(provider(), "k", "batches/7").url ==
          "https://generativelanguage.googleapis.com/v1beta/batches/7:cancel");
    CHECK(gb::list(provider(), "k", "tok", 100).url ==
          "https://generativelanguage.googleapis.com/v1beta/batches?pageSize=100&pageToken=tok");
    // A relay's prefix before the version stays in front of upload/download.
    auto relay = provider();
    relay.base_url = "http://relay.local/gemini/v1beta/";
    CHECK(gb::upload_start(relay, "k", "f", 1).url ==
          "http://relay.local/gemini/upload/v1beta/files");
}

TEST_CASE("gemini batch: Operations read as batches, states, outputs and errors") {
    std::optional<imgbatch::jobs::Error> err;
    auto pending = gb::parse_batch(ok(R"({"name": "batches/123", "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
        "model": "models/gemini-2.5-flash-image", "displayName": "imgbatch db1 db1-3",
        "createTime": "2026-11-21T10:00:00.123456Z", "state": "BATCH_STATE_PENDING",
        "batchStats": {"requestCount": "5", "pendingRequestCount": "5"}}})"),
                                   err);
    REQUIRE(pending);
    CHECK(pending->id == "batches/123");
    CHECK(pending->status == "BATCH_STATE_PENDING");
    CHECK(pending->database == "db1");
    CHECK(pending->chunk == "db1-3");
    CHECK(pending->total == 5);
    CHECK(pending->created_at == 1795255200);
    CHECK(gb::is_open(pending->status));
    CHECK(pending->output_file_id.empty());

    auto file_done = gb::parse_batch(ok(R"({"name": "batches/123", "done": true, "metadata": {
        "state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/batch-9"},
        "batchStats": {"requestCount": "5", "successfulRequestCount": "4",
                       "failedRequestCount": "1"}}})"),
                                     err);
    REQUIRE(file_done);
    CHECK_FALSE(gb::is_open(file_done->status));
    CHECK(file_done->output_file_id == "files/batch-9");
    CHECK(file_done->completed == 4);
    CHECK(file_done->failed == 1);

    const std::string inline_op = R"({"name": "batches/5", "done": true, "metadata": {
        "state": "JOB_STATE_SUCCEEDED", "output": {"inlinedResponses": {"inlinedResponses": [
          {"response": {"candidates": []}, "metadata": {"key": "r1-a1"}},
          {"error": {"code": 8, "message": "busy"}, "metadata": {"key": "r2-a1"}}]}}}})";
    auto inl = gb::parse_batch(ok(inline_op), err);
    REQUIRE(inl);
    CHECK(inl->output_file_id == gb::kInlineResults);
    const std::string lines = gb::inline_lines(inline_op);
    auto nl = lines.find('\n');
    auto first = gb::parse_line(lines.substr(0, nl), nullptr);
    REQUIRE(first);
    CHECK(first->custom_id == "r1-a1");
    CHECK(first->response->status == 200);
    auto second = gb::parse_line(lines.substr(nl + 1, lines.find('\n', nl + 1) - nl - 1), nullptr);
    REQUIRE(second);
    CHECK(second->custom_id == "r2-a1");
    // RESOURCE_EXHAUSTED is the 429 a direct call would have had.
    CHECK(second->response->status == 429);
    CHECK(error_from_response(*second->response).cls == imgbatch::jobs::ErrorClass::rate_limited);

    auto failed = gb::parse_batch(ok(R"({"name": "batches/6", "done": true,
        "metadata": {"state": "BATCH_STATE_FAILED"},
        "error": {"code": 3, "message": "bad input"}})"),
                                  err);
    REQUIRE(failed);
    CHECK(gb::is_failed(failed->status));
    CHECK(failed->error == "3: bad input");
    CHECK(gb::is_expired("BATCH_STATE_EXPIRED"));

    auto page = gb::parse_list(
        ok(R"({"operations": [{"name": "batches/1", "metadata": {"state": "BATCH_STATE_RUNNING"}}],
               "nextPageToken": "p2"})"),
        err);
    REQUIRE(page);
    CHECK(page->batches.size() == 1);
    CHECK(page->has_more);
    CHECK(page->last_id == "p2");

    std::string why;
    CHECK_FALSE(gb::parse_line(R"({"response": {}})", &why));
    CHECK(why == "no key");
}
