// Budgets for batch-mode providers (README "Budgets", "Vendor batches under a budget"), through
// the real binary against `imgbatch sim`, for OpenAI's Batch API and Gemini Batch Mode: a
// chunk is submitted with only the lines whose worst case at batch price fits every budget (the
// rest stay queued, the lane shows `budget`), SIGHUP with a raised budget submits the rest, an
// open vendor batch keeps its reservation across a kill -9, lines never billed give theirs
// back, and spend after apply is the sim's usage at batch price. Every test counts the images
// the sim served against the images kept.
#include <signal.h>

#include "tests/integration/batch_checks.hpp"
#include "tests/integration/budget_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// One vendor's batch API in the sim.
struct Vendor {
    std::string api;      // "openai" or "gemini"
    std::string section;  // its section of /sim/stats
    std::string model;

    std::string provider(const Sim& sim, const std::string& extra = "") const {
        std::string e = R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2)";
        if (!extra.empty()) e += ", " + extra;
        if (api == "gemini")
            return provider_json("vb", "gemini", sim.url() + "/v1beta", {model}, e);
        return openai_provider(sim, "vb", e);
    }
    std::string jobs(const std::string& prefix, int count, const std::string& tag = "") const {
        std::string out;
        for (int i = 0; i < count; ++i)
            out += job_line(prefix + std::to_string(i),
                            "a lighthouse " + prefix + std::to_string(i) + tag, model, 1);
        return out;
    }
    long long stat(const Sim& sim, const std::string& name) const {
        return sim_section_stat(sim, section, name);
    }
};

const Vendor kOpenAI{"openai", "batches", "gpt-image-2"};
const Vendor kGemini{"gemini", "gemini_batches", "gemini-2.5-flash-image"};

// 0.10 USD a call whatever it returns, half in batch mode: every line's worst case and cost is
// 0.05.
const std::string kPerCall = R"("prices": {"per_call": 0.10})";

long long count_state(const DaemonEnv& env, const std::string& state) {
    return env.number("SELECT count(*) FROM jobs WHERE state = '" + state + "'");
}

std::string spend(const DaemonEnv& env) {
    return env.value("SELECT printf('%.4f', total(cost_usd)) FROM attempts WHERE billed = 1");
}

std::string metrics_top(int port, const std::string& budget) {
    return R"("metrics_listen": "127.0.0.1:)" + std::to_string(port) + R"(", "budget": )" + budget;
}

// A batch budget that fits 3 of 6 lines: exactly those are submitted, the rest stay queued
// without using an attempt; SIGHUP with a raised budget submits them.
void partial_then_sighup(const Vendor& v) {
    Sim sim({"--batch-ms", "100"});
    const int port = free_port();
    DaemonEnv env({v.provider(sim, kPerCall)}, fast_retry(), 10,
                  metrics_top(port, R"({"max_usd_per_batch": 0.18})"));
    env.enqueue(v.jobs("j", 6));
    auto daemon = env.start_run();
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    // 3 lines fit in 0.18 USD (0.15); a 4th would cross it.
    REQUIRE(wait_for([&] { return count_state(env, "succeeded") == 3; }, 60));
    REQUIRE(wait_for(
        [&] { return has(daemon->err(), "event=budget_hold budget=batch batch=b provider=vb"); },
        10));
    CHECK(env.rows("SELECT requests FROM vendor_batches") == std::vector<std::string>{"3"});
    CHECK(v.stat(sim, "created") == 1);
    CHECK(v.stat(sim, "lines") == 3);
    CHECK(count_state(env, "queued") == 3);
    // Those held used no attempt.
    CHECK(env.number("SELECT count(*) FROM requests WHERE state = 'queued' AND attempt_no = 0 "
                     "AND attempts = 0") == 3);
    CHECK(env.number("SELECT count(*) FROM attempts") == 3);
    CHECK(has(daemon->err(),
              "limit_usd=0.1800 spent_usd=0.0000 in_flight_usd=0.1500 "
              "next_call_usd=0.0500"));
    CHECK(occurrences(daemon->err(), "event=budget_hold") == 1);

    // The lane shows `budget`: status, providers, metrics.
    REQUIRE(wait_for(
        [&] {
            return has(env.cli({"status", "--json"}).out, R"("lane":"budget")");
        },
        10));
    CHECK(has(env.cli({"providers"}).out, "budget (batch b budget 0.18 USD"));
    SimpleResponse m = http_request("GET", port, "/metrics");
    REQUIRE(m.status == 200);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_held{budget="batch",batch="b"})") == 1);
    CHECK(metric_sample(m.body, R"(imgbatch_budget_spent_usd{budget="batch",batch="b"})") ==
          doctest::Approx(0.15));

    // Applying the lines at their worst case changes nothing: still held.
    CHECK(v.stat(sim, "created") == 1);
    replace_in(env.config, R"("max_usd_per_batch": 0.18)", R"("max_usd_per_batch": 1.0)");
    daemon->signal(SIGHUP);
    REQUIRE(wait_for([&] { return count_state(env, "succeeded") == 6; }, 60));
    CHECK(has(daemon->err(), "event=budget_resumed budget=batch batch=b"));
    CHECK(v.stat(sim, "created") == 2);
    CHECK(v.stat(sim, "lines") == 6);
    CHECK(spend(env) == "0.3000");
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30).has_value());
    check_batch_kept(env, sim);
}

// A batch's own budget (enqueue --budget), no budget in the config: a new batch's first chunk
// waits for its budget to be read, and takes only the lines that fit it.
void own_budget(const Vendor& v) {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env({v.provider(sim, kPerCall)}, fast_retry());
    RunResult e = env.cli({"enqueue", "-", "--batch", "own", "--budget", "0.18"}, v.jobs("o", 6));
    REQUIRE(e.code == 0);
    RunResult r = env.cli({"run", "--until-idle"});
    INFO("run stderr: " << DaemonEnv::tail(r.err));
    CHECK(r.code == 0);
    CHECK(has(r.err, "event=budget_hold budget=batch batch=own provider=vb"));
    CHECK(v.stat(sim, "lines") == 3);
    CHECK(count_state(env, "succeeded") == 3);
    CHECK(count_state(env, "queued") == 3);
    CHECK(spend(env) == "0.1500");
    check_batch_kept(env, sim);
}

// A kill -9 while a vendor batch is open: the next start reserves its lines again, so the day
// budget they fill holds the next chunk while the vendor batch runs.
void kill_then_restart(const Vendor& v) {
    Sim sim({"--batch-ms", "6000"});
    DaemonEnv env({v.provider(sim, kPerCall)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_day": 0.15})");
    env.enqueue(v.jobs("j", 3));
    {
        auto daemon = env.start_run();
        bool submitted = wait_for(
            [&] { return env.value("SELECT state FROM vendor_batches") == "submitted"; }, 30);
        INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
        REQUIRE(submitted);
        daemon->signal(SIGKILL);
        REQUIRE(daemon->wait(10));
    }
    env.enqueue(v.jobs("k", 2), "later");
    RunResult r = env.run_until_idle();
    // The open batch's 3 lines (0.15 reserved) fill the day: the 2 new ones wait.
    CHECK(has(r.err,
              "event=budget_vendor_batches_reserved provider=vb vendor_batches=1 lines=3 "
              "usd=0.1500"));
    CHECK(has(r.err,
              "event=budget_hold budget=day batch=\"\" provider=vb limit_usd=0.1500 "
              "spent_usd=0.0000 in_flight_usd=0.1500"));
    CHECK(v.stat(sim, "created") == 1);
    CHECK(v.stat(sim, "lines") == 3);
    CHECK(count_state(env, "succeeded") == 3);
    CHECK(count_state(env, "queued") == 2);
    CHECK(has(r.err, "event=idle_with_held_work providers=vb(2,budget)"));
    CHECK(spend(env) == "0.1500");
    check_batch_kept(env, sim);
}

// Spend, as the budgets count it (the metrics), is what the attempts cost: the sim's usage at
// the batch price.
void spend_is_usage(const Vendor& v, const std::string& cost_sql) {
    Sim sim({"--batch-ms", "100"});
    const int port = free_port();
    DaemonEnv env({v.provider(sim)}, fast_retry(), 10,
                  metrics_top(port, R"({"max_usd_per_run": 50, "max_usd_per_day": 50})"));
    env.enqueue(v.jobs("j", 4));
    auto daemon = env.start_run();
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(wait_for([&] { return count_state(env, "succeeded") == 4; }, 60));
    const double expected = num_or_nan(env.value("SELECT total(" + cost_sql + ") FROM attempts"));
    CHECK(expected > 0);
    CHECK(num_or_nan(env.value("SELECT total(cost_usd) FROM attempts WHERE billed = 1")) ==
          doctest::Approx(expected).epsilon(1e-9));
    // The budgets count it, for the run too (a line's attempt is the vendor batch's, not the
    // run's), and nothing stays reserved.
    SimpleResponse last;
    bool counted = scrape_until(
        port,
        [&](const std::string& b) {
            return metric_sample(b, R"(imgbatch_budget_spent_usd{budget="run"})") ==
                       doctest::Approx(expected).epsilon(1e-6) &&
                   metric_sample(b, R"(imgbatch_budget_spent_usd{budget="day"})") ==
                       doctest::Approx(expected).epsilon(1e-6);
        },
        20, last);
    INFO("scrape: " << last.body);
    CHECK(counted);
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30).has_value());
    CHECK(v.stat(sim, "lines") == 4);
    check_batch_kept(env, sim);
}

}  // namespace

TEST_CASE("batch budget, OpenAI: only the lines that fit are submitted; SIGHUP submits the rest") {
    partial_then_sighup(kOpenAI);
}

TEST_CASE("batch budget, Gemini: only the lines that fit are submitted; SIGHUP submits the rest") {
    partial_then_sighup(kGemini);
}

TEST_CASE("batch budget, OpenAI: a batch's own budget (enqueue --budget) admits what fits") {
    own_budget(kOpenAI);
}

TEST_CASE("batch budget, Gemini: a batch's own budget (enqueue --budget) admits what fits") {
    own_budget(kGemini);
}

TEST_CASE("batch budget, OpenAI: kill -9 with a vendor batch open, its reservation is rebuilt") {
    kill_then_restart(kOpenAI);
}

TEST_CASE("batch budget, Gemini: kill -9 with a vendor batch open, its reservation is rebuilt") {
    kill_then_restart(kGemini);
}

TEST_CASE("batch budget, OpenAI: spend after apply is the sim's usage at batch price") {
    // gpt-image-2: text in $5, image out $30 per 1M tokens; half in batch mode.
    spend_is_usage(kOpenAI,
                   "(json_extract(usage, '$.input_tokens_details.text_tokens') * 5e-6 + "
                   "json_extract(usage, '$.output_tokens') * 30e-6) / 2");
}

TEST_CASE("batch budget, Gemini: spend after apply is the sim's usage at batch price") {
    // 2.5 Flash Image: text in $0.30, image out $30, text out $2.50 per 1M tokens; half in batch
    // mode.
    const std::string by_modality =
        "(SELECT sum(json_extract(value, '$.tokenCount')) FROM json_each(usage, "
        "'$.candidatesTokensDetails') WHERE json_extract(value, '$.modality') = ";
    spend_is_usage(kGemini, "(json_extract(usage, '$.promptTokenCount') * 0.3e-6 + " + by_modality +
                                "'IMAGE') * 30e-6 + " + by_modality + "'TEXT') * 2.5e-6) / 2");
}

TEST_CASE("batch budget: lines an expired vendor batch never ran give their reservation back") {
    Sim sim({"--batch-ms", "100"});
    // 4 lines at 0.05 fill the batch budget; the vendor batch expires before c: a and b are
    // billed, c and d come back unbilled and fit again in the next vendor batch.
    DaemonEnv env({kOpenAI.provider(sim, kPerCall)}, fast_retry(), 10,
                  R"("budget": {"max_usd_per_batch": 0.20})");
    env.enqueue(job_line("a", "one", "gpt-image-2", 1) + job_line("b", "two", "gpt-image-2", 1) +
                job_line("c", "three #expire", "gpt-image-2", 1) +
                job_line("d", "four", "gpt-image-2", 1));
    RunResult r = env.run_until_idle();
    for (const char* k : {"a", "b", "c", "d"}) {
        INFO("job " << k);
        CHECK(env.job_state(k) == "succeeded");
        env.check_outputs(k, 1);
    }
    CHECK(env.attempts("c") == std::vector<std::string>{"returned||", "ok||"});
    CHECK(kOpenAI.stat(sim, "created") == 2);
    CHECK(env.rows("SELECT requests FROM vendor_batches ORDER BY id") ==
          std::vector<std::string>{"4", "2"});
    CHECK(spend(env) == "0.2000");
    CHECK_FALSE(has(r.err, "event=budget_hold"));
    check_batch_kept(env, sim);
}
