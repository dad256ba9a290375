// api_key_command end to end: the real daemon gets short-lived tokens from a helper script
// (a counter file: tok-1, tok-2, ...) and `imgbatch sim --token-uses N` expires each token
// after N calls. A 401 refreshes the token once for every request that got it and the
// request is sent again within its attempt; no image is lost or paid twice, and the token
// never reaches the logs or the database.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <csignal>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// Marks every token so that it can be searched for in logs and files.
const std::string kMark = "Zq7secretmark";

// A helper printing tok-N-<mark> and counting its runs in DIR/count.
std::string token_script(const TempDir& dir, const std::string& extra = "") {
    std::string path = dir.file("token.sh");
    write_file(path, "#!/bin/sh\nf=" + dir.file("count") +
                         "\nn=$(cat \"$f\" 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > \"$f\"\n" +
                         extra + "echo \"tok-$n-" + kMark + "\"\n");
    ::chmod(path.c_str(), 0755);
    return path;
}

int runs(const TempDir& dir) {
    std::string s = read_file(dir.file("count"));
    return s.empty() ? 0 : std::stoi(s);
}

// The token appears nowhere in the database files or in the daemon's output.
void check_no_token(const DaemonEnv& env, const RunResult& r) {
    CHECK(r.err.find(kMark) == std::string::npos);
    CHECK(r.out.find(kMark) == std::string::npos);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"providers", "--json"}, {"providers"}, {"status"}}) {
        RunResult shown = env.cli(args);
        INFO(args.at(0) << ": " << shown.err);
        CHECK(shown.code == 0);
        CHECK(shown.out.find(kMark) == std::string::npos);
    }
    for (const char* suffix : {"", "-wal", "-journal"}) {
        std::string bytes = read_file(env.db + suffix);
        INFO("database file " << env.db << suffix);
        CHECK(bytes.find(kMark) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("api_key_command: expired tokens are refreshed once per 401 wave, nothing is lost") {
    Sim sim({"--token-uses", "3"});
    TempDir keys;
    const std::string script = token_script(keys);
    DaemonEnv env({openai_provider(
        sim, "oa", "\"max_concurrency\": 2, \"api_key_command\": [" + json_str(script) + "]")});
    std::string jobs;
    for (int i = 0; i < 10; ++i)
        jobs += job_line("j" + std::to_string(i), "fox " + std::to_string(i), "gpt-image-2", 1);
    env.enqueue(jobs);
    RunResult r = env.run_until_idle();

    for (int i = 0; i < 10; ++i) CHECK(env.job_state("j" + std::to_string(i)) == "succeeded");
    // Ten calls accepted, three per token: tok-1..tok-4, and one run per expiry even when both
    // calls in flight got the 401.
    CHECK(runs(keys) == 4);
    CHECK(sim.stat("tokens") == 4);
    CHECK(sim.stat("tokens_expired") >= 3);
    CHECK(sim.stat("images") == 10);  // every image paid for is kept, none twice
    CHECK(env.number("SELECT count(*) FROM outputs") == 10);
    for (int i = 0; i < 10; ++i) env.check_outputs("j" + std::to_string(i), 1);
    // The 401s used no attempt and paused nothing.
    CHECK(env.number("SELECT count(*) FROM attempts") == 10);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE outcome = 'ok'") == 10);
    CHECK(env.number("SELECT sum(attempts) FROM requests") == 10);
    CHECK(env.value("SELECT count(*) FROM provider_state WHERE paused = 1") == "0");
    CHECK(r.err.find("event=provider_paused") == std::string::npos);
    CHECK(r.err.find("event=key_refreshed provider=oa reason=401") != std::string::npos);
    CHECK(r.err.find("event=auth_retry") != std::string::npos);
    check_no_token(env, r);
}

TEST_CASE("api_key_command: a string runs with /bin/sh; Bearer for the gemini style too") {
    Sim sim({"--token-uses", "2"});
    TempDir keys;
    const std::string script = token_script(keys);
    const std::string base = sim.url() + "/v1/projects/p1/locations/us-central1/publishers/google";
    DaemonEnv env({provider_json("vertex", "gemini", base, {"gemini-3-pro-image-preview"},
                                 "\"auth\": \"bearer\", \"max_concurrency\": 1, "
                                 "\"api_key_command\": " +
                                     json_str("sh '" + script + "' --print-access-token"))});
    env.enqueue(job_line("v", "a fox on Vertex", "gemini-3-pro-image-preview", 5));
    RunResult r = env.run_until_idle();
    CHECK(env.job_state("v") == "succeeded");
    env.check_outputs("v", 5);
    CHECK(runs(keys) == 3);  // 2 + 2 + 1 calls
    CHECK(sim.stat("images") == 5);
    CHECK(env.number("SELECT count(*) FROM attempts") == 5);
    check_no_token(env, r);
}

TEST_CASE("api_key_command: a fresh token refused again pauses the provider") {
    // The sim wants one fixed key; the helper's tokens are all wrong.
    Sim sim({"--api-key", "the-right-key"});
    TempDir keys;
    const std::string script = token_script(keys);
    DaemonEnv env({openai_provider(
        sim, "oa", "\"max_concurrency\": 1, \"api_key_command\": [" + json_str(script) + "]")});
    env.enqueue(job_line("j", "a locked fox", "gpt-image-2", 1));
    RunResult r = env.run_until_idle();
    CHECK(env.job_state("j") == "queued");
    CHECK(runs(keys) == 2);       // at start, and once after the first 401
    CHECK(sim.stat("401") == 2);  // the call, and the call again with the new token
    CHECK(env.attempts("j") == std::vector<std::string>{"error|auth|401"});
    CHECK(DaemonEnv::split(env.counters("j"))[0] == "0");  // no attempt used
    auto state = env.rows("SELECT paused, reason FROM provider_state WHERE name = 'oa'");
    REQUIRE(state.size() == 1);
    CHECK(state[0].rfind("1|auth: ", 0) == 0);
    CHECK(r.err.find("event=provider_paused provider=oa") != std::string::npos);
    check_no_token(env, r);
}

TEST_CASE("api_key_command: a failure after a 401 pauses the provider with the command's error") {
    Sim sim({"--token-uses", "1"});
    TempDir keys;
    // The first run succeeds; later runs fail like a logged-out gcloud.
    const std::string script = token_script(
        keys, "if [ $n -gt 1 ]; then echo \"tok-$n-" + kMark +
                  "\"; echo 'ERROR: (gcloud.auth) Reauthentication required.' >&2; exit 1; fi\n");
    DaemonEnv env({openai_provider(
        sim, "oa", "\"max_concurrency\": 1, \"api_key_command\": [" + json_str(script) + "]")});
    env.enqueue(job_line("a", "fox a", "gpt-image-2", 1) +
                job_line("b", "fox b", "gpt-image-2", 1));
    RunResult r = env.run_until_idle();
    CHECK(runs(keys) == 2);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 1);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'queued'") == 1);
    std::string reason = env.value("SELECT reason FROM provider_state WHERE name = 'oa'");
    CHECK(reason.find("api_key_command failed: exit status 1: ERROR: (gcloud.auth) "
                      "Reauthentication required.") != std::string::npos);
    CHECK(r.err.find("event=key_command_failed provider=oa") != std::string::npos);
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
    check_no_token(env, r);
}

TEST_CASE("api_key_command: a failure at start is a configuration error, without the output") {
    Sim sim;
    TempDir keys;
    const std::string script = keys.file("fail.sh");
    write_file(script, "#!/bin/sh\necho tok-" + kMark +
                           "\necho 'ERROR: (gcloud) You do not currently have an active account' "
                           ">&2\nexit 3\n");
    ::chmod(script.c_str(), 0755);
    DaemonEnv env({openai_provider(sim, "oa", "\"api_key_command\": [" + json_str(script) + "]")});
    RunResult r = env.cli({"run", "--until-idle"});
    CHECK(r.code == 78);
    CHECK(r.err.find("provider 'oa': api_key_command failed: exit status 3: ERROR: (gcloud) You "
                     "do not currently have an active account") != std::string::npos);
    CHECK(r.err.find(kMark) == std::string::npos);
    CHECK(sim.stat("requests") == 0);
}

TEST_CASE("api_key_command: api_key_refresh_s runs the helper again during a long run") {
    Sim sim({"--latency-ms", "400"});
    TempDir keys;
    const std::string script = token_script(keys);
    DaemonEnv env({openai_provider(sim, "oa",
                                   "\"max_concurrency\": 1, \"api_key_refresh_s\": 1, "
                                   "\"api_key_command\": [" +
                                       json_str(script) + "]")});
    std::string jobs;
    for (int i = 0; i < 8; ++i)
        jobs += job_line("j" + std::to_string(i), "fox " + std::to_string(i), "gpt-image-2", 1);
    env.enqueue(jobs);
    RunResult r = env.run_until_idle();  // at least 8 x 400 ms
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 8);
    CHECK(runs(keys) >= 2);
    CHECK(r.err.find("event=key_refreshed provider=oa reason=schedule") != std::string::npos);
    CHECK(sim.stat("requests") == 8);  // no 401: the token never expired
    check_no_token(env, r);
}

TEST_CASE("examples: the Vertex AI config and the full example load, Vertex with Bearer") {
    TempDir cwd;
    const std::string examples = std::string(IMGBATCH_SOURCE_DIR) + "/examples/";
    RunResult r =
        run({"--config", examples + "vertex.json", "providers", "--json"}, "", {}, cwd.path());
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("\"vertex\"") != std::string::npos);
    CHECK(r.out.find("aiplatform.googleapis.com") != std::string::npos);
    r = run({"--config", examples + "imgbatch.example.json", "providers"}, "", {}, cwd.path());
    INFO(r.err);
    CHECK(r.code == 0);
    // One provider per API style in the full example.
    for (const char* api : {"openai", "google", "openai-chat", "gemini"})
        CHECK(r.out.find(api) != std::string::npos);
}

TEST_CASE("api_key_command: SIGHUP runs the command again and the paused provider resumes") {
    Sim sim({"--api-key", "right-key"});
    TempDir keys;
    const std::string source = keys.file("source");
    write_file(source, "wrong-key\n");
    // Prints whatever the source file holds (a credential store being fixed by hand).
    const std::string script = token_script(keys, "cat " + source + "; exit 0\n");
    DaemonEnv env({openai_provider(
        sim, "p", "\"max_concurrency\": 1, \"api_key_command\": [" + json_str(script) + "]")});
    std::string lines;
    for (int i = 0; i < 3; ++i)
        lines += job_line("k" + std::to_string(i), "a kite " + std::to_string(i), "gpt-image-2", 1);
    env.enqueue(lines);

    auto daemon = env.start_run();
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    // The start's token and the one fetched after the 401 are both refused: paused.
    REQUIRE(wait_for(
        [&] {
            return env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "1" &&
                   env.number("SELECT count(*) FROM jobs WHERE state = 'queued'") == 3;
        },
        20));
    CHECK(runs(keys) == 2);

    write_file(source, "right-key\n");
    daemon->signal(SIGHUP);
    CHECK(wait_for(
        [&] { return env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 3; },
        20));
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(runs(keys) == 3);  // the reload's run
    for (int i = 0; i < 3; ++i) env.check_outputs("k" + std::to_string(i), 1);
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'p'") == "0");
    CHECK(sim.stat("images") == env.number("SELECT count(*) FROM outputs"));
    CHECK(daemon->err().find("right-key") == std::string::npos);
}
