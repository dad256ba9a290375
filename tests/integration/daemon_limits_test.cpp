// Limits and planning seen from outside: the concurrency cap, splitting per model family,
// paused providers, and rows inserted into the jobs table by plain SQL.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

TEST_CASE("limits: max_concurrency caps the calls in flight and is reached") {
    Sim sim({"--latency-ms", "100"});
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 3)")});
    std::string lines;
    for (int i = 0; i < 40; ++i)
        lines +=
            job_line("j" + std::to_string(i), "fox number " + std::to_string(i), "gpt-image-2", 1);
    env.enqueue(lines);
    env.run_until_idle();
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 40);
    CHECK(env.number("SELECT count(*) FROM outputs") == 40);
    CHECK(sim.stat("max_in_flight") <= 3);
    CHECK(sim.stat("max_in_flight") == 3);
    CHECK(sim.stat("images") == 40);
}

TEST_CASE("limits: jobs are split by the model's maximum per request") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "oa"), google_provider(sim, "gg"),
                   openai_provider(sim, "small", R"("max_images_per_request": 2)")});
    env.enqueue(job_line("im10", "ten imagen foxes", "imagen-4.0-generate-001", 10) +
                job_line("ul3", "three ultra foxes", "imagen-4.0-ultra-generate-001", 3) +
                job_line("d2", "two dalle foxes", "dall-e-3", 2) +
                job_line("g25", "many gpt foxes", "gpt-image-2", 25, R"("provider": "oa")") +
                job_line("s5", "five small foxes", "gpt-image-2", 5, R"("provider": "small")"));

    // Planned at enqueue: request sizes in seq order.
    auto sizes = [&](const std::string& key) {
        return env.rows("SELECT n FROM requests WHERE job_id = " + env.job_id(key) +
                        " ORDER BY seq");
    };
    using V = std::vector<std::string>;
    CHECK(sizes("im10") == V{"4", "4", "2"});
    CHECK(sizes("ul3") == V{"1", "1", "1"});
    CHECK(sizes("d2") == V{"1", "1"});
    CHECK(sizes("g25") == V{"10", "10", "5"});
    CHECK(sizes("s5") == V{"2", "2", "1"});
    CHECK(env.rows("SELECT first_index FROM requests WHERE job_id = " + env.job_id("g25") +
                   " ORDER BY seq") == V{"0", "10", "20"});

    env.run_until_idle();
    const std::vector<std::pair<std::string, int>> wanted{
        {"im10", 10}, {"ul3", 3}, {"d2", 2}, {"g25", 25}, {"s5", 5}};
    for (const auto& [key, n] : wanted) {
        CHECK(env.job_state(key) == "succeeded");
        env.check_outputs(key, n);
    }
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome != 'ok'") == 0);
    // Every request was one call of its size: 14 calls, 45 images.
    CHECK(env.number("SELECT count(*) FROM attempts") == 14);
    CHECK(sim.stat("images") == 45);
    CHECK(sim.stat("200") == 14);
}

TEST_CASE("limits: a paused provider keeps its jobs queued while another runs") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "a"), openai_provider(sim, "b")});
    env.enqueue(job_line("a1", "fox for a, one", "gpt-image-2", 1, R"("provider": "a")") +
                job_line("a2", "fox for a, two", "gpt-image-2", 2, R"("provider": "a")") +
                job_line("b1", "fox for b, one", "gpt-image-2", 1, R"("provider": "b")") +
                job_line("b2", "fox for b, two", "gpt-image-2", 2, R"("provider": "b")"));
    RunResult p = env.cli({"pause", "a"});
    INFO("pause: " << p.out << p.err);
    REQUIRE(p.code == 0);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'a'") == "1");

    env.run_until_idle();
    CHECK(env.job_state("a1") == "queued");
    CHECK(env.job_state("a2") == "queued");
    CHECK(env.job_state("b1") == "succeeded");
    CHECK(env.job_state("b2") == "succeeded");
    CHECK(env.number("SELECT count(*) FROM attempts WHERE provider = 'a'") == 0);
    CHECK(sim.stat("images") == 3);
    // Still paused by the user after the run.
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'a'") == "1");

    REQUIRE(env.cli({"resume", "a"}).code == 0);
    env.run_until_idle();
    CHECK(env.job_state("a1") == "succeeded");
    CHECK(env.job_state("a2") == "succeeded");
    env.check_outputs("a2", 2);
    CHECK(sim.stat("images") == 6);
}

TEST_CASE("limits: rows inserted by plain SQL are validated, planned and run") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p"), google_provider(sim, "g")});
    RunResult init = env.cli({"init"});
    INFO("init: " << init.out << init.err);
    REQUIRE(init.code == 0);
    env.exec(
        "INSERT INTO jobs(prompt, model, n) VALUES ('a fox from sql', 'gpt-image-2', 2);"
        "INSERT INTO jobs(prompt, model, n, params) VALUES ('an imagen fox from sql', "
        "  'imagen-4.0-generate-001', 6, '{\"aspect_ratio\": \"16:9\"}');"
        "INSERT INTO jobs(prompt, model, n) VALUES ('a fox of no model', 'no-such-model', 1);"
        "INSERT INTO jobs(prompt, model, n) VALUES ('no foxes', 'gpt-image-2', 0);"
        "INSERT INTO jobs(prompt, model, n, params) VALUES ('a fox with bad params', "
        "  'gpt-image-2', 1, 'not json');"
        "INSERT INTO jobs(prompt, model, n, params) VALUES ('a fox of bad size', "
        "  'dall-e-3', 1, '{\"size\": \"512x512\"}');");
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'pending'") == 6);

    env.run_until_idle();
    auto states = env.rows("SELECT id, state, coalesce(error, '') FROM jobs ORDER BY id");
    REQUIRE(states.size() == 6);
    auto f = [&](int i) { return DaemonEnv::split(states[i]); };
    CHECK(f(0)[1] == "succeeded");
    CHECK(f(1)[1] == "succeeded");
    for (int i = 2; i < 6; ++i) {
        INFO("row " << states[i]);
        CHECK(f(i)[1] == "rejected");
    }
    CHECK(f(2)[2].find("model") != std::string::npos);
    CHECK(f(2)[2].find("no-such-model") != std::string::npos);
    CHECK(f(3)[2].find("'n'") != std::string::npos);
    CHECK(f(4)[2].find("params") != std::string::npos);
    CHECK(f(5)[2].find("size") != std::string::npos);
    CHECK(f(5)[2].find("1024x1024") != std::string::npos);  // names the allowed values

    env.check_job_outputs(f(0)[0], "job-" + f(0)[0], 2);
    env.check_job_outputs(f(1)[0], "job-" + f(1)[0], 6);
    CHECK(env.rows("SELECT n FROM requests WHERE job_id = " + f(1)[0] + " ORDER BY seq") ==
          std::vector<std::string>{"4", "2"});
    CHECK(env.value("SELECT DISTINCT b.name FROM jobs j JOIN batches b ON b.id = j.batch_id "
                    "WHERE j.state = 'succeeded'") == "sql");
    CHECK(env.value("SELECT provider FROM jobs WHERE id = " + f(1)[0]) == "g");
    CHECK(env.number("SELECT count(*) FROM requests WHERE job_id IN (SELECT id FROM jobs "
                     "WHERE state = 'rejected')") == 0);
}

TEST_CASE("limits: a running daemon picks up rows inserted by SQL") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    REQUIRE(env.cli({"init"}).code == 0);
    auto daemon = env.start_run();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    REQUIRE(daemon->running());
    env.exec("INSERT INTO jobs(prompt, model, n) VALUES ('a late fox', 'gpt-image-2', 3)");
    std::string state;
    for (int i = 0; i < 300 && state != "succeeded"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        state = env.value("SELECT state FROM jobs");
    }
    CHECK(state == "succeeded");
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    CHECK(code == std::optional<int>(0));
    env.check_job_outputs(env.value("SELECT id FROM jobs"),
                          "job-" + env.value("SELECT id FROM jobs"), 3);
}
