// `export --per-image` (JSON lines and CSV), the parameters in the job export, and export
// files fed back to `enqueue` to run their jobs again, through the real binary and the sim.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::vector<json::object> json_lines(const std::string& text) {
    std::vector<json::object> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) out.push_back(json::parse(line).as_object());
    return out;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

std::string str(const json::value& v) {
    return v.is_string() ? std::string(v.get_string()) : std::string();
}

// Two keyed jobs (one fails once with an invalid request) and one without a key, run.
void run_batch(const DaemonEnv& env) {
    env.enqueue(job_line("fox", "a red fox", "gpt-image-2", 2,
                         R"("size": "1024x1536", "quality": "low", "metadata": {"shot": 7})") +
                    job_line("bad", "a broken fox #fail=invalid*1", "gpt-image-2", 1) +
                    R"({"prompt": "a keyless owl", "model": "gpt-image-2"})" + "\n",
                "night");
    env.run_until_idle();
    REQUIRE(env.job_state("fox") == "succeeded");
    REQUIRE(env.job_state("bad") == "failed");
}

}  // namespace

TEST_CASE("export --per-image: one row per image with parameters, file facts and times") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)});
    run_batch(env);

    auto r = env.cli({"export", "--batch", "night", "--per-image"});
    REQUIRE(r.code == 0);
    auto rows = json_lines(r.out);
    REQUIRE(rows.size() == 3);  // fox 0, fox 1, the owl; the failed job has no image
    CHECK(rows[0].at("key") == "fox");
    CHECK(rows[0].at("idx") == 0);
    CHECK(rows[1].at("idx") == 1);
    CHECK(rows[2].at("key").is_null());
    for (const auto& row : rows) {
        INFO(json::serialize(row));
        std::string path = str(row.at("path"));
        CHECK(fs::path(path).is_absolute());
        REQUIRE(fs::exists(path));
        CHECK(sha256_file(path) == str(row.at("sha256")));
        CHECK(row.at("bytes").to_number<std::int64_t>() ==
              static_cast<std::int64_t>(fs::file_size(path)));
        CHECK(row.at("width") == 64);  // the sim's images
        CHECK(row.at("height") == 64);
        CHECK(row.at("provider") == "oa");
        CHECK(row.at("model") == "gpt-image-2");
        CHECK(row.at("batch") == "night");
        CHECK(row.at("mime") == "image/png");
        CHECK(row.at("job").to_number<std::int64_t>() > 0);
        CHECK(str(row.at("created_at")).ends_with("Z"));
        CHECK(str(row.at("started_at")) >= str(row.at("created_at")));
        CHECK(str(row.at("finished_at")) >= str(row.at("started_at")));
        CHECK(row.at("duration_ms").to_number<std::int64_t>() >= 0);
    }
    CHECK(rows[0].at("prompt") == "a red fox");
    CHECK(rows[0].at("params").at("size") == "1024x1536");
    CHECK(rows[0].at("params").at("quality") == "low");
    CHECK(rows[0].at("metadata").at("shot") == 7);

    // Relative to the output directory: "<batch>/<file>".
    r = env.cli({"export", "--batch", "night", "--per-image", "--relative-to", env.out});
    REQUIRE(r.code == 0);
    rows = json_lines(r.out);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].at("path") == "night/fox-0.png");
    CHECK(rows[1].at("path") == "night/fox-1.png");

    // CSV: a column per generation parameter, one record per image.
    r = env.cli({"export", "--batch", "night", "--per-image", "--format", "csv", "-o",
                 env.dir.file("images.csv")});
    REQUIRE(r.code == 0);
    auto csv = lines_of(read_file(env.dir.file("images.csv")));
    REQUIRE(csv.size() == 4);
    CHECK(csv[0].starts_with("job,key,batch,state,idx,path,prompt,model,provider,size,"));
    CHECK(csv[0].find(",quality,") != std::string::npos);
    CHECK(csv[0].find(",width,height,bytes,sha256,mime,revised_prompt,created_at,started_at,"
                      "finished_at,duration_ms,metadata") != std::string::npos);
    CHECK(csv[1].find(",fox,night,succeeded,0,") != std::string::npos);
    CHECK(csv[1].find(",1024x1536,") != std::string::npos);

    // The job export carries the parameters and the times too.
    r = env.cli({"export", "--batch", "night"});
    REQUIRE(r.code == 0);
    auto jobs = json_lines(r.out);
    REQUIRE(jobs.size() == 3);
    CHECK(jobs[0].at("params").at("quality") == "low");
    CHECK(str(jobs[0].at("finished_at")).ends_with("Z"));
}

TEST_CASE("export fed back to enqueue: failed rows run again, with another model if asked") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)});
    run_batch(env);

    // The failed rows of the job export.
    auto r = env.cli({"export", "--batch", "night"});
    REQUIRE(r.code == 0);
    std::string failed;
    for (const auto& line : lines_of(r.out))
        if (line.find(R"("state":"failed")") != std::string::npos) failed += line + "\n";
    REQUIRE(!failed.empty());
    write_file(env.dir.file("failed.jsonl"), failed);
    r = env.cli({"enqueue", env.dir.file("failed.jsonl"), "--batch", "again"});
    INFO(r.err);
    REQUIRE(r.code == 0);
    std::string bad_id = env.job_id("bad");
    CHECK(env.value("SELECT count(*) FROM jobs j JOIN batches b ON b.id = j.batch_id "
                    "WHERE b.name = 'again'") == "1");
    CHECK(env.value("SELECT json_extract(metadata, '$.rerun_of.job') || '|' || "
                    "json_extract(metadata, '$.rerun_of.key') || '|' || prompt || '|' || model "
                    "FROM jobs WHERE batch_id = (SELECT id FROM batches WHERE name = 'again')") ==
          bad_id + "|bad|a broken fox #fail=invalid*1|gpt-image-2");

    // The whole CSV job export, with another model.
    r = env.cli({"export", "--batch", "night", "--format", "csv", "-o", env.dir.file("jobs.csv")});
    REQUIRE(r.code == 0);
    r = env.cli({"enqueue", env.dir.file("jobs.csv"), "--batch", "remodel", "--model", "dall-e-3"});
    INFO(r.err);
    // fox asks size 1024x1536 and quality "low", which dall-e-3 does not take: that row is
    // rejected, the others go.
    CHECK(env.value("SELECT group_concat(model || ':' || n || ':' || "
                    "coalesce(json_extract(metadata, '$.rerun_of.key'), '-'), ',') FROM "
                    "(SELECT * FROM jobs WHERE batch_id = (SELECT id FROM batches WHERE "
                    "name = 'remodel') ORDER BY id)") == "dall-e-3:1:bad,dall-e-3:1:-");
    CHECK(r.code == 1);  // one line rejected

    // A per-image export: one job of one image per row.
    r = env.cli({"export", "--batch", "night", "--per-image", "-o", env.dir.file("img.jsonl")});
    REQUIRE(r.code == 0);
    r = env.cli({"enqueue", env.dir.file("img.jsonl"), "--batch", "images"});
    INFO(r.err);
    REQUIRE(r.code == 0);

    long long served_before = sim.stat("images");
    env.run_until_idle();
    // Every job of the three batches ran; what the sim served since is all kept.
    CHECK(env.value("SELECT group_concat(state || ':' || images_done, ',') FROM (SELECT * FROM "
                    "jobs WHERE batch_id IN (SELECT id FROM batches WHERE name IN ('again', "
                    "'remodel', 'images')) ORDER BY id)") ==
          "succeeded:1,succeeded:1,succeeded:1,succeeded:1,succeeded:1,succeeded:1");
    CHECK(sim.stat("images") - served_before ==
          env.number("SELECT count(*) FROM outputs o JOIN jobs j ON j.id = o.job_id JOIN batches "
                     "b ON b.id = j.batch_id WHERE b.name IN ('again', 'remodel', 'images')"));
    CHECK(env.value("SELECT group_concat(json_extract(metadata, '$.rerun_of.idx'), ',') FROM "
                    "(SELECT * FROM jobs WHERE batch_id = (SELECT id FROM batches WHERE name = "
                    "'images') ORDER BY id)") == "0,1,0");
    CHECK(env.value("SELECT json_extract(params, '$.size') FROM jobs WHERE batch_id = (SELECT id "
                    "FROM batches WHERE name = 'images') ORDER BY id LIMIT 1") == "1024x1536");
}
