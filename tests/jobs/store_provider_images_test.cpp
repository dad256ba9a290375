// Store: images counted per provider (status, metrics) under the provider of the attempt that
// produced them, also when batch_retry_direct moved their request to another provider.
#include <doctest/doctest.h>

#include <map>

#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

const std::string kOwner = "host-1";

// One job of 4 images in one request on the vendor batch provider "vb": its line comes back
// with 2 images and a retry that batch_retry_direct sends to "direct". Returns the store's
// batch id of the vendor batch.
std::int64_t partial_line_rerouted(Store& s) {
    s.enqueue("night", {item("kite", 4, 4, "", 0, "vb")});
    auto opened = s.open_vendor_batch("vb", 10, unix_now(), 86400);
    REQUIRE(opened);
    REQUIRE(opened->requests.size() == 1);
    const auto vb = opened->batch.id;
    auto c = completion(opened->requests[0], vendor_batch_owner(vb), 2, Next::retry);
    // The line's answer was read a moment before it is recorded.
    c.finished_at = unix_now() - 5;
    c.started_at = c.finished_at - 600;
    c.error = error(ErrorClass::partial, "produced 2 of 4 images");
    c.requeue_provider = "direct";
    std::vector<Completion> v{c};
    REQUIRE(s.apply(v) == std::vector<bool>{true});
    REQUIRE(sql_text(s, "SELECT provider FROM requests") == "direct");
    REQUIRE(sql_text(s, "SELECT provider FROM jobs") == "direct");
    return vb;
}

// The rest of the job's images on "direct", the attempt finishing at finished_at.
void finish_direct(Store& s, double finished_at) {
    auto claimed = s.claim("direct", kOwner, 10, 1e12, 60);
    REQUIRE(claimed.size() == 1);
    auto c = completion(claimed[0], kOwner, 2);
    c.started_at = finished_at - 1;
    c.finished_at = finished_at;
    std::vector<Completion> v{c};
    REQUIRE(s.apply(v) == std::vector<bool>{true});
    REQUIRE(sql_text(s, "SELECT state FROM jobs") == "succeeded");
}

std::string plan_of(Store& s, std::string_view sql) {
    SQLite::Statement q(s.db(), "EXPLAIN QUERY PLAN " + std::string(sql));
    std::string plan;
    while (q.executeStep()) plan += q.getColumn(3).getString() + "\n";
    return plan;
}

}  // namespace

TEST_CASE("stats: a rerouted batch line's images count under the provider that made them") {
    TempDir dir;
    Store s(dir.file("a.db"));
    partial_line_rerouted(s);
    finish_direct(s, unix_now());
    const double now = unix_now();

    for (const auto& batch : {std::optional<std::string>{}, std::optional<std::string>{"night"}}) {
        CAPTURE(batch.value_or("(all)"));
        auto st = s.stats(batch, now);
        CHECK(st.providers["vb"].images_last_min == 2);
        CHECK(st.providers["direct"].images_last_min == 2);
        // Queued and in flight stay with the provider that serves the request now.
        CHECK(st.providers["vb"].queued == 0);
        CHECK(st.providers["direct"].queued == 0);
    }
}

TEST_CASE("export and spend keep a rerouted batch line's images and cost with its provider") {
    TempDir dir;
    Store s(dir.file("a.db"));
    partial_line_rerouted(s);
    finish_direct(s, unix_now());
    // The images and the provider of each (export's and the report's per-provider counts).
    std::map<int, std::string> by_idx;
    s.export_images(std::string("night"),
                    [&](const ImageRecord& r) { by_idx[r.image.idx] = r.provider; });
    CHECK(by_idx == std::map<int, std::string>{{0, "vb"}, {1, "vb"}, {2, "direct"}, {3, "direct"}});
    // Spend by provider: each attempt where it was made.
    s.db().exec(
        "UPDATE attempts SET billed = 1, cost_usd = CASE provider WHEN 'vb' THEN 0.5 "
        "ELSE 2 END");
    std::map<std::string, double> spend;
    for (const auto& row : s.spend_by({})) spend[row.provider] += row.spend.usd;
    CHECK(spend == std::map<std::string, double>{{"direct", 2.0}, {"vb", 0.5}});
}

TEST_CASE("stats: an attempt that finished ahead of the recording clock owns its images") {
    // The daemon's clock read when the answer came (finished_at) may be ahead of the one read
    // when the images are recorded (a clock stepped back in between): the attempt is recorded
    // as finished no later than its images, so they stay its own.
    TempDir dir;
    Store s(dir.file("a.db"));
    partial_line_rerouted(s);
    finish_direct(s, unix_now() + 3600);
    // The direct attempt's images are idx 2 and 3.
    CHECK(sql_int(s,
                  "SELECT COUNT(*) FROM attempts a JOIN outputs o ON o.request_id = "
                  "a.request_id AND o.idx >= 2 WHERE a.provider = 'direct' "
                  "AND a.finished_at > o.created_at") == 0);

    auto st = s.stats(std::nullopt, unix_now());
    CHECK(st.providers["vb"].images_last_min == 2);
    CHECK(st.providers["direct"].images_last_min == 2);
}

TEST_CASE("stats: an output without a recorded attempt counts under its request's provider") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("b", {item("x", 1, 1, "", 0, "p1")});
    // Written by another program: no attempt row.
    s.db().exec(
        "INSERT INTO outputs(job_id, request_id, idx, path, bytes, sha256, mime) "
        "SELECT job_id, id, 0, 'o.png', 1, 'ab', 'image/png' FROM requests");
    auto st = s.stats(std::nullopt, unix_now());
    CHECK(st.providers["p1"].images_last_min == 1);
}

TEST_CASE(
    "stats: recent images, by provider or not, and the first one's start, are read through indexes "
    "by time") {
    TempDir dir;
    Store s(dir.file("a.db"));
    std::vector<EnqueueItem> items;
    for (int i = 0; i < 50; ++i) items.push_back(item("x" + std::to_string(i), 2, 1));
    s.enqueue("b", items);
    auto claimed = s.claim("p1", kOwner, 100, 1e12, 60);
    std::vector<Completion> v;
    for (const auto& r : claimed) v.push_back(completion(r, kOwner, 1));
    s.apply(v);
    // Without statistics (as databases usually are) and with them.
    for (bool analyzed : {false, true}) {
        if (analyzed) s.db().exec("ANALYZE");
        for (bool batch : {false, true}) {
            const auto plan = plan_of(s, recent_images_by_provider_sql(batch));
            CAPTURE(analyzed);
            CAPTURE(batch);
            INFO(plan);
            CHECK(plan.find("INDEX outputs_created (created_at>?)") != std::string::npos);
            CHECK(plan.find("SCAN ") == std::string::npos);
            CHECK(plan.find("INDEX attempts_request (request_id=?)") != std::string::npos);
            // Not by the batch's jobs: a batch may have millions.
            CHECK(plan.find("jobs_batch_state") == std::string::npos);

            const auto rate = plan_of(s, recent_images_sql(batch));
            INFO(rate);
            CHECK(rate.find("INDEX outputs_created (created_at>?)") != std::string::npos);
            CHECK(rate.find("SCAN ") == std::string::npos);
            CHECK(rate.find("jobs_batch_state") == std::string::npos);

            const auto first = plan_of(s, first_recent_start_sql(batch));
            INFO(first);
            CHECK(first.find("INDEX outputs_created (created_at>?)") != std::string::npos);
            CHECK(first.find("SCAN ") == std::string::npos);
            CHECK(first.find("TEMP B-TREE") == std::string::npos);  // ordered by the index
            CHECK(first.find("jobs_batch_state") == std::string::npos);
        }
    }
}
