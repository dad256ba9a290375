// A provider's lane seen from outside: timeouts that may have been billed, a rate limit
// nobody configured, and a gateway that answers bursts of 503s (the circuit breaker).
#include <doctest/doctest.h>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

TEST_CASE("timeouts: a gateway timeout is a timeout that may have been billed") {
    for (const std::string status : {"504", "524"}) {
        INFO("status " << status);
        Sim sim;
        DaemonEnv env({openai_provider(sim, "p")});
        env.enqueue(job_line("j", "a slow fox #fail=" + status + "*1", "gpt-image-1", 1));
        env.run_until_idle();
        CHECK(env.job_state("j") == "succeeded");
        env.check_outputs("j", 1);
        CHECK(env.attempts("j") == std::vector<std::string>{"error|timeout|" + status, "ok||"});
        CHECK(env.value("SELECT message FROM attempts WHERE outcome = 'error'")
                  .find("(the provider may have generated and billed this call)") !=
              std::string::npos);
        // Counted apart from the attempts: only the successful call used one.
        CHECK(env.value("SELECT attempts || '|' || timeouts FROM requests") == "1|1");
        CHECK(sim.stat(status) == 1);
        CHECK(sim.stat("images") == 1);
    }
}

TEST_CASE("timeouts: a request is called at most retry.max_timeouts times when each times out") {
    Sim sim;
    // Six attempts allowed, but only two calls that may have been billed (the default).
    DaemonEnv env({openai_provider(sim, "p", R"("timeout_s": 1)")}, fast_retry(6));
    env.enqueue(job_line("j", "a fox that never comes #fail=timeout", "gpt-image-1", 1));
    env.run_until_idle();
    CHECK(env.job_state("j") == "failed");
    CHECK(env.attempts("j") == std::vector<std::string>{"error|timeout|0", "error|timeout|0"});
    CHECK(env.value("SELECT error FROM jobs").find("may have generated and billed") !=
          std::string::npos);
    CHECK(env.value("SELECT timeouts FROM requests") == "2");
    CHECK(sim.stat("requests") == 2);
}
