// Store: claims, leases, completions, cancel and retry.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {
const std::string kOwner = "host-1";

std::string req_state(Store& s, std::int64_t id) {
    return sql_text(s, "SELECT state FROM requests WHERE id = " + std::to_string(id));
}
std::string job_state(Store& s, std::int64_t id) {
    return sql_text(s, "SELECT state FROM jobs WHERE id = " + std::to_string(id));
}
}  // namespace

TEST_CASE("claim: priority first, then oldest; limit; provider; not_before") {
    Store s(":memory:");
    auto r = s.enqueue("night", {item("low", 1, 1, "k-low", 0), item("high", 1, 1, "", 5),
                                 item("other", 1, 1, "", 9, "p2"), item("low2", 1, 1, "", 0),
                                 item("high2", 1, 1, "", 5)});
    s.db().exec("UPDATE requests SET not_before = 200 WHERE job_id = " +
                std::to_string(r.job_ids[4]));

    auto c = s.claim("p1", kOwner, 2, 100, 60);
    REQUIRE(c.size() == 1 + 1);
    CHECK(c[0].prompt == "high");
    CHECK(c[1].prompt == "low");
    CHECK(c[1].key == "k-low");
    CHECK(c[1].batch == "night");
    CHECK(c[1].model == "gpt-image-1");
    CHECK(c[1].provider == "p1");
    CHECK(c[1].params_json == R"({"size":"1024x1024"})");
    CHECK(c[1].attempt_no == 1);
    CHECK(c[1].n == 1);
    CHECK(job_state(s, c[0].job_id) == "running");
    CHECK(sql_int(s, "SELECT lease_until FROM requests WHERE id = " +
                         std::to_string(c[0].request_id)) == 160);

    auto rest = s.claim("p1", kOwner, 10, 100, 60);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].prompt == "low2");  // high2 waits for not_before
    CHECK(s.claim("p1", kOwner, 10, 100, 60).empty());
    auto later = s.claim("p1", kOwner, 10, 200, 60);
    REQUIRE(later.size() == 1);
    CHECK(later[0].prompt == "high2");
    CHECK(job_state(s, r.job_ids[2]) == "queued");  // other provider untouched
}

TEST_CASE("claim: two daemons on one database never get the same request") {
    TempDir dir;
    Store a(dir.file("q.db"));
    Store b(dir.file("q.db"));
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 20; ++i) items.push_back(item("p" + std::to_string(i), 2, 1));
    a.enqueue("b", items);
    std::set<std::int64_t> seen;
    for (int round = 0; round < 10; ++round) {
        auto& store = round % 2 ? a : b;
        for (auto& r : store.claim("p1", round % 2 ? "A" : "B", 3, 100, 60))
            CHECK(seen.insert(r.request_id).second);
    }
    CHECK(seen.size() == 30);
}

TEST_CASE("apply: a success records outputs, the attempt and finishes the job") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("cat", 2, 2)});
    auto c = s.claim("p1", kOwner, 1, 100, 60);
    REQUIRE(c.size() == 1);
    std::vector<Completion> done{completion(c[0], kOwner, 2)};
    done[0].usage_json = R"({"total_tokens":10})";
    CHECK(s.apply(done) == std::vector<bool>{true});

    auto d = s.job_detail(r.job_ids[0]);
    REQUIRE(d);
    CHECK(d->job.state == "succeeded");
    CHECK(d->job.images_done == 2);
    CHECK(d->job.finished_at > 0);
    CHECK(d->job.error.empty());
    CHECK(d->requests[0].state == "succeeded");
    CHECK(d->requests[0].images_done == 2);
    CHECK(d->requests[0].attempts == 1);
    REQUIRE(d->attempts.size() == 1);
    CHECK(d->attempts[0].outcome == "ok");
    CHECK(d->attempts[0].images == 2);
    CHECK(d->attempts[0].duration_ms == 1500);
    CHECK(d->attempts[0].usage_json == R"({"total_tokens":10})");
    REQUIRE(d->outputs.size() == 2);
    CHECK(d->outputs[1].idx == 1);
    CHECK(d->outputs[1].path == "out/b/" + std::to_string(d->job.id) + "-1.png");
    CHECK(d->outputs[1].width == 1024);
    CHECK(sql_text(s, "SELECT lease_owner FROM requests") == "NULL");
    CHECK(s.idle());

    // The same completion again is stale: nothing is written twice.
    CHECK(s.apply(done) == std::vector<bool>{false});
    CHECK(sql_int(s, "SELECT COUNT(*) FROM outputs") == 2);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM attempts") == 1);
}

TEST_CASE("apply: a partial answer keeps its images and the top-up asks for the rest") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("cat", 3, 3)});
    auto c = s.claim("p1", kOwner, 1, 100, 60);
    std::vector<Completion> v{completion(c[0], kOwner, 1, Next::retry)};
    v[0].error = error(ErrorClass::partial, "2 images filtered");
    v[0].not_before = 150;
    v[0].count_attempt = false;
    v[0].count_moderation = true;
    CHECK(s.apply(v)[0]);

    CHECK(req_state(s, c[0].request_id) == "queued");
    CHECK(job_state(s, r.job_ids[0]) == "queued");
    CHECK(s.claim("p1", kOwner, 1, 149, 60).empty());
    auto again = s.claim("p1", kOwner, 1, 150, 60);
    REQUIRE(again.size() == 1);
    CHECK(again[0].images_done == 1);
    CHECK(again[0].moderation == 1);
    CHECK(again[0].attempts == 0);
    CHECK(again[0].attempt_no == 2);

    std::vector<Completion> v2{completion(again[0], kOwner, 2)};
    CHECK(v2[0].outputs[0].idx == 1);
    CHECK(s.apply(v2)[0]);
    auto d = s.job_detail(r.job_ids[0]);
    CHECK(d->job.state == "succeeded");
    CHECK(d->job.images_done == 3);
    CHECK(d->outputs.size() == 3);
    REQUIRE(d->attempts.size() == 2);
    CHECK(d->attempts[0].outcome == "partial");
    CHECK(d->attempts[0].error_class == "partial");
    CHECK(d->attempts[1].outcome == "ok");
}

TEST_CASE("apply: a completion from another owner is stale") {
    Store s(":memory:");
    s.enqueue("b", {item("cat")});
    auto c = s.claim("p1", kOwner, 1, 100, 60);
    std::vector<Completion> v{completion(c[0], "someone-else", 1)};
    bool called = false;
    CHECK(s.apply(v, [&](Completion&) { called = true; })[0] == false);
    CHECK_FALSE(called);
    CHECK(req_state(s, c[0].request_id) == "running");
    CHECK(sql_int(s, "SELECT COUNT(*) FROM outputs") == 0);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM attempts") == 0);
}

TEST_CASE("apply: a late answer of an old attempt does not overwrite the newer one") {
    Store s(":memory:");
    s.enqueue("b", {item("cat")});
    auto first = s.claim("p1", kOwner, 1, 100, 60);
    CHECK(s.requeue_expired(200) == 1);
    auto second = s.claim("p1", kOwner, 1, 200, 60);  // same owner, e.g. after a restart
    REQUIRE(second.size() == 1);
    CHECK(second[0].attempt_no == 2);

    std::vector<Completion> late{completion(first[0], kOwner, 1)};
    CHECK(s.apply(late)[0] == false);
    CHECK(req_state(s, first[0].request_id) == "running");
    CHECK(sql_int(s, "SELECT COUNT(*) FROM outputs") == 0);

    std::vector<Completion> current{completion(second[0], kOwner, 1)};
    CHECK(s.apply(current)[0]);
    CHECK(req_state(s, first[0].request_id) == "succeeded");
}

TEST_CASE("apply: fail and block end requests; the job takes the worst outcome") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("a", 3, 1), item("b", 2, 1), item("c", 1, 1)});
    auto c = s.claim("p1", kOwner, 10, 100, 60);
    REQUIRE(c.size() == 6);
    std::vector<Completion> v;
    v.push_back(completion(c[0], kOwner, 1));               // a: ok
    v.push_back(completion(c[1], kOwner, 0, Next::block));  // a: blocked
    v.back().error =
        error(ErrorClass::moderation, "blocked by safety system", 400, "moderation_blocked");
    v.push_back(completion(c[2], kOwner, 0, Next::fail));  // a: failed
    v.back().error = error(ErrorClass::invalid_request, "bad size", 400);
    v.push_back(completion(c[3], kOwner, 1));               // b: ok
    v.push_back(completion(c[4], kOwner, 0, Next::block));  // b: blocked
    v.back().error = error(ErrorClass::moderation, "rai filtered");
    v.push_back(completion(c[5], kOwner, 0, Next::done));  // c: no image, no error
    CHECK(s.apply(v) == std::vector<bool>(6, true));

    auto jobs = s.list_jobs({});
    CHECK(jobs[0].state == "failed");
    CHECK(jobs[0].error == "bad size");
    CHECK(jobs[0].images_done == 1);
    CHECK(jobs[1].state == "blocked");
    CHECK(jobs[1].error == "rai filtered");
    CHECK(jobs[2].state == "failed");
    CHECK(jobs[2].error == "produced 0 of 1 images");
    CHECK(sql_text(s, "SELECT last_error_code FROM requests WHERE id = " +
                          std::to_string(c[1].request_id)) == "moderation_blocked");
    CHECK(sql_int(s, "SELECT last_http_status FROM requests WHERE id = " +
                         std::to_string(c[2].request_id)) == 400);
    CHECK(s.idle());
    (void)r;
}

TEST_CASE("apply: a place_files failure rolls the whole group back") {
    Store s(":memory:");
    s.enqueue("b", {item("cat", 2, 2), item("dog", 1, 1)});
    auto c = s.claim("p1", kOwner, 2, 100, 60);
    REQUIRE(c.size() == 2);
    std::vector<Completion> v{completion(c[0], kOwner, 1), completion(c[1], kOwner, 2)};
    int calls = 0;
    auto disk_full = [&calls](Completion&) {
        if (++calls == 2) throw std::runtime_error("rename: No space left on device");
    };
    CHECK_THROWS_WITH(s.apply(v, disk_full), "rename: No space left on device");
    // Nothing of the group was recorded: both requests are still running under the lease.
    CHECK(req_state(s, c[0].request_id) == "running");
    CHECK(req_state(s, c[1].request_id) == "running");
    CHECK(sql_int(s, "SELECT COUNT(*) FROM outputs") == 0);
    CHECK(sql_int(s, "SELECT COUNT(*) FROM attempts") == 0);
    // The same completions apply once placing works.
    CHECK(s.apply(v) == std::vector<bool>{true, true});
    CHECK(sql_int(s, "SELECT COUNT(*) FROM outputs") == 3);
}

TEST_CASE("apply: a request given back at shutdown is queued at once without an attempt") {
    Store s(":memory:");
    s.enqueue("b", {item("cat")});
    auto c = s.claim("p1", kOwner, 1, 100, 60);
    std::vector<Completion> v{completion(c[0], kOwner, 0, Next::returned)};
    v[0].count_attempt = false;
    CHECK(s.apply(v)[0]);
    CHECK(req_state(s, c[0].request_id) == "queued");
    CHECK(sql_int(s, "SELECT attempts FROM requests") == 0);
    CHECK(sql_text(s, "SELECT outcome FROM attempts") == "returned");
    CHECK(s.claim("p1", kOwner, 1, unix_now() + 1, 60).size() == 1);
}

TEST_CASE("renew_leases: only the attempts listed, at their attempt number") {
    Store s(":memory:");
    s.enqueue("b", {item("a"), item("b"), item("c")});
    auto c = s.claim("p1", kOwner, 3, 100, 60);  // leases until 160
    REQUIRE(c.size() == 3);
    std::vector<LeasedAttempt> tracked{{c[0].request_id, c[0].attempt_no},
                                       {c[1].request_id, c[1].attempt_no + 1}};
    // c[1] at another attempt number and c[2] (not listed) are not renewed.
    CHECK(s.renew_leases(kOwner, tracked, 500) == 1);
    CHECK(s.requeue_expired(200) == 2);
    CHECK(req_state(s, c[0].request_id) == "running");
    CHECK(req_state(s, c[1].request_id) == "queued");
    CHECK(req_state(s, c[2].request_id) == "queued");
}

TEST_CASE("requeue_expired: lost attempts are recorded, counted and queued again") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("a"), item("b")});
    auto c = s.claim("p1", "dead", 2, 100, 60);
    std::vector<LeasedAttempt> both{{c[0].request_id, c[0].attempt_no},
                                    {c[1].request_id, c[1].attempt_no}};
    CHECK(s.renew_leases("dead", both, 300) == 2);
    CHECK(s.renew_leases("other", both, 400) == 0);
    CHECK(s.requeue_expired(299) == 0);
    CHECK(s.requeue_expired(301) == 2);
    CHECK(req_state(s, c[0].request_id) == "queued");
    CHECK(job_state(s, r.job_ids[0]) == "queued");
    CHECK(sql_int(s, "SELECT attempts FROM requests WHERE id = 1") == 1);
    auto d = s.job_detail(r.job_ids[0]);
    REQUIRE(d->attempts.size() == 1);
    CHECK(d->attempts[0].outcome == "error");
    CHECK(d->attempts[0].error_class == "network");
    CHECK(d->attempts[0].error_code == "lease_expired");
    CHECK(d->attempts[0].message ==
          "the daemon holding the lease stopped before the answer was recorded");
    CHECK(s.requeue_expired(1000) == 0);
}

TEST_CASE("requeue_owner: a dead daemon's requests come back before their leases expire") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("a"), item("b"), item("c")});
    auto dead = s.claim("p1", "host:1:dead", 2, 100, 600);
    auto alive = s.claim("p1", "host:2:alive", 1, 100, 600);
    REQUIRE(dead.size() == 2);
    REQUIRE(alive.size() == 1);
    auto owners = s.lease_owners();
    std::sort(owners.begin(), owners.end());
    CHECK(owners == std::vector<std::string>{"host:1:dead", "host:2:alive"});

    CHECK(s.requeue_owner("host:1:dead", 150) == 2);  // leases run to 700
    CHECK(req_state(s, dead[0].request_id) == "queued");
    CHECK(req_state(s, dead[1].request_id) == "queued");
    CHECK(req_state(s, alive[0].request_id) == "running");
    CHECK(s.lease_owners() == std::vector<std::string>{"host:2:alive"});
    auto d = s.job_detail(r.job_ids[0]);
    REQUIRE(d->attempts.size() == 1);
    CHECK(d->attempts[0].error_code == "lease_expired");
    CHECK(sql_int(s, "SELECT attempts FROM requests WHERE id = 1") == 1);

    // A late answer of the dead owner's attempt is refused.
    std::vector<Completion> late{completion(dead[0], "host:1:dead", 1)};
    CHECK(s.apply(late)[0] == false);
    CHECK(s.requeue_owner("host:1:dead", 160) == 0);
}

TEST_CASE("cancel: queued requests stop, running ones finish and keep their images") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("a", 3, 1), item("b")});
    auto c = s.claim("p1", kOwner, 2, 100, 60);  // a#0 and a#1
    REQUIRE(c.size() == 2);
    JobFilter f;
    f.ids = {r.job_ids[0]};
    CHECK(s.cancel(f) == 1);
    CHECK(job_state(s, r.job_ids[0]) == "cancelled");
    CHECK(job_state(s, r.job_ids[1]) == "queued");
    CHECK(sql_text(s, "SELECT state FROM requests WHERE job_id = 1 AND seq = 2") == "cancelled");

    std::vector<Completion> v{completion(c[0], kOwner, 1),
                              completion(c[1], kOwner, 0, Next::retry)};
    CHECK(s.apply(v) == std::vector<bool>{true, true});
    CHECK(req_state(s, c[0].request_id) == "succeeded");
    CHECK(req_state(s, c[1].request_id) == "cancelled");
    auto d = s.job_detail(r.job_ids[0]);
    CHECK(d->job.state == "cancelled");
    CHECK(d->job.images_done == 1);
    CHECK(d->outputs.size() == 1);

    CHECK(s.cancel(f) == 0);   // already final
    CHECK(s.cancel({}) == 1);  // everything left: job b
    CHECK(s.idle());
}

TEST_CASE("retry: failed, blocked and cancelled jobs are queued again with fresh counters") {
    Store s(":memory:");
    auto r = s.enqueue("b", {item("a", 2, 1), item("b"), item("c")});
    auto c = s.claim("p1", kOwner, 3, 100, 60);
    std::vector<Completion> v{completion(c[0], kOwner, 1), completion(c[1], kOwner, 0, Next::fail),
                              completion(c[2], kOwner, 1)};
    v[1].error = error(ErrorClass::server, "502 bad gateway", 502);
    s.apply(v);
    JobFilter last;
    last.ids = {r.job_ids[2]};
    s.cancel(last);
    CHECK(job_state(s, r.job_ids[0]) == "failed");

    JobFilter failed;
    failed.state = JobState::failed;
    CHECK(s.retry(failed) == 1);
    auto d = s.job_detail(r.job_ids[0]);
    CHECK(d->job.state == "queued");
    CHECK(d->job.error.empty());
    CHECK(d->job.finished_at == 0);
    CHECK(d->requests[0].state == "succeeded");
    CHECK(d->requests[1].state == "queued");
    CHECK(d->requests[1].attempts == 0);
    CHECK(sql_text(s, "SELECT last_error_class FROM requests WHERE id = " +
                          std::to_string(c[1].request_id)) == "NULL");

    CHECK(s.retry({}) == 1);  // the cancelled job c
    CHECK(job_state(s, r.job_ids[2]) == "queued");
    CHECK(s.claim("p1", kOwner, 10, 100, 60).size() == 2);
    CHECK(s.retry({}) == 0);
}

TEST_CASE("apply: timeouts and provider failures have their own counters") {
    Store s(":memory:");
    s.enqueue("b", {item("cat", 1, 1)});
    auto c = s.claim("p1", kOwner, 1, 100, 60);
    REQUIRE(c.size() == 1);
    CHECK(c[0].timeouts == 0);
    CHECK(c[0].provider_failures == 0);
    std::vector<Completion> v{completion(c[0], kOwner, 0, Next::retry)};
    v[0].error = error(ErrorClass::timeout, "response deadline of 300 s passed");
    v[0].not_before = 100;
    v[0].count_attempt = false;
    v[0].count_timeout = true;
    CHECK(s.apply(v)[0]);
    auto again = s.claim("p1", kOwner, 1, 100, 60);
    REQUIRE(again.size() == 1);
    CHECK(again[0].timeouts == 1);
    CHECK(again[0].attempts == 0);

    std::vector<Completion> v2{completion(again[0], kOwner, 0, Next::retry)};
    v2[0].error = error(ErrorClass::server, "503 Service Temporarily Unavailable");
    v2[0].not_before = 100;
    v2[0].count_attempt = false;
    v2[0].count_provider_failure = true;
    CHECK(s.apply(v2)[0]);
    auto third = s.claim("p1", kOwner, 1, 100, 60);
    REQUIRE(third.size() == 1);
    CHECK(third[0].timeouts == 1);
    CHECK(third[0].provider_failures == 1);
    CHECK(third[0].attempts == 0);
    CHECK(sql_int(s, "SELECT timeouts FROM requests") == 1);
    CHECK(sql_int(s, "SELECT provider_failures FROM requests") == 1);
}

TEST_CASE("unclaim: a claim taken ahead and not started goes back as if never claimed") {
    Store s(":memory:");
    auto r = s.enqueue("ahead", {item("one", 1, 1), item("two", 1, 1), item("three", 1, 1)});
    auto c = s.claim("p1", kOwner, 3, 100, 60);
    REQUIRE(c.size() == 3);
    s.db().exec("UPDATE jobs SET state = 'cancelled' WHERE id = " + std::to_string(r.job_ids[2]));
    // Another owner's lease and a wrong attempt are left alone.
    CHECK(s.unclaim("host-2", {{c[0].request_id, c[0].attempt_no}}, 101) == 0);
    CHECK(s.unclaim(kOwner, {{c[0].request_id, c[0].attempt_no + 1}}, 101) == 0);
    CHECK(req_state(s, c[0].request_id) == "running");

    CHECK(s.unclaim(kOwner,
                    {{c[0].request_id, c[0].attempt_no}, {c[2].request_id, c[2].attempt_no}},
                    101) == 2);
    CHECK(req_state(s, c[0].request_id) == "queued");
    CHECK(job_state(s, c[0].job_id) == "queued");
    CHECK(req_state(s, c[2].request_id) == "cancelled");
    CHECK(req_state(s, c[1].request_id) == "running");
    CHECK(sql_int(s, "SELECT count(*) FROM attempts") == 0);
    CHECK(sql_int(s, "SELECT attempts FROM requests WHERE id = " +
                         std::to_string(c[0].request_id)) == 0);
    auto again = s.claim("p1", kOwner, 3, 102, 60);
    REQUIRE(again.size() == 1);
    CHECK(again[0].request_id == c[0].request_id);
    CHECK(again[0].attempt_no == 1);  // the first real attempt
}
