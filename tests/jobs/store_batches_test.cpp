// Vendor batches in the store: recorded with their requests before anything is created at the
// vendor, lines recorded once, leases that outlive a daemon, cancel detection.
#include <doctest/doctest.h>

#include "jobs/store.hpp"
#include "store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

Completion done_line(const ClaimedRequest& r, std::int64_t vb, int idx) {
    Completion c;
    c.request_id = r.request_id;
    c.attempt_no = r.attempt_no;
    c.owner = vendor_batch_owner(vb);
    c.outputs.push_back(output(idx));
    c.next = Next::done;
    c.count_attempt = true;
    return c;
}

std::int64_t count(Store& st, const std::string& sql) {
    return st.db().execAndGet(sql).getInt64();
}

}  // namespace

TEST_CASE("custom_id and owner names read back") {
    std::int64_t r = 0;
    int a = 0;
    CHECK(custom_id(12, 3) == "r12-a3");
    CHECK(parse_custom_id("r12-a3", r, a));
    CHECK(r == 12);
    CHECK(a == 3);
    CHECK_FALSE(parse_custom_id("r12-a", r, a));
    CHECK_FALSE(parse_custom_id("x12-a3", r, a));
    CHECK_FALSE(parse_custom_id("r-a3", r, a));
    CHECK_FALSE(parse_custom_id("r12-a3x", r, a));
    CHECK(vendor_batch_of_owner(vendor_batch_owner(7)) == 7);
    CHECK_FALSE(vendor_batch_of_owner("host:12:abcd"));
    CHECK_FALSE(vendor_batch_of_owner("vbatch:"));
}

TEST_CASE("a vendor batch's lines carry their requests' counters, as a claim does") {
    TempDir dir;
    Store st(dir.file("t.db"));
    st.enqueue("b", {item("p0", 1, 1, "", 7)});
    st.db().exec("UPDATE requests SET timeouts = 1, provider_failures = 2, attempts = 3");
    auto opened = st.open_vendor_batch("p1", 3, unix_now(), 86400);
    REQUIRE(opened);
    REQUIRE(opened->requests.size() == 1);
    CHECK(opened->requests[0].attempts == 3);
    CHECK(opened->requests[0].timeouts == 1);
    CHECK(opened->requests[0].provider_failures == 2);
    CHECK(opened->requests[0].provider == "p1");
    auto lines = st.vendor_batch_lines(opened->batch.id, 0, 10);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].timeouts == 1);
    CHECK(lines[0].provider_failures == 2);
}

TEST_CASE("a vendor batch is recorded with its requests before it exists at the vendor") {
    TempDir dir;
    Store st(dir.file("t.db"));
    REQUIRE(st.database_instance().size() == 16);
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 5; ++i) items.push_back(item("p" + std::to_string(i)));
    items.push_back(item("other", 1, 1, "", 0, "p2"));
    st.enqueue("b", items);

    auto opened = st.open_vendor_batch("p1", 3, unix_now(), 86400);
    REQUIRE(opened);
    CHECK(opened->batch.state == "preparing");
    CHECK(opened->batch.chunk == st.database_instance() + "-" + std::to_string(opened->batch.id));
    CHECK(opened->batch.requests == 3);
    REQUIRE(opened->requests.size() == 3);
    CHECK(opened->requests[0].prompt == "p0");
    CHECK(opened->requests[0].batch == "b");
    CHECK(opened->requests[0].attempt_no == 1);
    CHECK(count(st, "SELECT count(*) FROM vendor_batch_requests") == 3);
    CHECK(count(st, "SELECT count(*) FROM requests WHERE lease_owner = 'vbatch:" +
                        std::to_string(opened->batch.id) + "'") == 3);

    // A second chunk takes the other two; no request is in two vendor batches.
    auto second = st.open_vendor_batch("p1", 10, unix_now(), 86400);
    REQUIRE(second);
    CHECK(second->requests.size() == 2);
    CHECK(count(st, "SELECT count(DISTINCT request_id) FROM vendor_batch_requests") == 5);
    CHECK_FALSE(st.open_vendor_batch("p1", 10, unix_now(), 86400));
    CHECK(st.open_vendor_batches("p1").size() == 2);
    CHECK(st.open_vendor_batches("p2").empty());
    CHECK(st.open_vendor_batches().size() == 2);

    // A daemon's restart does not return them (their owner is no daemon), nor does time
    // short of the lease.
    CHECK(st.requeue_expired(unix_now() + 3600) == 0);
    CHECK(st.lease_owners().size() == 2);
}

TEST_CASE("lines over the byte limit go back to the queue unmapped") {
    TempDir dir;
    Store st(dir.file("t.db"));
    st.enqueue("b", {item("a"), item("b"), item("c")});
    auto opened = st.open_vendor_batch("p1", 3, unix_now(), 86400);
    REQUIRE(opened);
    const auto id = opened->batch.id;
    st.drop_from_vendor_batch(id, {{opened->requests[2].request_id, 1}}, unix_now());
    CHECK(st.vendor_batch(id)->requests == 2);
    CHECK(count(st, "SELECT count(*) FROM requests WHERE state = 'queued' AND attempt_no = 0") ==
          1);
    CHECK(st.vendor_batch_lines(id, 0, 100).size() == 2);
}

TEST_CASE("a line is recorded once; the open lines shrink as results are recorded") {
    TempDir dir;
    Store st(dir.file("t.db"));
    st.enqueue("b", {item("a"), item("b"), item("c")});
    auto opened = st.open_vendor_batch("p1", 3, unix_now(), 86400);
    REQUIRE(opened);
    const auto id = opened->batch.id;
    auto lines = st.vendor_batch_lines(id, 0, 100);
    REQUIRE(lines.size() == 3);
    CHECK(lines[1].prompt == "b");
    CHECK(st.vendor_batch_lines(id, lines[0].request_id, 1).size() == 1);

    std::vector<Completion> first{done_line(lines[0], id, 0)};
    CHECK(st.apply(first) == std::vector<bool>{true});
    // The same line again (a restart applying the output a second time): stale.
    std::vector<Completion> again{done_line(lines[0], id, 0)};
    CHECK(st.apply(again) == std::vector<bool>{false});
    CHECK(count(st, "SELECT count(*) FROM outputs") == 1);
    CHECK(count(st, "SELECT count(*) FROM attempts") == 1);
    CHECK(st.vendor_batch_lines(id, 0, 100).size() == 2);
    CHECK(st.vendor_batch_lines(id, {lines[0].request_id, lines[2].request_id}).size() == 1);

    // The rest returned (an expired batch): queued again, no attempt used.
    std::vector<Completion> back;
    for (std::size_t i = 1; i < 3; ++i) {
        Completion c;
        c.request_id = lines[i].request_id;
        c.attempt_no = lines[i].attempt_no;
        c.owner = vendor_batch_owner(id);
        c.next = Next::returned;
        back.push_back(c);
    }
    st.apply(back);
    CHECK(st.vendor_batch_lines(id, 0, 100).empty());
    CHECK(count(st, "SELECT count(*) FROM requests WHERE state = 'queued' AND attempts = 0") == 2);

    auto row = *st.vendor_batch(id);
    row.state = "done";
    row.vendor_id = "batch_1";
    row.applied = 3;
    st.update_vendor_batch(row);
    auto back_row = st.vendor_batch(id);
    CHECK(back_row->state == "done");
    CHECK(back_row->vendor_id == "batch_1");
    CHECK(back_row->finished_at > 0);
    CHECK(st.open_vendor_batches().empty());
    auto per_attempt = st.job_vendor_batches(lines[0].job_id);
    REQUIRE(per_attempt.size() == 1);
    CHECK(per_attempt[0].vendor_id == "batch_1");
}

TEST_CASE("a vendor batch is cancelled only when every open line's job is") {
    TempDir dir;
    Store st(dir.file("t.db"));
    auto res = st.enqueue("b", {item("a"), item("b")});
    auto opened = st.open_vendor_batch("p1", 2, unix_now(), 86400);
    REQUIRE(opened);
    const auto id = opened->batch.id;
    CHECK_FALSE(st.vendor_batch_cancelled(id));
    JobFilter one;
    one.ids = {res.job_ids[0]};
    CHECK(st.cancel(one) == 1);
    CHECK_FALSE(st.vendor_batch_cancelled(id));
    JobFilter all;
    all.batch = "b";
    st.cancel(all);
    CHECK(st.vendor_batch_cancelled(id));
}
