// The simulator's Gemini Batch Mode and Files API, driven through SimState (no socket), with
// the daemon's own requests (gemini_batch.hpp) and parsers.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "daemon/providers/gemini_batch.hpp"
#include "daemon/sim/state.hpp"

using namespace imgbatch::daemon;
namespace gb = imgbatch::daemon::gemini_batch;
namespace json = boost::json;

namespace {

ProviderConfig provider() {
    ProviderConfig p;
    p.base_url = "http://127.0.0.1:1/v1beta";
    return p;
}

// Sends an HttpRequest of the daemon to the sim (target from its URL).
SimAnswer send(SimState& sim, const HttpRequest& http) {
    Url url;
    REQUIRE(parse_url(http.url, url));
    SimRequest r;
    r.method = http.method;
    r.target = url.target;
    r.host = "127.0.0.1:1";
    r.goog_upload = std::string(find_header(http.headers, "X-Goog-Upload-Command"));
    r.body = http.body;
    return sim.handle(r);
}

HttpResponse response(const SimAnswer& a) {
    return {a.status, a.headers, a.body};
}

std::string line(const std::string& key, const std::string& prompt) {
    GenerationRequest g{"gemini-2.5-flash-image", prompt, 1, {}};
    return gb::input_line(key, *find_provider_api("gemini"), g, provider());
}

std::optional<batch_types::Batch> get(SimState& sim, const std::string& name) {
    std::optional<imgbatch::jobs::Error> err;
    auto b = gb::parse_batch(response(send(sim, gb::get(provider(), "", name))), err);
    CHECK_FALSE(err);
    return b;
}

}  // namespace

TEST_CASE("sim gemini batch: a file upload, a batch on it, a responses file in input order") {
    SimOptions o;
    o.batch_ms = 0;
    SimState sim(o);
    const std::string input = line("r1-a1", "a fox") + line("r2-a1", "bad #fail=500") +
                              line("r3-a1", "refused #fail=finish:IMAGE_SAFETY");
    std::optional<imgbatch::jobs::Error> err;
    SimAnswer start = send(sim, gb::upload_start(provider(), "", "in.jsonl", input.size()));
    std::string url = gb::parse_upload_start(response(start), err);
    REQUIRE_FALSE(err);
    std::string file =
        gb::parse_file(response(send(sim, gb::upload_finish(provider(), "", url, input))), err);
    REQUIRE_FALSE(err);
    CHECK(file.starts_with("files/"));

    auto created = gb::parse_batch(
        response(
            send(sim, gb::create(provider(), "", "gemini-2.5-flash-image", "db", "db-1", file))),
        err);
    REQUIRE(created);
    CHECK(created->status == "BATCH_STATE_PENDING");
    CHECK(created->chunk == "db-1");
    CHECK(created->total == 3);

    auto done = get(sim, created->id);
    REQUIRE(done);
    CHECK(done->status == "BATCH_STATE_SUCCEEDED");
    CHECK(done->completed == 2);
    CHECK(done->failed == 1);
    REQUIRE(done->output_file_id.starts_with("files/"));
    SimAnswer d = send(sim, gb::download(provider(), "", done->output_file_id));
    REQUIRE(d.status == 200);
    std::vector<batch_types::Line> lines;
    for (std::size_t pos = 0; pos < d.body.size();) {
        auto nl = d.body.find('\n', pos);
        auto l = gb::parse_line(std::string_view(d.body).substr(pos, nl - pos), nullptr);
        REQUIRE(l);
        lines.push_back(*l);
        pos = nl + 1;
    }
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].custom_id == "r1-a1");
    CHECK(lines[0].response->status == 200);
    CHECK(lines[1].response->status == 500);
    CHECK(lines[2].response->status == 200);  // a refusal is an answer without an image
    CHECK(lines[2].response->body.find("IMAGE_SAFETY") != std::string::npos);
    CHECK(json::parse(sim.stats_json()).at("images") == 1);
}

TEST_CASE("sim gemini batch: inline results, list pages, cancel, failure and expiry") {
    SimOptions o;
    o.batch_ms = 0;
    SimState sim(o);
    std::optional<imgbatch::jobs::Error> err;
    auto create = [&](const std::string& lines, const std::string& chunk) {
        auto b = gb::parse_batch(
            response(send(sim, gb::create(provider(), "", "gemini-2.5-flash-image", "db", chunk,
                                          "inline:" + gb::inline_requests(lines)))),
            err);
        REQUIRE(b);
        return *b;
    };
    auto a = create(line("r1-a1", "one") + line("r2-a1", "two #expire") + line("r3-a1", "three"),
                    "db-1");
    auto expired = get(sim, a.id);
    CHECK(expired->status == "BATCH_STATE_EXPIRED");
    CHECK(expired->output_file_id == gb::kInlineResults);
    const std::string op = send(sim, gb::get(provider(), "", a.id)).body;
    const std::string lines = gb::inline_lines(op);
    CHECK(lines.find("r1-a1") != std::string::npos);
    CHECK(lines.find("r2-a1") == std::string::npos);  // the rest did not run

    auto f = create(line("r4-a1", "bad #batchfail"), "db-2");
    CHECK(f.status == "BATCH_STATE_FAILED");
    CHECK(f.error.find("#batchfail") != std::string::npos);

    // Newest first, one a page.
    auto page1 = gb::parse_list(response(send(sim, gb::list(provider(), "", "", 1))), err);
    REQUIRE(page1);
    CHECK(page1->batches.at(0).chunk == "db-2");
    REQUIRE(page1->has_more);
    auto page2 =
        gb::parse_list(response(send(sim, gb::list(provider(), "", page1->last_id, 1))), err);
    CHECK(page2->batches.at(0).chunk == "db-1");
    CHECK_FALSE(page2->has_more);

    SimOptions slow;
    slow.batch_ms = 60'000;
    SimState sim2(slow);
    auto c = gb::parse_batch(
        response(send(sim2, gb::create(provider(), "", "m", "db", "db-3",
                                       "inline:" + gb::inline_requests(line("r5-a1", "x"))))),
        err);
    REQUIRE(c);
    CHECK(send(sim2, gb::cancel(provider(), "", c->id)).status == 200);
    auto cancelled = gb::parse_batch(response(send(sim2, gb::get(provider(), "", c->id))), err);
    CHECK(cancelled->status == "BATCH_STATE_CANCELLED");
}
