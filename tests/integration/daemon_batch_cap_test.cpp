// A batch's own budget (enqueue --budget, README "Budgets"): it stops that batch while others
// run on, it replaces the config's max_usd_per_batch for its batch, a running daemon picks up
// a raised budget without SIGHUP, the metrics have a series per batch (promtool), status shows
// it, and money in JSON outputs prints as plain decimals.
#include <csignal>

#include "tests/integration/budget_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// price USD a call, whatever it returns: the worst case of every call is price.
std::string priced_provider(const Sim& sim, const std::string& price = "0.10") {
    return openai_provider(sim, "p", R"("prices": {"per_call": )" + price + "}");
}

long long count_state(const DaemonEnv& env, const std::string& state, const std::string& batch) {
    return env.number("SELECT count(*) FROM jobs WHERE state = '" + state +
                      "' AND batch_id = (SELECT id FROM batches WHERE name = '" + batch + "')");
}

// Images kept for a batch: outputs rows, each with its file.
long long kept(const DaemonEnv& env, const std::string& batch) {
    long long files = 0;
    for (const auto& path : env.rows("SELECT o.path FROM outputs o JOIN jobs j ON j.id = o.job_id "
                                     "JOIN batches b ON b.id = j.batch_id WHERE b.name = '" +
                                     batch + "'"))
        files += read_file(path.front() == '/' ? path : env.dir.file(path)).empty() ? 0 : 1;
    return files;
}

RunResult enqueue_budget(const DaemonEnv& env, const std::string& lines, const std::string& batch,
                         const std::string& budget) {
    RunResult r = env.cli({"enqueue", "-", "--batch", batch, "--budget", budget}, lines);
    INFO("enqueue stderr: " << r.err);
    REQUIRE(r.code == 0);
    return r;
}

}  // namespace

TEST_CASE("batch budget: enqueue --budget stops that batch, another batch runs on") {
    Sim sim;
    DaemonEnv env({priced_provider(sim)});  // no budget in the config
    RunResult e = enqueue_budget(env, lighthouse_jobs("c", 4), "capped", "0.25");
    CHECK(has(e.out, "batch capped: budget set to $0.2500"));
    env.enqueue(lighthouse_jobs("f", 3), "free");
    CHECK(env.value("SELECT max_usd FROM batches WHERE name = 'capped'") == "0.25");
    CHECK(env.value("SELECT max_usd IS NULL FROM batches WHERE name = 'free'") == "1");

    RunResult r = env.run_until_idle();
    // capped: 2 calls (0.20) fit in 0.25, a 3rd would cross it; free: all 3.
    CHECK(sim.stat("requests") == 5);
    CHECK(sim.stat("images") == 5);
    CHECK(count_state(env, "succeeded", "capped") == 2);
    CHECK(count_state(env, "queued", "capped") == 2);
    CHECK(count_state(env, "succeeded", "free") == 3);
    // Every image served was kept.
    CHECK(kept(env, "capped") + kept(env, "free") == sim.stat("images"));
    CHECK(has(r.err, "event=budget_hold budget=batch batch=capped provider=p limit_usd=0.2500"));
    CHECK_FALSE(has(r.err, "budget=batch batch=free"));
    CHECK(has(r.err, "event=idle_with_held_work providers=p(2,budget)"));

    // Across runs: the batch's budget and spend are read from the database.
    env.run_until_idle();
    CHECK(sim.stat("requests") == 5);

    // --budget 0 on a new batch: none of its calls starts.
    enqueue_budget(env, lighthouse_jobs("z", 2), "zero", "0");
    env.run_until_idle();
    CHECK(sim.stat("requests") == 5);
    CHECK(count_state(env, "queued", "zero") == 2);

    // Cleared: no budget applies (none in the config), the batch runs to the end.
    RunResult c = enqueue_budget(env, lighthouse_jobs("c", 4), "capped", "none");
    CHECK(has(c.out, "batch capped: budget cleared (was $0.2500); no batch budget applies"));
    env.run_until_idle();
    CHECK(count_state(env, "succeeded", "capped") == 4);
    CHECK(sim.stat("requests") == 7);
}

TEST_CASE("batch budget: a batch's own budget replaces the config's max_usd_per_batch") {
    Sim sim;
    DaemonEnv env({priced_provider(sim)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_batch": 0.15})");
    enqueue_budget(env, lighthouse_jobs("h", 4), "higher", "0.35");  // above the config's
    enqueue_budget(env, lighthouse_jobs("l", 2), "lower", "0.05");   // below it
    env.enqueue(lighthouse_jobs("d", 3), "default");
    RunResult r = env.run_until_idle();
    CHECK(count_state(env, "succeeded", "higher") == 3);
    CHECK(count_state(env, "succeeded", "lower") == 0);
    CHECK(count_state(env, "succeeded", "default") == 1);
    CHECK(sim.stat("requests") == 4);
    CHECK(has(r.err, "budget=batch batch=higher provider=p limit_usd=0.3500"));
    CHECK(has(r.err, "budget=batch batch=lower provider=p limit_usd=0.0500"));
    CHECK(has(r.err, "budget=batch batch=default provider=p limit_usd=0.1500"));
}

TEST_CASE("batch budget: raised on a running daemon, it resumes without SIGHUP; metrics") {
    REQUIRE(run_shell("command -v promtool") == 0);
    Sim sim;
    const int port = free_port();
    DaemonEnv env({priced_provider(sim)}, fast_retry(), 10,
                  R"("metrics_listen": "127.0.0.1:)" + std::to_string(port) + "\"");
    enqueue_budget(env, lighthouse_jobs("c", 4), "night \"1\"", "0.15");
    env.enqueue(lighthouse_jobs("o", 2), "other");
    auto daemon = env.start_run();
    REQUIRE(wait_for([&] { return count_state(env, "succeeded", "other") == 2; }, 30));
    REQUIRE(wait_for([&] { return has(daemon->err(), "event=budget_hold budget=batch"); }, 30));
    // The held call's worst case was checked while the first one may still have been in flight.
    REQUIRE(wait_for([&] { return count_state(env, "succeeded", "night \"1\"") == 1; }, 30));

    // Per batch: held, spent and limit of the batch under a budget with open work; the scrape
    // passes promtool (the quotes in the name escaped).
    const std::string label = R"(budget="batch",batch="night \"1\"")";
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [&](const std::string& body) {
            return metric_sample(body, "imgbatch_budget_held{" + label + "}") == 1 &&
                   metric_sample(body, "imgbatch_budget_spent_usd{" + label + "}") > 0.09;
        },
        20, m));
    INFO("scrape: " << m.body);
    CHECK(metric_sample(m.body, "imgbatch_budget_held{budget=\"batch\"}") == 1);
    CHECK(metric_sample(m.body, "imgbatch_budget_spent_usd{" + label + "}") ==
          doctest::Approx(0.10));
    CHECK(metric_sample(m.body, "imgbatch_budget_limit_usd{" + label + "}") ==
          doctest::Approx(0.15));
    CHECK_FALSE(has(m.body, "batch=\"other\""));  // no budget applies to it
    {
        TempDir tmp;
        write_file(tmp.file("scrape.txt"), m.body);
        CHECK(run_shell("promtool check metrics < " + tmp.file("scrape.txt")) == 0);
    }

    // status --batch shows the budget and the hold.
    REQUIRE(wait_for(
        [&] {
            return has(env.cli({"status", "--batch", "night \"1\""}).out,
                       "budget: $0.1500 (the batch's own, enqueue --budget), $0.1000 spent, "
                       "$0.0500 left; held");
        },
        10));
    RunResult js = env.cli({"status", "--batch", "night \"1\"", "--json"});
    CHECK(has(js.out, R"("budget":{"limit_usd":0.15,"source":"batch","spent_usd":0.1,)"
                      R"("remaining_usd":0.05,"held":true})"));

    // Raised without a file and without SIGHUP: the daemon reads it with the spend.
    RunResult raise = env.cli({"enqueue", "--batch", "night \"1\"", "--budget", "1"});
    INFO("raise: " << raise.out << raise.err);
    REQUIRE(raise.code == 0);
    CHECK(has(raise.out, "budget changed from $0.1500 to $1.00"));
    REQUIRE(wait_for([&] { return count_state(env, "succeeded", "night \"1\"") == 4; }, 30));
    CHECK(has(daemon->err(), "event=batch_budget batch=\"night \\\"1\\\"\" max_usd=1.0000"));
    CHECK(has(daemon->err(), "event=budget_resumed budget=batch"));
    CHECK_FALSE(has(daemon->err(), "event=budget_reloaded"));
    CHECK(sim.stat("requests") == 6);
    CHECK(kept(env, "night \"1\"") + kept(env, "other") == sim.stat("images"));
    // Done: its series go (nothing open, nothing held).
    REQUIRE(scrape_until(
        port, [&](const std::string& body) { return !has(body, "batch=\"night"); }, 20, m));
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30).has_value());
}

TEST_CASE("money in JSON outputs prints as plain decimals") {
    Sim sim;
    DaemonEnv env({priced_provider(sim, "0.02454")});
    env.enqueue(job_line("k1", "a lighthouse", "gpt-image-2", 1), "m");
    RunResult est = env.cli({"enqueue", "-", "--batch", "m", "--estimate", "--json"},
                            job_line("k2", "a harbour", "gpt-image-2", 1));
    REQUIRE(est.code == 0);
    CHECK(has(est.out, R"("worst_usd":0.02454,"typical_usd":0.02454,)"));
    CHECK(has(est.out, R"("total_worst_usd":0.04908)"));
    env.run_until_idle();
    RunResult show = env.cli({"show", env.job_id("k1"), "--json"});
    CHECK(has(show.out, R"("cost_usd":0.02454)"));
    RunResult status = env.cli({"status", "--batch", "m", "--json"});
    CHECK(has(status.out, R"("spend":{"usd":0.02454,)"));
    CHECK_FALSE(has(status.out, "E-"));
    TempDir tmp;
    REQUIRE(env.cli({"export", "--batch", "m", "-o", tmp.file("m.jsonl")}).code == 0);
    const std::string exported = read_file(tmp.file("m.jsonl"));
    INFO(exported);
    CHECK(has(exported, R"("cost_usd":0.02454)"));
    CHECK_FALSE(has(exported, "E-2"));
}
