// Logs: data from outside (a prompt, a model, a provider's message) cannot forge a log line
// nor break out of its field.
#include <doctest/doctest.h>

#include <regex>
#include <sstream>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

TEST_CASE("logs: a newline or a quote in a row's model stays inside one field") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("ok", "a calm sea", "gpt-image-2", 1));
    // A row inserted by SQL whose model forges a line and a field.
    env.exec(
        "INSERT INTO jobs(prompt, model) VALUES ('x', 'gpt-image-2\n2026-01-01 00:00:00.000 "
        "error event=provider_paused provider=p reason=\"forged\"')");
    RunResult r = env.run_until_idle(60);
    INFO("stderr: " << r.err);
    CHECK(r.err.find("event=job_rejected") != std::string::npos);
    // Every line is one of ours: it starts with a time stamp, and no forged event stands on
    // a line of its own.
    std::istringstream lines(r.err);
    std::regex ours(
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[+-][0-9]{2}:[0-9]{2} "
        "(trace|debug|info|warning|error|critical) event=");
    std::string line;
    int count = 0;
    while (std::getline(lines, line)) {
        ++count;
        CAPTURE(line);
        CHECK(std::regex_search(line, ours));
        bool forged = line.find("error event=provider_paused") != std::string::npos &&
                      line.find("event=job_rejected") == std::string::npos;
        CHECK_FALSE(forged);
    }
    CHECK(count > 0);
    // The rejected job's line quotes the value: the quote inside is escaped.
    CHECK(r.err.find("\\\"forged\\\"") != std::string::npos);
    CHECK(r.err.find("\\n2026-01-01") != std::string::npos);
}

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

int count_lines(const std::string& text, const std::string& needle) {
    int n = 0;
    for (const auto& line : lines_of(text))
        if (line.find(needle) != std::string::npos) ++n;
    return n;
}

const std::regex kRfc3339Line(
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} "
    "(trace|debug|info|warning|error|critical) event=");

}  // namespace

TEST_CASE("logs: under the journal lines carry <N> priorities and no time stamp") {
    Sim sim({"--latency-ms", "300"});
    DaemonEnv env({openai_provider(sim, "p")});
    // Four calls in flight at once, each answered 401 after 300 ms.
    std::string jobs;
    for (int i = 0; i < 4; ++i)
        jobs += job_line("k" + std::to_string(i), "a sea " + std::to_string(i) + " #fail=auth",
                         "gpt-image-2", 1);
    env.enqueue(jobs);
    // systemd sets JOURNAL_STREAM to the device and inode of the stream it connects to
    // stderr: the same is done here with the file stderr goes to.
    Process daemon({"/bin/sh", "-c",
                    "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM "
                    "&& exec \"$0\" --config \"$1\" run --until-idle",
                    imgbatch_bin(), env.config},
                   {}, env.dir.path(), "", /*raw=*/true);
    auto code = daemon.wait(60);
    std::string err = daemon.err();
    INFO("stderr: " << err);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    auto lines = lines_of(err);
    REQUIRE(lines.size() > 3);
    for (const auto& line : lines) {
        CAPTURE(line);
        CHECK(std::regex_search(line, std::regex("^<[3467]>event=")));
    }
    // The auth pause is an error (journalctl -p err shows it), said once for the four calls
    // that were in flight, with what to do about it.
    CHECK(count_lines(err, "<3>event=provider_paused provider=p") == 1);
    CHECK(count_lines(err, "event=provider_paused") == 1);
    CHECK(err.find("fix=\"fix the provider's API key") != std::string::npos);
    CHECK(err.find("imgbatch resume p") != std::string::npos);
    // Every call that was sent has its attempt line; none repeats the refusal as a warning.
    CHECK(sim.stat("max_in_flight") >= 2);
    CHECK(count_lines(err, "<6>event=attempt ") == sim.stat("requests"));
    CHECK(count_lines(err, "event=attempt_error") == 0);
}

TEST_CASE("logs: a JOURNAL_STREAM inherited by a process writing elsewhere keeps time stamps") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("a", "a calm sea", "gpt-image-2", 1));
    RunResult r = run({"--config", env.config, "run", "--until-idle"}, "",
                      {"JOURNAL_STREAM=1:1", "NO_COLOR=1"}, env.dir.path(), 60);
    INFO("stderr: " << r.err);
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.err);
    REQUIRE(!lines.empty());
    for (const auto& line : lines) {
        CAPTURE(line);
        CHECK(std::regex_search(line, kRfc3339Line));
        CHECK(line.find('\x1b') == std::string::npos);
    }
}

TEST_CASE(
    "logs: attempt lines name batch and key and when the retry is due; a batch ends "
    "with one summary line") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("good", "a calm sea", "gpt-image-2", 2) +
                    job_line("again", "a storm #fail=500*1", "gpt-image-2", 1) +
                    job_line("refused", "a ship #fail=moderation", "gpt-image-2", 1),
                "night");
    RunResult r = env.run_until_idle(60);
    INFO("stderr: " << r.err);
    CHECK(std::regex_search(
        r.err, std::regex("event=attempt job=[0-9]+ batch=night key=again request=[0-9]+ "
                          "provider=p attempt=1 outcome=error class=server http=500 .*next=retry "
                          "retry_at=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[+-][0-9]{2}:[0-9]{2} "
                          "retry_in_s=[0-9.]+")));
    CHECK(std::regex_search(r.err, std::regex("event=attempt_error job=[0-9]+ batch=night "
                                              "key=again .*next=retry retry_at=")));
    CHECK(std::regex_search(r.err, std::regex("event=attempt job=[0-9]+ batch=night key=good "
                                              ".*outcome=ok .*images=2 next=done")));
    CHECK(count_lines(r.err, "event=batch_done") == 1);
    CHECK(r.err.find("event=batch_done batch=night jobs=3 succeeded=2 failed=0 blocked=1 "
                     "cancelled=0 rejected=0 images=3 images_wanted=") != std::string::npos);
}

TEST_CASE("logs: an idle daemon does not log every 10 s") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("a", "a calm sea", "gpt-image-2", 1));
    env.run_until_idle(60);
    // 12 s with nothing to do: past the 10 s progress interval.
    auto daemon = env.start_run({"--max-seconds", "12"});
    auto code = daemon->wait(60);
    std::string err = daemon->err();
    INFO("stderr: " << err);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(count_lines(err, "event=progress") == 0);
    // The start lines and the stop lines, nothing between.
    for (const auto& line : lines_of(err)) {
        CAPTURE(line);
        CHECK(std::regex_search(line, std::regex("event=(provider|start|stopping|stopped) ")));
    }
}

TEST_CASE("logs: a lane hold and its slow-down are logged once, not per request") {
    Sim sim({"--latency-ms", "300"});
    DaemonEnv env({openai_provider(sim, "p", R"("requests_per_minute": 6000)")});
    // Four calls in flight at once, each answered 429 (Retry-After: 1); then they succeed.
    std::string jobs;
    for (int i = 0; i < 4; ++i)
        jobs += job_line("k" + std::to_string(i), "a sea #fail=429*4", "gpt-image-2", 1);
    env.enqueue(jobs);
    RunResult r = env.run_until_idle(60);
    INFO("stderr: " << r.err);
    CHECK(sim.stat("max_in_flight") == 4);
    CHECK(count_lines(r.err, "class=rate_limited") >= 4);
    CHECK(count_lines(r.err, "event=lane_hold provider=p cause=rate_limited hold_s=") == 1);
    CHECK(count_lines(r.err, "event=lane_slowdown provider=p rate_factor=0.75") == 1);
    CHECK(count_lines(r.err, "event=lane_") == 2);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
}

TEST_CASE("logs: under the journal a configuration error is an error line") {
    DaemonEnv env({}, fast_retry(), 10, "\"no_such_key\": 1");
    Process cli({"/bin/sh", "-c",
                 "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM "
                 "&& exec \"$0\" --config \"$1\" run --until-idle",
                 imgbatch_bin(), env.config},
                {}, env.dir.path(), "", /*raw=*/true);
    auto code = cli.wait(30);
    REQUIRE(code.has_value());
    CHECK(*code != 0);
    std::string err = cli.err();
    INFO("stderr: " << err);
    REQUIRE(!err.empty());
    for (const auto& line : lines_of(err)) {
        CAPTURE(line);
        CHECK(line.starts_with("<3>imgbatch: "));
    }
    CHECK(err.find("no_such_key") != std::string::npos);
}
