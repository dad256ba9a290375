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
    env.enqueue(job_line("ok", "a calm sea", "gpt-image-1", 1));
    // A row inserted by SQL whose model forges a line and a field.
    env.exec(
        "INSERT INTO jobs(prompt, model) VALUES ('x', 'gpt-image-1\n2026-01-01 00:00:00.000 "
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
