// Store::export_images (one record per image with its producing attempt) and export rows
// read back as job files (JSONL and CSV), with --model/--provider replacing the row's.
#include <doctest/doctest.h>

#include <boost/json/serialize.hpp>

#include "jobs/job_file.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

TEST_CASE("export_images: one record per image, in job and index order, with its attempt") {
    Store s(":memory:");
    s.enqueue("b1", {item("a", 3, 2, "ka"), item("b", 1, 1, "kb")});
    s.enqueue("b2", {item("c", 1, 1)});
    auto c = s.claim("p1", "o", 4, 100, 1e12);  // a#0 (2 images), a#1, b, c
    REQUIRE(c.size() == 4);
    std::vector<Completion> v{completion(c[0], "o", 2), completion(c[1], "o", 1),
                              completion(c[3], "o", 1)};
    v[1].started_at = 2000;
    v[1].finished_at = 2003;
    s.apply(v);

    std::vector<ImageRecord> all;
    s.export_images(std::nullopt, [&](const ImageRecord& r) { all.push_back(r); });
    REQUIRE(all.size() == 4);
    CHECK(all[0].job.key == "ka");
    CHECK(all[0].image.idx == 0);
    CHECK(all[1].image.idx == 1);
    CHECK(all[2].image.idx == 2);
    CHECK(all[3].job.batch == "b2");
    CHECK(all[0].provider == "p1");
    CHECK(all[0].started_at == 1000);
    CHECK(all[0].duration_ms >= 0);
    CHECK(all[2].started_at == 2000);  // the second request's attempt
    CHECK(all[0].attempt_no == 1);
    CHECK(all[0].recorded_at > 0);

    std::vector<ImageRecord> b1;
    s.export_images(std::string("b1"), [&](const ImageRecord& r) { b1.push_back(r); });
    CHECK(b1.size() == 3);
    std::size_t none = 0;
    s.export_images(std::string("nope"), [&](const ImageRecord&) { ++none; });
    CHECK(none == 0);
}

TEST_CASE("export rows read back: a new job each, key kept in metadata.rerun_of") {
    JobDefaults d;
    auto f = parse_job_file(
        R"({"id": 7, "key": "fox", "batch": "night", "state": "failed", "prompt": "a fox", "model": "gpt-image-2", "provider": "oa", "n": 3, "params": {"size": "1024x1024"}, "priority": 2, "images_done": 1, "images": [], "attempts": 4, "last_error": null, "metadata": {"sku": 1}, "usage": null}
{"job": 8, "key": null, "batch": "night", "state": "succeeded", "idx": 4, "path": "/x.png", "prompt": "an owl", "model": "dall-e-3", "provider": "oa", "params": {}, "width": 64}
)",
        "e.jsonl", FileFormat::jsonl, d);
    REQUIRE(f.errors.empty());
    REQUIRE(f.jobs.size() == 2);
    const auto& a = f.jobs[0];
    CHECK(a.key.empty());
    CHECK(a.prompt == "a fox");
    CHECK(a.model == "gpt-image-2");
    CHECK(a.provider == "oa");
    CHECK(a.n == 3);
    CHECK(a.priority == 2);
    CHECK(a.params.at("size") == "1024x1024");
    CHECK(a.metadata.at("sku") == 1);
    CHECK(boost::json::serialize(a.metadata.at("rerun_of")) ==
          R"({"job":7,"key":"fox","batch":"night"})");
    const auto& b = f.jobs[1];
    CHECK(b.n == 1);  // one image again
    CHECK(boost::json::serialize(b.metadata.at("rerun_of")) ==
          R"({"job":8,"batch":"night","idx":4})");

    // Another model: the row's provider is dropped (chosen again); a provider replaces it.
    JobDefaults other;
    other.model = "imagen-4.0-generate-001";
    auto g = parse_job_file(
        R"({"id": 7, "state": "failed", "prompt": "a fox", "model": "gpt-image-2", "provider": "oa"})",
        "e.jsonl", FileFormat::jsonl, other);
    REQUIRE(g.jobs.size() == 1);
    CHECK(g.jobs[0].model == "imagen-4.0-generate-001");
    CHECK(g.jobs[0].provider.empty());
    other.provider = "relay";
    g = parse_job_file(R"({"id": 7, "state": "failed", "prompt": "a fox", "model": "m"})",
                       "e.jsonl", FileFormat::jsonl, other);
    CHECK(g.jobs[0].provider == "relay");

    // A row without a prompt is an error like any line's.
    g = parse_job_file(R"({"id": 7, "state": "failed", "model": "m"})", "e.jsonl",
                       FileFormat::jsonl, d);
    REQUIRE(g.errors.size() == 1);
    CHECK(g.errors[0].reason.find("prompt") != std::string::npos);
}

TEST_CASE("export CSV read back: per-parameter columns ignored, params and numbers parsed") {
    JobDefaults d;
    auto f = parse_job_file(
        "job,key,batch,state,idx,path,prompt,model,provider,size,quality,params,width,metadata\r\n"
        "3,k,b,succeeded,2,/o/k-2.png,\"a \"\"red\"\" fox\",gpt-image-2,oa,1024x1024,low,"
        "\"{\"\"size\"\":\"\"1024x1024\"\",\"\"quality\"\":\"\"low\"\"}\",64,\r\n"
        "3,k,b,succeeded,3,/o/k-3.png,a fox,gpt-image-2,oa,,,notjson,64,\r\n",
        "e.csv", FileFormat::csv, d);
    REQUIRE(f.jobs.size() == 1);
    const auto& a = f.jobs[0];
    CHECK(a.prompt == "a \"red\" fox");
    CHECK(a.n == 1);
    CHECK(a.params.size() == 2);
    CHECK(a.params.at("quality") == "low");
    CHECK(boost::json::serialize(a.metadata.at("rerun_of")) ==
          R"({"job":3,"key":"k","batch":"b","idx":2})");
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].line == 3);
    CHECK(f.errors[0].reason.find("params") != std::string::npos);
}
