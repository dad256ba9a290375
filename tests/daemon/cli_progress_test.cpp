// The progress display's pure parts (daemon/cli/progress.hpp) and the JSON vocabulary helpers
// (daemon/cli/format.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json/serialize.hpp>

#include "daemon/cli/format.hpp"
#include "daemon/cli/progress.hpp"

using namespace imgbatch;
using namespace imgbatch::daemon::cli;

namespace {

jobs::BatchProgress progress(std::int64_t done, std::int64_t wanted, std::int64_t remaining,
                             std::int64_t queued, std::int64_t succeeded) {
    jobs::BatchProgress p;
    p.name = "q";
    p.jobs_by_state = {{"pending", 0},           {"queued", queued}, {"running", 0},
                       {"succeeded", succeeded}, {"failed", 0},      {"blocked", 0},
                       {"cancelled", 0},         {"rejected", 0}};
    p.jobs = queued + succeeded;
    p.images_done = done;
    p.images_wanted = wanted;
    p.images_remaining = remaining;
    return p;
}

DaemonView a_daemon(bool alive, const std::string& local_pause = "") {
    DaemonView d;
    d.row.host = "h";
    d.row.pid = 42;
    d.row.heartbeat_at = alive ? 995 : 900;
    d.row.local_pause = local_pause;
    d.alive = alive;
    return d;
}

jobs::LaneLoad load(const std::string& name, std::int64_t queued, std::int64_t due,
                    std::int64_t in_flight, double next_due = 0) {
    jobs::LaneLoad l;
    l.provider = name;
    l.queued = queued;
    l.due = due;
    l.claimed = in_flight;
    l.in_flight = in_flight;
    l.next_due = next_due;
    return l;
}

}  // namespace

TEST_CASE("rfc3339, json_time and json_error: one vocabulary") {
    CHECK(rfc3339(0) == "1970-01-01T00:00:00.000Z");
    CHECK(rfc3339(1795000000.25) == "2026-11-18T11:06:40.250Z");
    CHECK(json_time(0).is_null());
    CHECK(json_time(1.5) == "1970-01-01T00:00:01.500Z");
    auto e = json_error("server", "boom", 500, "bad");
    CHECK(boost::json::serialize(e) ==
          R"({"class":"server","code":"boom","http_status":500,"message":"bad"})");
    auto n = json_error("network", "", 0, "reset");
    CHECK(n.at("code").is_null());
    CHECK(n.at("http_status").is_null());
    CHECK(json_error(std::optional<jobs::Error>{}).is_null());
}

TEST_CASE("lane states: paused, local pause, active, holding, waiting, idle") {
    const std::vector<DaemonView> alive{a_daemon(true)};
    jobs::ProviderState paused;
    paused.name = "oa";
    paused.paused = true;
    paused.reason = "auth: bad key";
    auto v = lane_view(load("oa", 3, 3, 0), &paused, alive, 1000);
    CHECK(v.state == "paused");
    CHECK(v.detail == "auth: bad key");
    CHECK(lane_view(load("oa", 3, 3, 0), nullptr, {a_daemon(true, "disk full")}, 1000).state ==
          "local pause");
    CHECK(lane_view(load("oa", 3, 3, 2), nullptr, alive, 1000).state == "active");
    auto h = lane_view(load("oa", 3, 0, 0, 1012), nullptr, alive, 1000);
    CHECK(h.state == "holding");
    CHECK(h.detail == "next request due in 12s");
    CHECK(lane_view(load("oa", 3, 3, 0), nullptr, {a_daemon(false)}, 1000).state == "waiting");
    CHECK(lane_view(load("oa", 0, 0, 0), nullptr, alive, 1000).state == "idle");
}

TEST_CASE("batch view: rate since the start, ETA, none while every provider is paused") {
    const std::vector<LaneView> lanes{
        lane_view(load("oa", 5, 5, 2), nullptr, {a_daemon(true)}, 1000)};
    jobs::BatchTimes t;
    t.started_at = 900;  // 100 s ago
    // 50 of 100 images in 100 s: 30 a minute; 50 left: 100 s.
    auto b = batch_view(progress(50, 100, 50, 5, 5), t, 1000, lanes, true);
    CHECK_FALSE(b.final);
    CHECK(b.fraction == doctest::Approx(0.5));
    CHECK(b.elapsed_s == doctest::Approx(100));
    CHECK(b.images_per_min == doctest::Approx(30));
    REQUIRE(b.eta_s);
    CHECK(*b.eta_s == doctest::Approx(100));

    jobs::ProviderState paused;
    paused.name = "oa";
    paused.paused = true;
    paused.reason = "quota";
    const std::vector<LaneView> stopped{
        lane_view(load("oa", 5, 5, 0), &paused, {a_daemon(true)}, 1000)};
    auto p = batch_view(progress(50, 100, 50, 5, 5), t, 1000, stopped, true);
    CHECK_FALSE(p.eta_s);
    CHECK(p.no_eta == "every provider paused");
    auto nd = batch_view(progress(50, 100, 50, 5, 5), t, 1000, lanes, false);
    CHECK_FALSE(nd.eta_s);
    CHECK(nd.no_eta == "no daemon alive");

    t.finished_at = 980;
    auto f = batch_view(progress(100, 100, 0, 0, 10), t, 1000, lanes, true);
    CHECK(f.final);
    CHECK(f.fraction == 1);
    CHECK(f.elapsed_s == doctest::Approx(80));  // until the last job ended
    auto j = batch_json(f);
    CHECK(j.at("state") == "finished");
    CHECK(j.at("progress") == 1);
    CHECK(j.at("started_at") == "1970-01-01T00:15:00.000Z");
    CHECK(j.at("eta_s").is_null());
}

TEST_CASE("frames: a bar, a percentage, cut to the width; colours only when asked") {
    CHECK(progress_bar(0.5, 10) == "[#####.....]");
    CHECK(progress_bar(1.2, 4) == "[####]");
    Snapshot s;
    s.now = 1000;
    s.daemons = {a_daemon(true)};
    s.lanes = {lane_view(load("oa", 5, 5, 2), nullptr, s.daemons, 1000)};
    jobs::BatchTimes t;
    t.started_at = 900;
    s.batches = {batch_view(progress(50, 100, 50, 5, 5), t, 1000, s.lanes, true)};
    auto lines = render_frame(s, FrameStyle{false, 200});
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].find("daemon: h pid 42 alive") != std::string::npos);
    CHECK(lines[1].find("[############............] 50.0%  50/100 images") != std::string::npos);
    CHECK(lines[1].find("ETA 1m40s") != std::string::npos);
    CHECK(lines[2].find("failed 0, blocked 0, retrying 0") != std::string::npos);
    CHECK(lines[3].find("lane oa active  in flight 2, queued 5") != std::string::npos);
    // Claims held ahead of the free slots are told apart from the calls sent.
    auto prefetched = load("oa", 5, 5, 2);
    prefetched.claimed = 6;
    s.lanes = {lane_view(prefetched, nullptr, s.daemons, 1000)};
    CHECK(render_frame(s, FrameStyle{false, 200})[3].find(
              "lane oa active  in flight 2 (6 claimed), queued 5") != std::string::npos);
    s.lanes = {lane_view(load("oa", 5, 5, 2), nullptr, s.daemons, 1000)};
    for (const auto& l : render_frame(s, FrameStyle{false, 30})) CHECK(l.size() <= 30);
    for (const auto& l : lines) CHECK(l.find('\x1b') == std::string::npos);
    auto colored = render_frame(s, FrameStyle{true, 200});
    CHECK(colored[0].find("\x1b[32malive") != std::string::npos);
    std::string plain = render_lines(s);
    CHECK(std::count(plain.begin(), plain.end(), '\n') == 1);
    CHECK(plain.find("1970-01-01T00:16:40.000Z q 50.0% 50/100 images") == 0);
}
