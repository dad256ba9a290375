// Budgets (README "Budgets"): per batch, per day and per run, each stopping dispatch before a
// call's worst case would cross it (jobs stay queued, the sim serves no more calls than the
// budget allows), the lane showing `budget`, SIGHUP with a raised budget resuming, billed
// timeouts counted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include "tests/integration/budget_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// 0.10 USD a call, whatever it returns: the worst case of every call is 0.10.
std::string priced_provider(const Sim& sim, const std::string& extra = "") {
    return openai_provider(
        sim, "p",
        std::string(R"("prices": {"per_call": 0.10})") + (extra.empty() ? "" : ", " + extra));
}

long long count_state(const DaemonEnv& env, const std::string& state,
                      const std::string& batch = "") {
    std::string sql = "SELECT count(*) FROM jobs WHERE state = '" + state + "'";
    if (!batch.empty())
        sql += " AND batch_id = (SELECT id FROM batches WHERE name = '" + batch + "')";
    return env.number(sql);
}

}  // namespace

TEST_CASE("budget: a run budget stops dispatch; run --until-idle exits with the rest queued") {
    Sim sim;
    DaemonEnv env({priced_provider(sim)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_run": 0.35})");
    env.enqueue(lighthouse_jobs("j", 6));
    RunResult r = env.run_until_idle();
    // 3 calls fit in 0.35 USD (0.30), a 4th would cross it, even while the 3 are in flight.
    CHECK(sim.stat("requests") == 3);
    CHECK(sim.stat("images") == 3);
    CHECK(count_state(env, "succeeded") == 3);
    CHECK(count_state(env, "queued") == 3);
    CHECK(env.number("SELECT count(*) FROM outputs") == 3);
    CHECK(env.value("SELECT printf('%.2f', total(cost_usd)) FROM attempts WHERE billed = 1") ==
          "0.30");
    CHECK(occurrences(r.err, "event=budget_hold") == 1);  // once per hold
    CHECK(r.err.find("event=budget_hold budget=run") != std::string::npos);
    CHECK(r.err.find("limit_usd=0.3500") != std::string::npos);
    CHECK(r.err.find("event=idle_with_held_work providers=p(3,budget)") != std::string::npos);
    // A new run has a budget of its own.
    env.run_until_idle();
    CHECK(sim.stat("requests") == 6);
    CHECK(count_state(env, "succeeded") == 6);
}

TEST_CASE("budget: a batch budget holds that batch only") {
    Sim sim;
    DaemonEnv env({priced_provider(sim)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_batch": 0.25})");
    env.enqueue(lighthouse_jobs("a", 4), "big");
    env.enqueue(lighthouse_jobs("b", 2), "small");
    RunResult r = env.run_until_idle();
    CHECK(sim.stat("requests") == 4);
    CHECK(count_state(env, "succeeded", "big") == 2);
    CHECK(count_state(env, "queued", "big") == 2);
    CHECK(count_state(env, "succeeded", "small") == 2);
    CHECK(r.err.find("event=budget_hold budget=batch batch=big") != std::string::npos);
    CHECK(r.err.find("event=budget_hold budget=batch batch=small") == std::string::npos);
    // Across runs: the batch's spend is read from the database.
    env.run_until_idle();
    CHECK(sim.stat("requests") == 4);
    CHECK(count_state(env, "queued", "big") == 2);
}

TEST_CASE("budget: a day budget holds, status shows it, SIGHUP with a raised budget resumes") {
    Sim sim;
    const int port = free_port();
    DaemonEnv env({priced_provider(sim)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_day": 0.25}, "metrics_listen": "127.0.0.1:)" +
                      std::to_string(port) + "\"");
    env.enqueue(lighthouse_jobs("j", 5));
    auto daemon = env.start_run();
    REQUIRE(
        wait_for([&] { return daemon->err().find("event=budget_hold") != std::string::npos; }, 30));
    REQUIRE(wait_for([&] { return count_state(env, "succeeded") == 2; }, 30));
    CHECK(count_state(env, "queued") == 3);
    CHECK(sim.stat("requests") == 2);
    CHECK(daemon->err().find("event=budget_hold budget=day") != std::string::npos);

    // The metrics say which budget holds; the scrape passes promtool.
    SimpleResponse m = http_request("GET", port, "/metrics");
    REQUIRE(m.status == 200);
    INFO("scrape: " << m.body);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_held{budget="day"})") == 1);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_held{budget="run"})") == 0);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_limit_usd{budget="day"})") == 0.25);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_spent_usd{budget="day"})") ==
          doctest::Approx(0.20));
    CHECK(metric_sample(m.body, R"(imgbatch_budget_limit_usd{budget="run"})") == -1);  // not set
    if (run_shell("command -v promtool") == 0) {
        TempDir tmp;
        write_file(tmp.file("scrape.txt"), m.body);
        CHECK(run_shell("promtool check metrics < " + tmp.file("scrape.txt")) == 0);
    }

    // The lane shows `budget`: status (text and JSON) and providers.
    REQUIRE(wait_for(
        [&] {
            return env.cli({"status"}).out.find("budget (day budget 0.25 USD") != std::string::npos;
        },
        10));
    RunResult js = env.cli({"status", "--json"});
    CHECK(js.out.find(R"("lane":"budget")") != std::string::npos);
    RunResult prov = env.cli({"providers"});
    CHECK(prov.out.find("budget (day budget 0.25 USD") != std::string::npos);

    // The day's spend stays in the database: another run that day holds at once.
    replace_in(env.config, R"("max_usd_per_day": 0.25)", R"("max_usd_per_day": 1.0)");
    daemon->signal(SIGHUP);
    REQUIRE(wait_for([&] { return count_state(env, "succeeded") == 5; }, 30));
    CHECK(daemon->err().find("event=budget_reloaded") != std::string::npos);
    CHECK(daemon->err().find("event=budget_resumed budget=day") != std::string::npos);
    CHECK(sim.stat("requests") == 5);
    REQUIRE(wait_for([&] { return env.cli({"status"}).out.find("budget (") == std::string::npos; },
                     10));
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30).has_value());

    // Another daemon the same day: 0.50 spent, a 0.45 budget holds every call.
    replace_in(env.config, R"("max_usd_per_day": 1.0)", R"("max_usd_per_day": 0.45)");
    env.enqueue(lighthouse_jobs("k", 2), "later");
    RunResult r = env.run_until_idle();
    CHECK(sim.stat("requests") == 5);
    CHECK(count_state(env, "queued") == 2);
    CHECK(r.err.find("event=budget_hold budget=day") != std::string::npos);
}

TEST_CASE("budget: a billed timeout counts against the budget") {
    Sim sim;
    DaemonEnv env({priced_provider(sim, R"("timeout_s": 1)")}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_run": 0.15})");
    // The call times out: the provider may have billed it (0.10), so its retry (another 0.10)
    // would cross 0.15 and is not sent.
    env.enqueue(job_line("t", "a red fox #fail=timeout*1", "gpt-image-2", 1));
    RunResult r = env.run_until_idle();
    CHECK(sim.stat("requests") == 1);
    CHECK(env.job_state("t") == "queued");
    CHECK(env.rows("SELECT outcome, error_class, billed, printf('%.2f', cost_usd) FROM attempts "
                   "ORDER BY id") == std::vector<std::string>{"error|timeout|1|0.10"});
    CHECK(r.err.find("event=budget_hold budget=run") != std::string::npos);
    CHECK(r.err.find("spent_usd=0.1000") != std::string::npos);
}

TEST_CASE("budget: a call without a price is held, never sent unbounded") {
    Sim sim;
    // sora_image: a relay name without a price in the catalog, and none in the config.
    DaemonEnv env({chat_provider(sim, "relay")}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_batch": 100})");
    env.enqueue(job_line("s", "a lighthouse", "sora_image", 1));
    RunResult r = env.run_until_idle();
    CHECK(sim.stat("requests") == 0);
    CHECK(env.job_state("s") == "queued");
    CHECK(r.err.find("event=budget_hold budget=batch batch=b provider=relay") != std::string::npos);
    CHECK(r.err.find("next_call_usd=unknown") != std::string::npos);
    CHECK(r.err.find("event=idle_with_held_work providers=relay(1,budget)") != std::string::npos);
}
