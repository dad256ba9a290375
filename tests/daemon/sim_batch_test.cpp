// The simulator's OpenAI Files and Batch APIs, driven through SimState (no socket).
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "daemon/providers/openai_batch.hpp"
#include "daemon/sim/state.hpp"

using namespace imgbatch::daemon;
namespace json = boost::json;

namespace {

SimAnswer call(SimState& sim, const std::string& method, const std::string& target,
               const std::string& body = "") {
    SimRequest r;
    r.method = method;
    r.target = target;
    r.host = "127.0.0.1:1";
    r.body = body;
    return sim.handle(r);
}

json::object object(const SimAnswer& a) {
    return json::parse(a.body).as_object();
}

// Uploads lines (the daemon's multipart request) and creates a batch; returns its id.
std::string submit(SimState& sim, const std::string& lines, const std::string& chunk = "c-1") {
    ProviderConfig p;
    p.base_url = "http://127.0.0.1:1/v1";
    HttpRequest up = openai_batch::upload(p, "", "in.jsonl", lines);
    SimAnswer f = call(sim, "POST", "/v1/files", up.body);
    REQUIRE(f.status == 200);
    auto file = object(f);
    CHECK(file.at("purpose") == "batch");
    CHECK(file.at("bytes") == lines.size());
    HttpRequest cr = openai_batch::create(p, "", std::string(file.at("id").as_string()),
                                          "/v1/images/generations", "db", chunk);
    SimAnswer b = call(sim, "POST", "/v1/batches", cr.body);
    REQUIRE(b.status == 200);
    auto batch = object(b);
    CHECK(batch.at("metadata").at("imgbatch_chunk") == json::value(chunk));
    return std::string(batch.at("id").as_string());
}

std::string line(const std::string& id, const std::string& prompt) {
    return R"({"custom_id":")" + id +
           R"(","method":"POST","url":"/v1/images/generations","body":{"model":"gpt-image-2","prompt":")" +
           prompt + R"(","n":1}})" + "\n";
}

}  // namespace

TEST_CASE("sim batch: lines run through the images endpoint; errors go to the error file") {
    SimOptions o;
    o.batch_ms = 0;
    SimState sim(o);
    auto id = submit(sim, line("r1-a1", "a fox") + line("r2-a1", "bad #fail=moderation"));
    auto b = object(call(sim, "GET", "/v1/batches/" + id));
    CHECK(b.at("status") == "completed");
    CHECK(b.at("request_counts").at("completed") == 1);
    CHECK(b.at("request_counts").at("failed") == 1);
    auto out = call(sim, "GET",
                    "/v1/files/" + std::string(b.at("output_file_id").as_string()) + "/content");
    auto first = json::parse(out.body.substr(0, out.body.find('\n'))).as_object();
    CHECK(first.at("custom_id") == "r1-a1");
    CHECK(first.at("response").at("status_code") == 200);
    CHECK(first.at("response").at("body").at("data").as_array().size() == 1);
    CHECK(first.at("error").is_null());
    auto err = call(sim, "GET",
                    "/v1/files/" + std::string(b.at("error_file_id").as_string()) + "/content");
    auto bad = json::parse(err.body.substr(0, err.body.find('\n'))).as_object();
    CHECK(bad.at("custom_id") == "r2-a1");
    CHECK(bad.at("response").at("status_code") == 400);
    CHECK(json::parse(sim.stats_json()).at("images") == 1);
}

TEST_CASE("sim batch: the list is newest first and pages with after and limit") {
    SimOptions o;
    o.batch_ms = 60'000;
    SimState sim(o);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i)
        ids.push_back(submit(sim, line("r1-a1", "x"), "c-" + std::to_string(i)));
    CHECK(object(call(sim, "GET", "/v1/batches/" + ids[0])).at("status") == "validating");
    auto page = object(call(sim, "GET", "/v1/batches?limit=2"));
    REQUIRE(page.at("data").as_array().size() == 2);
    CHECK(page.at("data").as_array()[0].at("id") == json::value(ids[2]));
    CHECK(page.at("has_more") == true);
    auto rest = object(call(
        sim, "GET", "/v1/batches?limit=2&after=" + std::string(page.at("last_id").as_string())));
    REQUIRE(rest.at("data").as_array().size() == 1);
    CHECK(rest.at("data").as_array()[0].at("id") == json::value(ids[0]));
    CHECK(rest.at("has_more") == false);

    // Cancel: cancelling, then cancelled with no line run yet.
    auto c = object(call(sim, "POST", "/v1/batches/" + ids[1] + "/cancel"));
    CHECK(c.at("status") == "cancelling");
    auto after = object(call(sim, "GET", "/v1/batches/" + ids[1]));
    CHECK(after.at("status") == "cancelled");
    CHECK(after.at("output_file_id").is_null());
    CHECK(call(sim, "GET", "/v1/batches/batch_none").status == 404);
}

TEST_CASE("sim batch: expiry keeps the lines before #expire; #batchfail fails validation") {
    SimOptions o;
    o.batch_ms = 0;
    SimState sim(o);
    auto id =
        submit(sim, line("r1-a1", "one") + line("r2-a1", "two #expire") + line("r3-a1", "three"));
    auto b = object(call(sim, "GET", "/v1/batches/" + id));
    CHECK(b.at("status") == "expired");
    CHECK(b.at("request_counts").at("completed") == 1);
    auto err = call(sim, "GET",
                    "/v1/files/" + std::string(b.at("error_file_id").as_string()) + "/content");
    CHECK(err.body.find(R"("code":"batch_expired")") != std::string::npos);

    auto failed = submit(sim, line("r1-a2", "one") + line("r2-a2", "two #batchfail"), "c-2");
    auto f = object(call(sim, "GET", "/v1/batches/" + failed));
    CHECK(f.at("status") == "failed");
    CHECK(f.at("errors").at("data").as_array()[0].at("line") == 2);
}
