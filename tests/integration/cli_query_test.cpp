// `imgbatch status`, `jobs`, `show` and `export` through the real binary, on a database whose
// progress is written with plain SQL (as a daemon would have left it).
#include <doctest/doctest.h>

#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {

// Three jobs in batch "q": job 1 succeeded with two images, job 2 failed after a server
// error, job 3 still queued; plus batch "other" with one queued job.
struct Progress {
    TempDir dir;
    std::string db = dir.file("t.db");
    Progress() {
        write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "providers": [
            {"name": "oa", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
             "models": ["gpt-image-2", "dall-e-3"]},
            {"name": "idle", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
             "models": ["dall-e-3"]}]})");
        write_file(dir.file("q.jsonl"),
                   R"({"prompt": "two cats", "model": "gpt-image-2", "n": 2, "key": "a"}
{"prompt": "a dog", "model": "dall-e-3", "key": "b"}
{"prompt": "say \"hi\", twice", "model": "dall-e-3", "metadata": {"row": 3}}
)");
        write_file(dir.file("o.txt"), "other prompt\n");
        REQUIRE((*this)({"enqueue", "q.jsonl", "--batch", "q"}).code == 0);
        REQUIRE((*this)({"enqueue", "o.txt", "--batch", "other", "--model", "dall-e-3"}).code == 0);
        sql_exec(db, R"(
            UPDATE jobs SET state = 'succeeded', images_done = 2, finished_at = 1 WHERE id = 1;
            UPDATE requests SET state = 'succeeded', images_done = 2, attempts = 1 WHERE job_id = 1;
            INSERT INTO attempts(request_id, job_id, attempt_no, provider, started_at,
                                 finished_at, duration_ms, outcome, images)
              SELECT id, 1, 1, 'oa', 100, 101.5, 1500, 'ok', 2 FROM requests WHERE job_id = 1;
            INSERT INTO outputs(job_id, request_id, idx, path, bytes, sha256, mime, width, height)
              SELECT 1, id, 0, 'out/q/a-0.png', 1234, 'aa11', 'image/png', 64, 48
              FROM requests WHERE job_id = 1;
            INSERT INTO outputs(job_id, request_id, idx, path, bytes, sha256, mime, width, height)
              SELECT 1, id, 1, 'out/q/a-1.png', 2345, 'bb22', 'image/png', 64, 48
              FROM requests WHERE job_id = 1;
            UPDATE jobs SET state = 'failed', error = 'server: boom', finished_at = 1 WHERE id = 2;
            UPDATE requests SET state = 'failed', attempts = 1 WHERE job_id = 2;
            INSERT INTO attempts(request_id, job_id, attempt_no, provider, started_at,
                                 finished_at, duration_ms, outcome, images, error_class,
                                 error_code, http_status, message)
              SELECT id, 2, 1, 'oa', 100, 100.2, 200, 'error', 0, 'server', 'boom', 500,
                     'upstream "bad", really'
              FROM requests WHERE job_id = 2;
        )");
    }
    RunResult operator()(const std::vector<std::string>& args) const {
        return run(args, "", {}, dir.path());
    }
};

}  // namespace

TEST_CASE("status: counts, images, providers, throughput and ETA, as text and JSON") {
    Progress p;
    auto r = p({"status", "--batch", "q", "--json"});
    REQUIRE(r.code == 0);
    auto s = json::parse(r.out).as_object();
    CHECK(s.at("batch") == "q");
    CHECK(s.at("jobs") == 3);
    CHECK(s.at("by_state").at("succeeded") == 1);
    CHECK(s.at("by_state").at("failed") == 1);
    CHECK(s.at("by_state").at("queued") == 1);
    CHECK(s.at("by_state").at("pending") == 0);
    CHECK(s.at("images_done") == 2);
    CHECK(s.at("images_wanted") == 4);
    // Two images in the last five minutes: 0.4 a minute; one image left: 150 s.
    CHECK(s.at("images_per_min").to_number<double>() == doctest::Approx(0.4));
    CHECK(s.at("rate_window_s").to_number<double>() == doctest::Approx(300));
    CHECK(s.at("eta_s") == 150);
    auto providers = s.at("providers").as_array();
    REQUIRE(providers.size() == 2);
    CHECK(providers[0].at("name") == "oa");
    CHECK(providers[0].at("queued") == 1);
    CHECK(providers[0].at("in_flight") == 0);
    CHECK(providers[0].at("images_last_min") == 2);
    CHECK(providers[0].at("paused") == false);
    CHECK(providers[1].at("name") == "idle");

    r = p({"status"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "jobs: 4 (queued 2, succeeded 1, failed 1)"));
    CHECK(has(r.out, "images: 2/5 done"));
    CHECK(has(r.out, "throughput: 0.4 images/min (last 5m00s), ETA 5m00s"));
    CHECK(has(r.out, "PROVIDER"));
    // The batches not final, with the rate and ETA since each started (no daemon: no ETA).
    CHECK(has(r.out,
              "progress: q 75.0% 2/4 images, jobs 3: succeeded 1, failed 1, blocked 0, "
              "retrying 0, queued 1, ETA - (no daemon alive), elapsed "));
    CHECK(has(r.out, "progress: other 0.0% 0/1 images"));

    CHECK(p({"status", "--batch", "nope"}).code == 1);
}

TEST_CASE("status --watch redraws until SIGTERM, then exits 0") {
    Progress p;
    Process watch({"status", "--watch", "--interval", "0.2", "--json"}, {}, p.dir.path());
    // Wait (generously) for two snapshots: one JSON object per line.
    auto lines = [&] {
        std::string text = watch.out();
        return std::count(text.begin(), text.end(), '\n');
    };
    for (int i = 0; i < 3000 && lines() < 2; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::string out = watch.out();
    REQUIRE(std::count(out.begin(), out.end(), '\n') >= 2);
    CHECK(json::parse(out.substr(0, out.find('\n'))).at("jobs") == 4);
    watch.signal(SIGTERM);
    CHECK(watch.wait(30) == std::optional<int>(0));
}

TEST_CASE("a row inserted with plain SQL shows as pending") {
    Progress p;
    sql_exec(p.db, "INSERT INTO jobs(prompt, model, n) VALUES ('from sql', 'gpt-image-2', 3)");
    auto r = p({"status", "--json"});
    auto s = json::parse(r.out).as_object();
    CHECK(s.at("by_state").at("pending") == 1);
    CHECK(s.at("jobs") == 5);
    CHECK(has(p({"status"}).out, "pending 1"));
    r = p({"jobs", "--state", "pending"});
    CHECK(has(r.out, "pending"));
    CHECK(has(r.out, "from sql"));
}

TEST_CASE("jobs: one line per job, filters, JSON") {
    Progress p;
    auto r = p({"jobs"});
    CHECK(r.code == 0);
    auto lines = std::count(r.out.begin(), r.out.end(), '\n');
    CHECK(lines == 5);  // header + 4 jobs
    CHECK(r.out.rfind("ID  STATE", 0) == 0);
    CHECK(has(r.out, "1   succeeded  2/2     gpt-image-2  oa        a    two cats"));

    r = p({"jobs", "--batch", "q", "--state", "failed"});
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
    CHECK(has(r.out, "a dog"));

    r = p({"jobs", "--limit", "2", "--json"});
    auto arr = json::parse(r.out).as_array();
    REQUIRE(arr.size() == 2);
    CHECK(arr[0].at("id") == 1);
    CHECK(arr[0].at("key") == "a");
    CHECK(arr[1].at("state") == "failed");

    CHECK(p({"jobs", "--state", "bogus"}).code == 2);
}

TEST_CASE("show: a job with its requests, attempts and outputs") {
    Progress p;
    auto r = p({"show", "1"});
    CHECK(r.code == 0);
    CHECK(r.out.rfind("job 1: succeeded\n", 0) == 0);
    CHECK(has(r.out, "out/q/a-1.png"));
    CHECK(has(r.out, "64x48"));
    CHECK(has(r.out, "1500"));  // attempt ms

    r = p({"show", "2", "--json"});
    auto o = json::parse(r.out).as_object();
    CHECK(o.at("state") == "failed");
    CHECK(o.at("attempts") == 1);
    REQUIRE(o.at("attempt_log").as_array().size() == 1);
    auto a = o.at("attempt_log").as_array()[0].as_object();
    CHECK(a.at("error") == json::parse(R"({"class": "server", "code": "boom", "http_status": 500,
                                           "message": "upstream \"bad\", really"})"));
    CHECK(a.at("started_at") == "1970-01-01T00:01:40.000Z");
    CHECK(a.at("duration_ms") == 200);
    CHECK(o.at("last_error") == a.at("error"));
    CHECK(o.at("requests").as_array().size() == 1);

    r = p({"show", "99"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "no job 99"));
}

TEST_CASE("export: JSON lines and CSV with every field") {
    Progress p;
    auto r = p({"export", "--batch", "q"});
    CHECK(r.code == 0);
    std::vector<json::object> recs;
    std::size_t start = 0;
    for (auto end = r.out.find('\n'); end != std::string::npos; end = r.out.find('\n', start)) {
        recs.push_back(json::parse(r.out.substr(start, end - start)).as_object());
        start = end + 1;
    }
    REQUIRE(recs.size() == 3);
    const auto& a = recs[0];
    CHECK(a.at("id") == 1);
    CHECK(a.at("key") == "a");
    CHECK(a.at("batch") == "q");
    CHECK(a.at("state") == "succeeded");
    CHECK(a.at("prompt") == "two cats");
    CHECK(a.at("model") == "gpt-image-2");
    CHECK(a.at("provider") == "oa");
    CHECK(a.at("n") == 2);
    CHECK(a.at("images_done") == 2);
    CHECK(a.at("attempts") == 1);
    CHECK(a.at("last_error").is_null());
    CHECK(a.at("metadata").is_null());
    REQUIRE(a.at("images").as_array().size() == 2);
    // Paths are absolute (recorded relative to the working directory).
    CHECK(a.at("images").as_array()[1] ==
          json::parse(R"({"path": ")" + p.dir.file("out/q/a-1.png") +
                      R"(", "sha256": "bb22", "bytes": 2345, "mime": "image/png"})"));
    CHECK(recs[1].at("last_error") ==
          json::parse(R"({"class": "server", "code": "boom", "http_status": 500,
                          "message": "upstream \"bad\", really"})"));
    CHECK(recs[2].at("metadata") == json::parse(R"({"row": 3})"));
    CHECK(recs[2].at("key").is_null());

    r = p({"export", "--batch", "q", "--format", "csv", "-o", "q.csv", "--relative-to", "."});
    CHECK(r.code == 0);
    CHECK(r.out == "");
    std::string csv = read_file(p.dir.file("q.csv"));
    // A column per generation parameter (none given here), params, priority and times.
    CHECK(csv.rfind("id,key,batch,state,prompt,model,provider,n,size,aspect_ratio,quality,"
                    "style,background,moderation,output_format,output_compression,image_size,"
                    "person_generation,params,priority,created_at,finished_at,images_done,"
                    "images,attempts,last_error_class,last_error_code,last_error_http_status,"
                    "last_error_message,metadata,usage,cost_usd\r\n",
                    0) == 0);
    CHECK(has(csv, "1,a,q,succeeded,two cats,gpt-image-2,oa,2,,,,,,,,,,,,0,"));
    // cost_usd empty: attempts inserted by SQL, billing unknown.
    CHECK(has(csv, ",2,out/q/a-0.png;out/q/a-1.png,1,,,,,,,\r\n"));
    CHECK(has(csv, "2,b,q,failed,a dog,dall-e-3,oa,1,,,,,,,,,,,,0,"));
    CHECK(has(csv, ",0,,1,server,boom,500,\"upstream \"\"bad\"\", really\",,,\r\n"));
    CHECK(has(csv, ",\"say \"\"hi\"\", twice\",dall-e-3,"));
    CHECK(has(csv, ",\"{\"\"row\"\":3}\",,0\r\n"));  // no attempt yet: cost 0

    CHECK(p({"export", "--batch", "nope"}).code == 1);
    CHECK(p({"export", "--format", "xml"}).code == 2);
}
