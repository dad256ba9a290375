// Store: stats, lists, export, and the claim's query plan.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <map>

#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {
const std::string kOwner = "host-1";
}

TEST_CASE("stats: states, images, rate, ETA and providers") {
    Store s(":memory:");
    s.enqueue("b1", {item("a", 4, 2), item("b", 2, 1), item("c", 1, 1, "", 0, "p2")});
    s.enqueue("b2", {item("d", 3, 3)});
    s.db().exec("INSERT INTO jobs(prompt, model, n) VALUES ('pending', 'm', 5)");
    s.db().exec("INSERT INTO jobs(prompt, model, n, state) VALUES ('rej', 'm', 9, 'rejected')");
    auto c = s.claim("p1", kOwner, 3, 100, 1e12);  // a#0, a#1, b#0
    REQUIRE(c.size() == 3);
    std::vector<Completion> v{completion(c[0], kOwner, 2), completion(c[1], kOwner, 1)};
    s.apply(v);  // a#1 ends with 1 of 2 images: job a fails with 3 of 4
    const double now = unix_now();

    auto st = s.stats(std::nullopt, now);
    CHECK(st.jobs_by_state.size() == 8);
    CHECK(st.jobs == 6);
    CHECK(st.jobs_by_state["failed"] == 1);   // a
    CHECK(st.jobs_by_state["running"] == 1);  // b
    CHECK(st.jobs_by_state["queued"] == 2);   // c, d
    CHECK(st.jobs_by_state["pending"] == 1);
    CHECK(st.jobs_by_state["rejected"] == 1);
    CHECK(st.jobs_by_state["succeeded"] == 0);
    CHECK(st.images_wanted == 4 + 2 + 1 + 3 + 5);
    CHECK(st.images_done == 3);
    CHECK(st.images_per_min == doctest::Approx(3.0 / 5));
    REQUIRE(st.eta_s);
    // Remaining over unfinished jobs: b 2 + c 1 + d 3 + pending 5 = 11 at 0.6/min.
    CHECK(*st.eta_s == doctest::Approx(11 / 0.6 * 60));
    CHECK(st.providers["p1"].queued == 2);  // b#1, d#0
    CHECK(st.providers["p1"].claimed == 1);
    CHECK(st.providers["p1"].in_flight == 0);  // no daemon alive has sent it
    CHECK(st.providers["p1"].images_last_min == 3);
    CHECK(st.providers["p2"].queued == 1);
    CHECK(st.providers["p2"].in_flight == 0);

    auto b2 = s.stats(std::string("b2"), now);
    CHECK(b2.jobs == 1);
    CHECK(b2.jobs_by_state["queued"] == 1);
    CHECK(b2.images_wanted == 3);
    CHECK(b2.images_per_min == 0);
    CHECK_FALSE(b2.eta_s);
    CHECK(b2.providers["p1"].queued == 1);
    CHECK(b2.providers.count("p2") == 0);

    // Outside the windows: no rate; leases in the past are not in flight.
    auto later = s.stats(std::nullopt, now + 3600);
    CHECK(later.images_per_min == 0);
    CHECK(later.providers["p1"].images_last_min == 0);
    auto none = s.stats(std::string("nope"), now);
    CHECK(none.jobs == 0);
    CHECK(none.jobs_by_state.size() == 8);
}

TEST_CASE("stats: the rate counts from when the window's first image was asked for") {
    // A run that started 3 s ago made 4 images: 80 a minute, not 4 over 5 minutes.
    const double now = unix_now();
    auto run = [&](Store& s, double started, int images) {
        auto c = s.claim("p1", kOwner, images, now - 4, 1e12);
        REQUIRE(static_cast<int>(c.size()) == images);
        std::vector<Completion> v;
        for (const auto& r : c) {
            v.push_back(completion(r, kOwner, 1));
            v.back().started_at = started;
            v.back().finished_at = std::max(started, now - 1);
        }
        s.apply(v);
    };
    {
        Store s(":memory:");
        s.enqueue("b1", {item("a"), item("b"), item("c"), item("d"), item("e")});
        run(s, now - 3, 4);
        s.enqueue("b2", {item("f")});
        auto st = s.stats(std::nullopt, now);
        CHECK(st.images_per_min == doctest::Approx(4 * 60.0 / 3).epsilon(0.01));
        REQUIRE(st.eta_s);
        CHECK(*st.eta_s == doctest::Approx(2 / (4 / 3.0)).epsilon(0.01));  // 2 images left
        CHECK(s.stats(std::string("b1"), now).images_per_min ==
              doctest::Approx(4 * 60.0 / 3).epsilon(0.01));
        CHECK(s.stats(std::string("b2"), now).images_per_min == 0);
    }
    {
        // The window's first image was asked for before the window: the whole 5 minutes.
        Store s(":memory:");
        s.enqueue("b1", {item("a"), item("b"), item("c")});
        run(s, now - 400, 1);
        run(s, now - 3, 2);
        CHECK(s.stats(std::nullopt, now).images_per_min == doctest::Approx(3 / 5.0));
    }
    {
        // Asked for at the instant the rate is read: the span is at least a second.
        Store s(":memory:");
        s.enqueue("b1", {item("a")});
        run(s, now, 1);
        CHECK(s.stats(std::nullopt, now).images_per_min == doctest::Approx(60));
    }
}

TEST_CASE("stats: calls in flight are what the live daemons report, claims are counted apart") {
    // A daemon claims ahead of its free slots: 6 claimed by it, 4 of them sent.
    Store s(":memory:");
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 9; ++i) items.push_back(item("x" + std::to_string(i)));
    s.enqueue("b1", items);
    const double now = unix_now();
    auto add_daemon = [&](const std::string& owner) {
        DaemonRow d;
        d.owner = owner;
        d.started_at = now - 10;
        d.heartbeat_at = now;
        s.register_daemon(d, true, [](const DaemonRow&) { return true; });
    };
    add_daemon("run-1");
    REQUIRE(s.claim("p1", "run-1", 6, now, 60).size() == 6);
    std::map<std::string, std::int64_t> calls{{"p1", 4}, {"p2", 0}};
    s.heartbeat("run-1", now, "", &calls);
    auto st = s.stats(std::nullopt, now);
    CHECK(st.providers["p1"].claimed == 6);
    CHECK(st.providers["p1"].in_flight == 4);
    auto lanes = s.lane_loads(now);
    REQUIRE(lanes.size() == 1);
    CHECK(lanes[0].claimed == 6);
    CHECK(lanes[0].in_flight == 4);
    // A heartbeat without calls keeps the last report.
    s.heartbeat("run-1", now, "");
    CHECK(s.calls_in_flight(now)["p1"] == 4);

    // A daemon that does not report calls (before schema 9): its claimed requests count.
    add_daemon("run-2");
    REQUIRE(s.claim("p1", "run-2", 2, now, 60).size() == 2);
    CHECK(s.calls_in_flight(now)["p1"] == 4 + 2);
    CHECK(s.stats(std::nullopt, now).providers["p1"].in_flight == 6);

    // For one batch: at most its claimed requests.
    s.enqueue("b2", {item("y")});
    REQUIRE(s.claim("p1", "run-2", 2, now, 60).size() == 2);  // b1's last and b2's
    CHECK(s.stats(std::string("b2"), now).providers["p1"].claimed == 1);
    CHECK(s.stats(std::string("b2"), now).providers["p1"].in_flight == 1);

    // Stopped, or silent for longer than the stale time: not counted.
    s.daemon_stopped("run-2", now);
    CHECK(s.calls_in_flight(now)["p1"] == 4);
    CHECK(s.calls_in_flight(now + 31)["p1"] == 0);
}

TEST_CASE("finished_batch: counts only once nothing is pending, queued or running") {
    Store s(":memory:");
    s.enqueue("b1", {item("a", 2, 1), item("b", 1, 1)});
    s.enqueue("b2", {item("c", 1, 1)});
    CHECK_FALSE(s.finished_batch("b1"));
    CHECK_FALSE(s.finished_batch("nope"));
    auto c = s.claim("p1", kOwner, 3, 100, 1e12);  // a#0, a#1, b#0
    REQUIRE(c.size() == 3);
    std::vector<Completion> v{completion(c[0], kOwner, 1), completion(c[1], kOwner, 1)};
    s.apply(v);
    CHECK_FALSE(s.finished_batch("b1"));  // b is still running
    std::vector<Completion> last{completion(c[2], kOwner, 1)};
    s.apply(last);
    auto done = s.finished_batch("b1");
    REQUIRE(done);
    CHECK(done->jobs == 2);
    CHECK(done->jobs_by_state["succeeded"] == 2);
    CHECK(done->jobs_by_state["queued"] == 0);
    CHECK(done->images_done == 3);
    CHECK(done->images_wanted == 3);
    CHECK_FALSE(s.finished_batch("b2"));  // c is still queued
}

TEST_CASE("list_jobs and job_detail filter and order by id") {
    Store s(":memory:");
    auto r = s.enqueue("b1", {item("a"), item("b"), item("c")});
    s.enqueue("b2", {item("d")});
    JobFilter f;
    f.batch = "b1";
    CHECK(s.list_jobs(f).size() == 3);
    f.limit = 2;
    auto two = s.list_jobs(f);
    REQUIRE(two.size() == 2);
    CHECK(two[1].prompt == "b");
    JobFilter ids;
    ids.ids = {r.job_ids[2], r.job_ids[0]};
    auto got = s.list_jobs(ids);
    REQUIRE(got.size() == 2);
    CHECK(got[0].id == r.job_ids[0]);
    JobFilter st;
    st.state = JobState::succeeded;
    CHECK(s.list_jobs(st).empty());
    CHECK_FALSE(s.job_detail(999));
    CHECK(s.batch_names() == std::vector<std::string>{"b1", "b2"});
}

TEST_CASE("export: one record per job with images, attempts and the last error") {
    Store s(":memory:");
    s.enqueue("b1", {item("ok", 2, 2, "k-ok"), item("bad", 1, 1)});
    s.enqueue("b2", {item("other")});
    s.db().exec(
        "INSERT INTO jobs(prompt, model, state, error, batch_id) "
        "VALUES ('r', 'm', 'rejected', 'field ''size'': bad', 1)");
    auto c = s.claim("p1", kOwner, 2, 100, 60);
    std::vector<Completion> v{completion(c[0], kOwner, 0, Next::retry),
                              completion(c[1], kOwner, 0, Next::retry)};
    v[0].error = error(ErrorClass::server, "502", 502);
    v[1].error = error(ErrorClass::timeout, "deadline");
    s.apply(v);
    c = s.claim("p1", kOwner, 2, 100, 60);
    v = {completion(c[0], kOwner, 2), completion(c[1], kOwner, 0, Next::fail)};
    v[1].error = error(ErrorClass::invalid_request, "size not supported", 400, "invalid_size");
    v[0].usage_json = R"({"total_tokens": 100, "input_tokens_details": {"text_tokens": 7}})";
    s.apply(v);
    c = s.claim("p1", kOwner, 1, 100, 60);  // "other": given back at shutdown
    v = {completion(c[0], kOwner, 0, Next::returned)};
    s.apply(v);

    std::vector<ExportRecord> recs;
    s.export_jobs(std::string("b1"), [&](const ExportRecord& r) { recs.push_back(r); });
    REQUIRE(recs.size() == 3);
    CHECK(recs[0].job.key == "k-ok");
    CHECK(recs[0].job.state == "succeeded");
    CHECK(recs[0].job.batch == "b1");
    CHECK(recs[0].images.size() == 2);
    CHECK(recs[0].images[0].sha256.size() == 64);
    CHECK(recs[0].attempts == 2);
    CHECK_FALSE(recs[0].last_error);  // succeeded: earlier errors do not matter
    CHECK(boost::json::serialize(recs[0].usage) ==
          R"({"total_tokens":100,"input_tokens_details":{"text_tokens":7}})");
    CHECK(recs[1].usage.empty());  // no provider reported usage
    CHECK(recs[1].job.state == "failed");
    CHECK(recs[1].attempts == 2);
    REQUIRE(recs[1].last_error);
    CHECK(recs[1].last_error->cls == ErrorClass::invalid_request);
    CHECK(recs[1].last_error->code == "invalid_size");
    CHECK(recs[1].last_error->http_status == 400);
    CHECK(recs[1].last_error->message == "size not supported");
    CHECK(recs[2].job.state == "rejected");
    REQUIRE(recs[2].last_error);
    CHECK(recs[2].last_error->message == "field 'size': bad");

    recs.clear();
    s.export_jobs(std::nullopt, [&](const ExportRecord& r) { recs.push_back(r); });
    REQUIRE(recs.size() == 4);
    CHECK(recs[2].job.prompt == "other");
    CHECK(recs[2].attempts == 0);  // returned attempts are not counted
    CHECK_FALSE(recs[2].last_error);
    for (std::size_t i = 1; i < recs.size(); ++i) CHECK(recs[i - 1].job.id < recs[i].job.id);
}

TEST_CASE("claim: the statement walks the requests_claim index without sorting") {
    Store s(":memory:");
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 200; ++i) items.push_back(item("x", 1, 1, "", i % 3, i % 2 ? "p1" : "p2"));
    s.enqueue("b", items);
    s.db().exec("ANALYZE");
    SQLite::Statement q(s.db(), "EXPLAIN QUERY PLAN " + std::string(claim_sql()));
    std::string plan;
    while (q.executeStep()) plan += q.getColumn(3).getString() + "\n";
    INFO(plan);
    CHECK(plan.find("INDEX requests_claim (provider=?)") != std::string::npos);
    CHECK(plan.find("TEMP B-TREE") == std::string::npos);
    CHECK(plan.find("SCAN requests") == std::string::npos);
}

TEST_CASE("add_usage sums numbers field by field, recursing into objects") {
    boost::json::object total;
    add_usage(total, boost::json::parse(R"({"total_tokens": 10, "output_tokens": 4,
        "input_tokens_details": {"text_tokens": 3, "image_tokens": 0}, "model": "x"})")
                         .as_object());
    add_usage(total, boost::json::parse(R"({"total_tokens": 5, "cost": 0.5,
        "input_tokens_details": {"text_tokens": 2}})")
                         .as_object());
    add_usage(total, boost::json::parse(R"({"cost": 0.25})").as_object());
    CHECK(total.at("total_tokens").as_int64() == 15);
    CHECK(total.at("output_tokens").as_int64() == 4);
    CHECK(total.at("input_tokens_details").at("text_tokens").as_int64() == 5);
    CHECK(total.at("input_tokens_details").at("image_tokens").as_int64() == 0);
    CHECK(total.at("cost").as_double() == doctest::Approx(0.75));
    CHECK_FALSE(total.contains("model"));  // only numbers are summed
}

TEST_CASE("open_work: pending rows and open requests per provider") {
    Store s(":memory:");
    CHECK(s.open_work().pending == 0);
    CHECK(s.open_work().requests_by_provider.empty());
    s.enqueue("b", {item("a", 2, 1, "", 0, "p1"), item("b", 1, 1, "", 0, "p2")});
    s.db().exec("INSERT INTO jobs(prompt, model, n) VALUES ('sql row', 'gpt-image-1', 1)");
    auto c = s.claim("p1", kOwner, 1, unix_now(), 60);  // one running, one queued
    REQUIRE(c.size() == 1);
    auto w = s.open_work();
    CHECK(w.pending == 1);
    CHECK(w.requests_by_provider == std::map<std::string, std::int64_t>{{"p1", 2}, {"p2", 1}});
}

TEST_CASE("provider pauses: the daemon never changes a pause made by the user") {
    Store s(":memory:");
    s.set_provider_paused("p", true, "user", 0);
    // An auth pause and a probe that succeeded, both by the daemon: the user's pause stays.
    s.set_provider_paused("p", true, "auth: bad key", 500, true);
    s.set_provider_paused("p", false, "", 0, true);
    auto st = s.provider_states();
    REQUIRE(st.size() == 1);
    CHECK(st[0].paused);
    CHECK(st[0].reason == "user");
    CHECK(st[0].probe_at == 0);
    // The daemon's own pauses come and go.
    s.set_provider_paused("q", true, "auth: bad key", 500, true);
    s.set_provider_paused("q", false, "", 0, true);
    for (const auto& x : s.provider_states())
        if (x.name == "q") CHECK_FALSE(x.paused);
    // `imgbatch resume` (not by the daemon) ends the user's pause.
    s.set_provider_paused("p", false, "", 0);
    for (const auto& x : s.provider_states())
        if (x.name == "p") CHECK_FALSE(x.paused);
}

TEST_CASE("batch_progress: per batch states, images, remaining and retrying") {
    Store s(":memory:");
    s.enqueue("b1", {item("a", 4, 2), item("b", 2, 1), item("c", 1, 1, "", 0, "p2")});
    s.enqueue("b2", {item("d", 3, 3)});
    s.enqueue("empty", {});
    s.db().exec("INSERT INTO jobs(prompt, model, n) VALUES ('no batch yet', 'm', 5)");
    auto c = s.claim("p1", kOwner, 3, 100, 1e12);  // a#0, a#1, b#0
    REQUIRE(c.size() == 3);
    std::vector<Completion> v{completion(c[0], kOwner, 2), completion(c[1], kOwner, 1),
                              completion(c[2], kOwner, 0, Next::retry)};
    v[2].not_before = 1e12;
    s.apply(v);  // a fails with 3 of 4; b#0 waits for a retry

    auto all = s.batch_progress(std::nullopt);
    REQUIRE(all.size() == 3);
    const auto& b1 = all[0];
    CHECK(b1.name == "b1");
    CHECK(b1.jobs == 3);
    CHECK(b1.count(JobState::failed) == 1);
    CHECK(b1.count(JobState::queued) == 2);  // b (retrying), c
    CHECK(b1.images_wanted == 7);
    CHECK(b1.images_done == 3);
    CHECK(b1.images_remaining == 3);  // b 2 + c 1; a is final
    CHECK(b1.retrying == 1);
    CHECK_FALSE(b1.final());
    CHECK(all[1].name == "b2");
    CHECK(all[1].retrying == 0);
    CHECK(all[2].name == "empty");
    CHECK(all[2].jobs == 0);
    CHECK(all[2].final());

    auto one = s.batch_progress(std::string("b2"));
    REQUIRE(one.size() == 1);
    CHECK(one[0].jobs == 1);
    CHECK(one[0].images_remaining == 3);
    CHECK(s.batch_progress(std::string("nope")).empty());

    auto t = s.batch_times("b1");
    CHECK(t.started_at == 1000);  // the first attempt
    CHECK(s.batch_times("b2").started_at == 0);

    // Lanes: p1 has b#1 and d due, b#0 not due until 1e12; p2 has c.
    auto lanes = s.lane_loads(unix_now());
    REQUIRE(lanes.size() == 2);
    CHECK(lanes[0].provider == "p1");
    CHECK(lanes[0].queued == 3);
    CHECK(lanes[0].due == 2);
    CHECK(lanes[0].in_flight == 0);
    CHECK(lanes[1].provider == "p2");
    CHECK(lanes[1].queued == 1);
}

TEST_CASE("list_jobs and job_detail carry attempts and the last error, as export does") {
    Store s(":memory:");
    s.enqueue("b", {item("a", 1), item("b", 1)});
    auto c = s.claim("p1", kOwner, 2, 100, 1e12);
    REQUIRE(c.size() == 2);
    std::vector<Completion> v{completion(c[0], kOwner, 1), completion(c[1], kOwner, 0, Next::fail)};
    v[1].error = Error{ErrorClass::server, "boom", 502, "bad gateway", std::nullopt};
    s.apply(v);
    auto rows = s.list_jobs({});
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].attempts == 1);
    CHECK_FALSE(rows[0].last_error);
    CHECK(rows[1].attempts == 1);
    REQUIRE(rows[1].last_error);
    CHECK(rows[1].last_error->cls == ErrorClass::server);
    CHECK(rows[1].last_error->http_status == 502);
    auto d = s.job_detail(rows[1].id);
    REQUIRE(d);
    REQUIRE(d->job.last_error);
    CHECK(d->job.last_error->code == "boom");
    std::vector<ExportRecord> recs;
    s.export_jobs(std::nullopt, [&](const ExportRecord& r) { recs.push_back(r); });
    REQUIRE(recs.size() == 2);
    CHECK(recs[1].attempts == rows[1].attempts);
    CHECK(recs[1].last_error->message == "bad gateway");
}
