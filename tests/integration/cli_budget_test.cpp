// enqueue --budget on the command line (README "Budgets"): validation, set, change and clear
// messages, --json, the file-less form, --dry-run saying whether the estimate fits the batch
// budget, and status --batch showing it.
#include <filesystem>

#include "tests/integration/budget_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// A provider billing 0.10 USD a call (no daemon runs in these tests).
DaemonEnv priced_env(const std::string& extra_top = "") {
    return DaemonEnv({provider_json("p", "openai", "http://127.0.0.1:9/v1", {"gpt-image-2"},
                                    R"("prices": {"per_call": 0.10})")},
                     fast_retry(), 10, extra_top);
}

}  // namespace

TEST_CASE("enqueue --budget: a bad value is a usage error naming the option; nothing stored") {
    DaemonEnv env = priced_env();
    for (const std::string bad : {"-1", "abc", "inf", "nan", "", "1.5usd", "0x10"}) {
        RunResult r =
            env.cli({"enqueue", "-", "--batch", "b", "--budget", bad}, lighthouse_jobs("j", 1));
        INFO("value '" << bad << "': " << r.err);
        CHECK(r.code == 2);
        CHECK(has(r.err, "--budget: must be a number of USD >= 0"));
        CHECK(has(r.err, "got '" + bad + "'"));
    }
    // Stopped before the database was opened.
    CHECK_FALSE(std::filesystem::exists(env.db));
}

TEST_CASE("enqueue --budget: set on a new batch, changed, unchanged, cleared, --json") {
    DaemonEnv env = priced_env(R"("budget": {"max_usd_per_batch": 3})");
    RunResult r =
        env.cli({"enqueue", "-", "--batch", "night", "--budget", "5"}, lighthouse_jobs("a", 2));
    REQUIRE(r.code == 0);
    CHECK(has(r.out, "batch night: 2 jobs enqueued"));
    CHECK(has(r.out, "batch night: budget set to $5.00\n"));
    CHECK(env.value("SELECT max_usd FROM batches WHERE name = 'night'") == "5.0");

    r = env.cli({"enqueue", "-", "--batch", "night", "--budget", "2.5"}, lighthouse_jobs("b", 1));
    REQUIRE(r.code == 0);
    CHECK(has(r.out, "batch night: budget changed from $5.00 to $2.50\n"));
    // Only duplicates: the existing batch still takes the new budget.
    r = env.cli({"enqueue", "-", "--batch", "night", "--budget", "0"}, lighthouse_jobs("b", 1));
    REQUIRE(r.code == 0);
    CHECK(has(r.out,
              "budget changed from $2.50 to $0.00: the batch's calls are held until it is "
              "raised"));
    r = env.cli({"enqueue", "--batch", "night", "--budget", "0"});
    REQUIRE(r.code == 0);
    CHECK(r.out == "batch night: budget $0.00 (unchanged)\n");
    r = env.cli({"enqueue", "-", "--batch", "night", "--budget", "none"}, lighthouse_jobs("c", 1));
    REQUIRE(r.code == 0);
    CHECK(has(r.out,
              "batch night: budget cleared (was $0.00); the config's max_usd_per_batch "
              "$3.00 applies\n"));
    CHECK(env.value("SELECT max_usd IS NULL FROM batches WHERE name = 'night'") == "1");

    r = env.cli({"enqueue", "-", "--batch", "night", "--budget", "0.125", "--json"},
                lighthouse_jobs("d", 1));
    REQUIRE(r.code == 0);
    CHECK(has(r.out, R"("budget":{"max_usd":0.125,"set":true,"before_usd":null,"changed":true})"));

    // Without a file: an unknown batch is an error, nothing is created.
    r = env.cli({"enqueue", "--batch", "nope", "--budget", "1"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "no batch 'nope'"));
    CHECK(env.number("SELECT count(*) FROM batches WHERE name = 'nope'") == 0);
    // Without a file nor --budget: a usage error.
    r = env.cli({"enqueue", "--batch", "night"});
    CHECK(r.code == 2);
    CHECK(has(r.err, "give FILE"));
}

TEST_CASE("enqueue --budget --strict: rolled back with the jobs") {
    DaemonEnv env = priced_env();
    RunResult r = env.cli({"enqueue", "-", "--batch", "s", "--budget", "1", "--strict"},
                          lighthouse_jobs("a", 2) + "{\"prompt\": \"\"}\n");
    CHECK(r.code == 1);
    CHECK(has(r.out, "batch s: budget not set (no job was stored)"));
    const bool none = !std::filesystem::exists(env.db) ||
                      env.number("SELECT count(*) FROM batches WHERE name = 's'") == 0;
    CHECK(none);
}

TEST_CASE("enqueue --dry-run says whether the estimate fits the batch budget") {
    DaemonEnv env = priced_env(R"("budget": {"max_usd_per_batch": 0.25})");
    RunResult r = env.cli({"enqueue", "-", "--batch", "n", "--dry-run"}, lighthouse_jobs("a", 2));
    REQUIRE(r.code == 0);
    CHECK(has(r.out,
              "batch budget: $0.2500 (budget.max_usd_per_batch): spent $0.00, queued or "
              "running $0.00 worst case, this file $0.2000 worst case: fits\n"));
    r = env.cli({"enqueue", "-", "--batch", "n", "--dry-run", "--budget", "0.15"},
                lighthouse_jobs("a", 2));
    REQUIRE(r.code == 0);
    CHECK(has(r.out,
              "batch budget: $0.1500 (--budget): spent $0.00, queued or running $0.00 worst "
              "case, this file $0.2000 worst case: does not fit; calls stop before one "
              "would cross it, the rest stay queued\n"));
    CHECK_FALSE(std::filesystem::exists(env.db));  // a dry run stores nothing

    // The batch's own budget, with what it already has queued.
    REQUIRE(env.cli({"enqueue", "-", "--batch", "n", "--budget", "0.35"}, lighthouse_jobs("q", 2))
                .code == 0);
    r = env.cli({"enqueue", "-", "--batch", "n", "--estimate", "--json"}, lighthouse_jobs("a", 2));
    REQUIRE(r.code == 0);
    CHECK(has(r.out, R"("batch_budget":{"limit_usd":0.35,"source":"the batch's own",)"
                     R"("spent_usd":0,"queued_worst_usd":0.2,"queued_unpriced_requests":0,)"
                     R"("worst_usd":0.4,"fits":false})"));
}

TEST_CASE("status --batch shows the batch budget") {
    DaemonEnv env = priced_env();
    REQUIRE(
        env.cli({"enqueue", "-", "--batch", "n", "--budget", "2"}, lighthouse_jobs("a", 1)).code ==
        0);
    env.enqueue(lighthouse_jobs("b", 1), "plain");
    RunResult r = env.cli({"status", "--batch", "n"});
    CHECK(has(r.out,
              "budget: $2.00 (the batch's own, enqueue --budget), $0.00 spent, $2.00 "
              "left\n"));
    r = env.cli({"status", "--batch", "n", "--json"});
    CHECK(has(r.out, R"("budget":{"limit_usd":2,"source":"batch","spent_usd":0,)"
                     R"("remaining_usd":2,"held":false})"));
    r = env.cli({"status", "--batch", "plain", "--json"});
    CHECK(has(r.out, R"("budget":null)"));
    CHECK_FALSE(has(env.cli({"status", "--batch", "plain"}).out, "budget:"));
    // The report's batch summary has it too (shown beside the spend).
    REQUIRE(env.cli({"report", "-o", env.dir.file("report")}).code == 0);
    const std::string page = read_file(env.dir.file("report/index.html"));
    CHECK(has(page, R"("budget_usd":2})"));
    CHECK(has(page, R"("name":"plain")"));
    CHECK(has(page, R"("budget_usd":null})"));
}
