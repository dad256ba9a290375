// Store: costs recorded per attempt (schema 006), spend by batch / time / run / provider, and
// the projection of what is queued.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "jobs/migrations.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

// Claims every queued request of provider p1 for owner and completes each with the cost
// given by make (images: 1 each).
void run_all(Store& s, const std::string& owner, double finished_at,
             const std::function<void(Completion&)>& make, const std::string& provider = "p1") {
    auto claimed = s.claim(provider, owner, 100, 1e12, 60);
    std::vector<Completion> cs;
    for (const auto& r : claimed) {
        auto c = completion(r, owner, 1);
        c.finished_at = finished_at;
        c.started_at = finished_at - 1;
        make(c);
        cs.push_back(std::move(c));
    }
    s.apply(cs);
}

// A filter from its fields (unset: not filtered).
SpendFilter filter(std::optional<std::string> batch, std::optional<double> since = {},
                   std::optional<std::string> owner = {},
                   std::optional<std::string> provider = {}) {
    SpendFilter f;
    f.batch = std::move(batch);
    f.since = since;
    f.owner = std::move(owner);
    f.provider = std::move(provider);
    return f;
}

}  // namespace

TEST_CASE("spend: billed attempts' costs, by batch, time, run and provider") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("night", {item("a"), item("b")});
    s.enqueue("day", {item("c", 1, 1, "", 0, "p2")});
    run_all(s, "run-1", 1000, [](Completion& c) {
        c.billed = true;
        c.cost_usd = 0.25;
        c.cost_basis = CostBasis::tokens;
        c.usage = normalize_usage_json(R"({"input_tokens": 10, "output_tokens": 7024})");
        c.usage_json = R"({"input_tokens": 10, "output_tokens": 7024})";
    });
    run_all(
        s, "run-2", 2000,
        [](Completion& c) {
            c.billed = true;
            c.cost_usd = 0.5;
            c.cost_basis = CostBasis::per_image;
        },
        "p2");

    auto all = s.spend({});
    CHECK(all.usd == doctest::Approx(1.0));
    CHECK(all.billed_attempts == 3);
    CHECK(all.unpriced == 0);
    CHECK(s.spend_usd(filter("night")) == doctest::Approx(0.5));
    CHECK(s.spend_usd(filter("day")) == doctest::Approx(0.5));
    CHECK(s.spend_usd(filter("unknown")) == 0);
    CHECK(s.spend_usd(filter({}, 1500.0)) == doctest::Approx(0.5));
    CHECK(s.spend_usd(filter({}, 500.0)) == doctest::Approx(1.0));
    CHECK(s.spend_usd(filter({}, {}, "run-1")) == doctest::Approx(0.5));
    CHECK(s.spend_usd(filter({}, {}, {}, "p2")) == doctest::Approx(0.5));
    CHECK(s.spend_usd(filter("night", 1500.0)) == 0);

    // The columns: usage in one vocabulary, cost, basis, billed, owner.
    CHECK(sql_text(s, "SELECT cost_basis FROM attempts WHERE provider = 'p1' LIMIT 1") == "tokens");
    CHECK(sql_int(s, "SELECT output_image_tokens FROM attempts WHERE provider = 'p1' LIMIT 1") ==
          7024);
    CHECK(sql_int(s, "SELECT input_text_tokens FROM attempts WHERE provider = 'p1' LIMIT 1") == 10);
    CHECK(sql_text(s, "SELECT input_text_tokens FROM attempts WHERE provider = 'p2'") == "NULL");
    CHECK(sql_text(s, "SELECT owner FROM attempts WHERE provider = 'p2'") == "run-2");
    CHECK(sql_int(s, "SELECT billed FROM attempts WHERE provider = 'p2'") == 1);

    // Per batch, provider and model.
    auto rows = s.spend_by({});
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].batch == "day");
    CHECK(rows[0].provider == "p2");
    CHECK(rows[0].model == "gpt-image-1");
    CHECK(rows[0].spend.usd == doctest::Approx(0.5));
    CHECK(rows[1].batch == "night");
    CHECK(rows[1].spend.billed_attempts == 2);
    CHECK(s.spend_by(filter("night")).size() == 1);

    // The job detail shows each attempt's cost.
    auto d = s.job_detail(1);
    REQUIRE(d);
    REQUIRE(d->attempts.size() == 1);
    CHECK(d->attempts[0].billed == true);
    CHECK(*d->attempts[0].cost_usd == doctest::Approx(0.25));
    CHECK(d->attempts[0].cost_basis == "tokens");
}

TEST_CASE("spend: attempts not billed, of unknown cost, or priced at their worst case") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("b", {item("a"), item("b"), item("c"), item("d")});
    int i = 0;
    run_all(s, "o", 100, [&](Completion& c) {
        switch (i++) {
            case 0:  // refused before any work (429): not billed, costs nothing
                c.outputs.clear();
                c.error = error(ErrorClass::rate_limited, "slow down", 429);
                c.next = Next::retry;
                c.billed = false;
                c.cost_usd = 0.0;
                break;
            case 1:  // billed, no price known
                c.billed = true;
                break;
            case 2:  // a timeout: billed, its worst case stands in
                c.outputs.clear();
                c.error = error(ErrorClass::timeout, "deadline", 0);
                c.next = Next::retry;
                c.billed = true;
                c.cost_usd = 0.3;
                c.cost_basis = CostBasis::tokens;
                c.cost_estimated = true;
                break;
            default:  // not known whether billed
                c.cost_usd = 9.0;
                break;
        }
    });
    auto sp = s.spend({});
    CHECK(sp.usd == doctest::Approx(0.3));
    CHECK(sp.billed_attempts == 2);
    CHECK(sp.unpriced == 1);
    CHECK(sp.estimated == 1);
    CHECK(sql_text(s, "SELECT cost_basis FROM attempts WHERE error_class = 'timeout'") ==
          "worst_case");
    CHECK(sql_int(s, "SELECT billed FROM attempts WHERE error_class = 'rate_limited'") == 0);
    CHECK(sql_text(s, "SELECT billed FROM attempts WHERE cost_usd = 9") == "NULL");
}

TEST_CASE("queued: the projection of queued requests, grouped and priced once a group") {
    TempDir dir;
    Store s(dir.file("a.db"));
    auto big = item("a long prompt", 3, 1);  // three requests of one image
    big.spec.params["quality"] = "high";
    s.enqueue("night", {big, item("b"), item("c", 2, 2)});
    s.enqueue("day", {item("d", 1, 1, "", 0, "p2")});
    std::vector<QueuedGroup> seen;
    auto pricer = [&](const QueuedGroup& g) {
        seen.push_back(g);
        Projection p;
        if (g.provider == "p2") return p;  // no price
        auto params = boost::json::parse(g.params_json).as_object();
        const bool high = params.contains("quality");
        p.worst = (high ? 1.0 : 0.1) * g.n;
        p.typical = (high ? 0.5 : 0.05) * g.n;
        return p;
    };
    auto q = s.queued_cost({}, pricer);
    CHECK(q.requests == 6);
    CHECK(q.unpriced == 1);
    CHECK(q.worst_usd == doctest::Approx(3 * 1.0 + 0.1 + 0.2));
    CHECK(q.typical_usd == doctest::Approx(3 * 0.5 + 0.05 + 0.1));
    // Three alike requests are one group.
    CHECK(seen.size() == 4);
    for (const auto& g : seen)
        if (g.params_json.find("high") != std::string::npos) {
            CHECK(g.requests == 3);
            CHECK(g.prompt_bytes == 13);
            CHECK(g.model == "gpt-image-1");
        }
    CHECK(s.queued_worst_case_usd(filter("night"), pricer) == doctest::Approx(3.3));
    CHECK(s.queued_worst_case_usd(filter({}, {}, {}, "p2"), pricer) == 0);
    CHECK(s.queued_cost(filter("nope"), pricer).requests == 0);

    // A claimed request leaves the queue; with running = true it still counts (in flight).
    auto claimed = s.claim("p1", "o", 1, 1e12, 60);
    REQUIRE(claimed.size() == 1);
    CHECK(s.queued_cost({}, pricer).requests == 5);
    CHECK(s.queued_cost({}, pricer, true).requests == 6);
    // Once done it is spend, not projection.
    auto c = completion(claimed[0], "o", 1);
    std::vector<Completion> cs{c};
    s.apply(cs);
    CHECK(s.queued_cost({}, pricer, true).requests == 5);
}

TEST_CASE("migration 006: attempts recorded before it that produced images were billed") {
    TempDir dir;
    const auto path = dir.file("old.db");
    {
        SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        for (int v = 0; v < 5; ++v) raw.exec(migrations()[v].sql);
        raw.exec("PRAGMA user_version = 5");
        raw.exec("INSERT INTO jobs(id, prompt, model, state) VALUES (1, 'p', 'm', 'queued')");
        raw.exec(
            "INSERT INTO requests(id, job_id, seq, first_index, provider, n) "
            "VALUES (1, 1, 0, 0, 'p1', 1)");
        raw.exec(
            "INSERT INTO attempts(request_id, job_id, attempt_no, provider, started_at, "
            "finished_at, duration_ms, outcome, images) VALUES "
            "(1, 1, 1, 'p1', 1, 2, 1000, 'error', 0), (1, 1, 2, 'p1', 3, 4, 1000, 'ok', 1)");
    }
    Store s(path);
    CHECK(s.schema_version() == static_cast<int>(migrations().size()));
    CHECK(sql_text(s,
                   "SELECT group_concat(coalesce(billed, 'NULL')) FROM "
                   "(SELECT billed FROM attempts ORDER BY id)") == "NULL,1");
    // Billed, cost unknown: counted as unpriced, not as spend.
    auto sp = s.spend({});
    CHECK(sp.usd == 0);
    CHECK(sp.unpriced == 1);
}

TEST_CASE("export: a job's cost, and each image's share of its attempt's cost") {
    TempDir dir;
    Store s(dir.file("a.db"));
    s.enqueue("b", {item("two", 2, 2), item("unpriced"), item("never")});
    auto claimed = s.claim("p1", "o", 2, 1e12, 60);
    REQUIRE(claimed.size() == 2);
    std::vector<Completion> cs;
    for (const auto& r : claimed) {
        auto c = completion(r, "o", r.n);
        c.billed = true;
        if (r.n == 2) c.cost_usd = 0.5;
        cs.push_back(std::move(c));
    }
    s.apply(cs);
    std::map<std::string, ExportRecord> jobs;
    s.export_jobs(std::nullopt, [&](const ExportRecord& r) { jobs[r.job.prompt] = r; });
    CHECK(*jobs["two"].cost_usd == doctest::Approx(0.5));
    CHECK(jobs["two"].unpriced == 0);
    CHECK_FALSE(jobs["unpriced"].cost_usd);
    CHECK(jobs["unpriced"].unpriced == 1);
    CHECK(*jobs["never"].cost_usd == 0);  // nothing billed yet
    int seen = 0;
    s.export_images(std::nullopt, [&](const ImageRecord& r) {
        ++seen;
        if (r.job.prompt == "two")
            CHECK(*r.cost_usd == doctest::Approx(0.25));
        else
            CHECK_FALSE(r.cost_usd);
    });
    CHECK(seen == 3);
}
