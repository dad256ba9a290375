// What fuzzing the parsers found, through the real binary: invalid image URLs in an answer, a
// far-future Retry-After, a refusal made only of markup (against `imgbatch sim`), numbers out
// of range in the configuration, a gpt-image-2 size too large to multiply, and a CSV record
// with a lone CR after a quoted field.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// Waits until the query gives a number >= want (false after timeout_s).
bool wait_for_count(const DaemonEnv& env, const std::string& sql, long long want,
                    double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        if (env.number(sql) >= want) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

}  // namespace

TEST_CASE("an answer's image URL with CR/LF is bad_response and never requested") {
    for (const char* api : {"openai", "openai-chat"}) {
        INFO("api " << api);
        Sim sim;
        const bool chat = std::string(api) == "openai-chat";
        DaemonEnv env({chat ? chat_provider(sim, "p") : openai_provider(sim, "p")});
        env.enqueue(
            job_line("j", "a red fox #fail=badurl*1", chat ? "sora_image" : "gpt-image-2", 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "succeeded");
        env.check_outputs("j", 1);
        auto att = env.attempts("j");
        REQUIRE(att.size() == 2);
        CHECK(att[0] == "error|bad_response|200");
        CHECK(att[1] == "ok||");
        CHECK(env.value("SELECT error_code FROM attempts ORDER BY id LIMIT 1") == "invalid_url");
        CHECK(has(env.value("SELECT message FROM attempts ORDER BY id LIMIT 1"),
                  "image 1: not a valid http(s) URL"));
        // The download was never attempted: no request for the injected path reached the sim
        // (the chat answer's real image is the only file served).
        CHECK(sim.stat("files_served") == (chat ? 1 : 0));
        CHECK(sim.stat("requests") == 2);
    }
}

TEST_CASE("a Retry-After date in year 9999 holds the request for a day, not a retry at once") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("j", "a red fox #fail=429far", "gpt-image-2", 1));
    auto daemon = env.start_run();
    REQUIRE(wait_for_count(env, "SELECT count(*) FROM attempts", 1, 60));
    // The request waits a day after its attempt (the longest wait a Retry-After is read as).
    const std::string job = env.job_id("j");
    REQUIRE(wait_for_count(
        env, "SELECT count(*) FROM requests WHERE state = 'queued' AND job_id = " + job, 1, 30));
    auto hold = std::stod(env.value(
        "SELECT r.not_before - a.finished_at FROM requests r JOIN attempts a ON a.request_id = "
        "r.id WHERE r.job_id = " +
        job));
    CHECK(hold >= 86400 - 60);
    CHECK(hold <= 86400 + 60);
    CHECK(env.value("SELECT error_class FROM attempts") == "rate_limited");
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30));
    CHECK(sim.stat("requests") == 1);
    CHECK(env.number("SELECT count(*) FROM attempts") == 1);
}

TEST_CASE("a refusal made only of markup is stored with a message") {
    Sim sim;
    DaemonEnv env({chat_provider(sim, "p")}, fast_retry(4, 0));
    env.enqueue(job_line("j", "a red fox #fail=markuprefusal", "sora_image", 1));
    env.run_until_idle();
    CHECK(env.job_state("j") == "blocked");
    CHECK(env.attempts("j") == std::vector<std::string>{"error|moderation|200"});
    CHECK(env.value("SELECT error_code FROM attempts") == "refused");
    CHECK(env.value("SELECT message FROM attempts") == "<p><br/></p>");
}

TEST_CASE("configuration numbers out of range are refused at load, naming the field") {
    TempDir dir;
    auto config_with = [&](const std::string& top, const std::string& provider) {
        write_file(dir.file("c.json"),
                   "{\"database\": \"t.db\", \"output_dir\": \"out\", " + top +
                       "\"providers\": [{\"name\": \"p\", \"api\": \"openai\", \"base_url\": "
                       "\"http://127.0.0.1:9/v1\", \"models\": [\"gpt-image-2\"]" +
                       provider + "}]}");
        return run({"--config", dir.file("c.json"), "run", "--until-idle"}, "", {}, dir.path(), 30);
    };
    struct Case {
        std::string top, provider, field;
    };
    for (const Case& c : std::vector<Case>{
             {"", ", \"timeout_s\": 1e16", "'providers[0].timeout_s'"},
             {"\"poll_interval_s\": 1e300, ", "", "'poll_interval_s'"},
             {"\"shutdown_grace_s\": 1e16, ", "", "'shutdown_grace_s'"},
             {"\"retry\": {\"max_delay_s\": 1e300}, ", "", "'retry.max_delay_s'"},
             {"\"metrics_listen\": \"127.0.0.1:70000\", ", "", "'metrics_listen'"},
         }) {
        auto r = config_with(c.top, c.provider);
        INFO("stderr: " << r.err);
        CHECK(r.code == 78);
        CHECK(has(r.err, c.field + " must be"));
    }
}

TEST_CASE("enqueue: a gpt-image-2 size too large to multiply is refused as too large") {
    TempDir dir;
    write_file(dir.file("c.json"),
               R"({"database": "t.db", "output_dir": "out", "providers": [{"name": "p",
                   "api": "openai", "base_url": "http://127.0.0.1:9/v1",
                   "models": ["gpt-image-2"]}]})");
    auto r = run({"--config", dir.file("c.json"), "enqueue", "-", "--batch", "b"},
                 job_line("j", "a fox", "gpt-image-2", 1,
                          R"("size": "4611686018427387904x4611686018427387904")"),
                 {}, dir.path());
    INFO("stderr: " << r.err);
    CHECK(r.code == 1);
    CHECK(has(r.err,
              "<stdin>:1: field 'size': '4611686018427387904x4611686018427387904' is not "
              "allowed for gpt-image-2: at most 3840x2160"));
}

TEST_CASE("enqueue: text after a quoted CSV field and a lone CR is an error, not dropped") {
    TempDir dir;
    write_file(dir.file("c.json"),
               R"({"database": "t.db", "output_dir": "out", "providers": [{"name": "p",
                   "api": "openai", "base_url": "http://127.0.0.1:9/v1",
                   "models": ["gpt-image-2"]}]})");
    write_file(dir.file("p.csv"), "prompt,model\n\"a fox\"\r in the snow,gpt-image-2\nok,\n");
    auto r = run({"--config", dir.file("c.json"), "enqueue", "p.csv", "--model", "gpt-image-2",
                  "--batch", "b"},
                 "", {}, dir.path());
    INFO("stderr: " << r.err);
    CHECK(r.code == 1);
    CHECK(has(r.err, "p.csv:2: column 1: text after a closing quote"));
    CHECK(sql_rows(dir.file("t.db"), "SELECT prompt FROM jobs") == std::vector<std::string>{"ok"});
}
