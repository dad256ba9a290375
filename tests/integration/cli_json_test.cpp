// One JSON vocabulary across jobs, show, export, status, providers and enqueue --json: times
// as RFC 3339 UTC strings, `attempts` an integer, errors {"class", "code", "http_status",
// "message"}; and an unknown command suggests the nearest one.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <regex>
#include <string>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {

void check_time(const json::value& v, bool nullable = false) {
    INFO(json::serialize(v));
    if (nullable && v.is_null()) return;
    REQUIRE(v.is_string());
    static const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    CHECK(std::regex_match(std::string(v.as_string()), rfc3339));
}

void check_error(const json::value& v) {
    INFO(json::serialize(v));
    if (v.is_null()) return;
    REQUIRE(v.is_object());
    const auto& o = v.as_object();
    CHECK(o.size() == 4);
    CHECK(o.at("class").is_string());
    CHECK((o.at("code").is_string() || o.at("code").is_null()));
    CHECK((o.at("http_status").is_int64() || o.at("http_status").is_null()));
    CHECK(o.at("message").is_string());
}

std::vector<json::value> json_lines(const std::string& text) {
    std::vector<json::value> out;
    std::size_t start = 0;
    for (auto end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
        out.push_back(json::parse(text.substr(start, end - start)));
        start = end + 1;
    }
    return out;
}

// Batch b on a sim: "ok" succeeds with 2 images; "down" goes to a provider nobody listens on
// and fails after one attempt (a network error: no HTTP status).
struct Ran {
    Sim sim;
    DaemonEnv env{{openai_provider(sim, "oa"),
                   provider_json("down", "openai", "http://127.0.0.1:9/v1", {"dall-e-3"})},
                  fast_retry(1)};
    Ran() {
        env.enqueue(job_line("ok", "a cat", "gpt-image-2", 2) +
                        job_line("down", "a dog", "dall-e-3", 1, R"("provider": "down")"),
                    "b");
        env.run_until_idle();
        REQUIRE(env.job_state("ok") == "succeeded");
        REQUIRE(env.job_state("down") == "failed");
    }
};

}  // namespace

TEST_CASE("jobs, show and export: the same times, attempts and errors") {
    Ran r;
    auto jobs = json::parse(r.env.cli({"jobs", "--json"}).out).as_array();
    REQUIRE(jobs.size() == 2);
    for (const auto& j : jobs) {
        check_time(j.at("created_at"));
        check_time(j.at("updated_at"));
        check_time(j.at("finished_at"), true);
        CHECK(j.at("attempts").is_int64());
        check_error(j.at("last_error"));
    }
    CHECK(jobs[0].at("last_error").is_null());
    CHECK(jobs[0].at("attempts") == 1);
    CHECK(jobs[1].at("last_error").at("class") == "network");
    CHECK(jobs[1].at("last_error").at("http_status").is_null());

    auto show = json::parse(r.env.cli({"show", r.env.job_id("down"), "--json"}).out).as_object();
    CHECK(show.at("attempts") == jobs[1].at("attempts"));
    CHECK(show.at("last_error") == jobs[1].at("last_error"));
    check_time(show.at("finished_at"));
    for (const auto& req : show.at("requests").as_array()) {
        CHECK(req.at("attempts").is_int64());
        check_time(req.at("not_before"), true);
    }
    const auto& log = show.at("attempt_log").as_array();
    REQUIRE(log.size() == 1);
    check_time(log[0].at("started_at"));
    check_time(log[0].at("finished_at"));
    check_error(log[0].at("error"));
    CHECK(log[0].at("error") == jobs[1].at("last_error"));

    auto recs = json_lines(r.env.cli({"export"}).out);
    REQUIRE(recs.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(recs[i].at("attempts") == jobs[i].at("attempts"));
        CHECK(recs[i].at("last_error") == jobs[i].at("last_error"));
    }
}

TEST_CASE("status and providers: times as strings, per-batch progress") {
    Ran r;
    REQUIRE(r.env.cli({"pause", "oa", "--reason", "maintenance"}).code == 0);
    auto s = json::parse(r.env.cli({"status", "--batch", "b", "--json"}).out).as_object();
    check_time(s.at("time"));
    REQUIRE(s.at("batches").as_array().size() == 1);
    const auto& b = s.at("batches").as_array()[0].as_object();
    CHECK(b.at("name") == "b");
    CHECK(b.at("state") == "finished");
    CHECK(b.at("progress") == 1);
    CHECK(b.at("images_done") == 2);
    check_time(b.at("created_at"));
    check_time(b.at("started_at"));
    check_time(b.at("finished_at"));
    CHECK(b.at("elapsed_s").is_number());
    CHECK(b.at("eta_s").is_null());
    const auto& provs = s.at("providers").as_array();
    REQUIRE(provs.size() == 2);
    CHECK(provs[0].at("lane") == "paused");
    CHECK(provs[0].at("lane_detail") == "maintenance");

    auto p = json::parse(r.env.cli({"providers", "--json"}).out).as_array();
    REQUIRE(p.size() == 2);
    CHECK(p[0].at("paused") == true);
    check_time(p[0].at("paused_at"));
    CHECK(p[1].at("paused_at").is_null());
}

TEST_CASE("enqueue --json: the batch, counts, rejections with file, line, field, message") {
    TempDir dir;
    write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "providers": [
        {"name": "oa", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
         "models": ["gpt-image-2", "gpt-image-1"]}]})");
    // Lines 1 and 4 use the retired gpt-image-1 on purpose: the warnings below.
    write_file(dir.file("a.jsonl"), R"({"prompt": "one", "model": "gpt-image-1", "key": "k1"}
{"prompt": "two", "model": "gpt-image-2", "n": 0}
not json
{"prompt": "three", "model": "gpt-image-1", "n": 2}
)");
    auto r = run({"enqueue", "a.jsonl", "--batch", "x", "--json"}, "", {}, dir.path());
    CHECK(r.code == 1);
    CHECK(r.err == "");  // everything is in the JSON
    auto o = json::parse(r.out).as_object();
    CHECK(o.at("batch") == "x");
    CHECK(o.at("jobs") == 2);
    CHECK(o.at("images") == 3);
    CHECK(o.at("rejected") == 2);
    CHECK(o.at("duplicates") == 0);
    CHECK(o.at("dry_run") == false);
    const auto& rej = o.at("rejections").as_array();
    REQUIRE(rej.size() == 2);
    CHECK(rej[0].at("file") == "a.jsonl");
    CHECK(rej[0].at("line") == 2);
    CHECK(rej[0].at("field") == "n");
    CHECK(rej[0].at("message").is_string());
    CHECK_FALSE(has(std::string(rej[0].at("message").as_string()), "field 'n'"));
    CHECK(rej[1].at("line") == 3);
    CHECK(rej[1].at("field").is_null());
    // gpt-image-1 is retired; on a relay that is a warning, once, then counted.
    const auto& warn = o.at("warnings").as_array();
    REQUIRE(warn.size() == 1);
    CHECK(warn[0].at("line") == 1);
    CHECK(has(std::string(warn[0].at("message").as_string()), "gpt-image-1"));
    CHECK_FALSE(has(std::string(warn[0].at("message").as_string()), "warning:"));
    CHECK(o.at("more_warnings") == 1);

    // Again: k1 is a duplicate key, reported with the job that holds it.
    write_file(dir.file("b.jsonl"), R"({"prompt": "one", "model": "gpt-image-2", "key": "k1"}
)");
    r = run({"enqueue", "b.jsonl", "--batch", "y", "--json"}, "", {}, dir.path());
    CHECK(r.code == 0);
    o = json::parse(r.out).as_object();
    CHECK(o.at("jobs") == 0);
    CHECK(o.at("duplicates") == 1);
    const auto& dup = o.at("duplicate_keys").as_array();
    REQUIRE(dup.size() == 1);
    CHECK(dup[0].at("key") == "k1");
    CHECK(dup[0].at("job") == 1);
    CHECK(dup[0].at("line") == 1);
}

TEST_CASE("an unknown command suggests the nearest one") {
    TempDir dir;
    auto r = run({"stauts"}, "", {}, dir.path());
    CHECK(r.code == 2);
    CHECK(r.err == "imgbatch: unknown command 'stauts'; did you mean 'status'?\n");
    r = run({"--db", "x.db", "exprot", "--batch", "b"}, "", {}, dir.path());
    CHECK(r.code == 2);
    CHECK(has(r.err, "did you mean 'export'?"));
    r = run({"frobnicate"}, "", {}, dir.path());
    CHECK(r.code == 2);
    CHECK(has(r.err, "unknown command 'frobnicate' (commands: "));
    CHECK(has(r.err, "status"));
    // A known command's own errors are unchanged.
    CHECK(run({"status", "--bogus"}, "", {}, dir.path()).code == 2);
}
