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
        env.enqueue(job_line("j", "a slow fox #fail=" + status + "*1", "gpt-image-2", 1));
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
    env.enqueue(job_line("j", "a fox that never comes #fail=timeout", "gpt-image-2", 1));
    env.run_until_idle();
    CHECK(env.job_state("j") == "failed");
    CHECK(env.attempts("j") == std::vector<std::string>{"error|timeout|0", "error|timeout|0"});
    CHECK(env.value("SELECT error FROM jobs").find("may have generated and billed") !=
          std::string::npos);
    CHECK(env.value("SELECT timeouts FROM requests") == "2");
    CHECK(sim.stat("requests") == 2);
}

namespace {

std::string many_jobs(int count, const std::string& prefix) {
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += job_line(prefix + std::to_string(i), prefix + " fox number " + std::to_string(i),
                          "gpt-image-2", 1);
    return lines;
}

}  // namespace

TEST_CASE("unknown limit: the lane learns the provider's rate instead of bursting into 429s") {
    // The sim allows 600 requests a minute (10/s); the daemon is not told.
    Sim sim({"--rpm", "600", "--latency-ms", "20"});
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 8)")}, fast_retry(6));
    env.enqueue(many_jobs(40, "u"));
    env.run_until_idle();
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 40);
    CHECK(env.number("SELECT count(*) FROM outputs") == 40);
    CHECK(sim.stat("images") == 40);
    long long calls = sim.stat("requests");
    long long refused = sim.stat("rate_limited");
    INFO("calls " << calls << ", refused " << refused);
    CHECK(refused ==
          env.number("SELECT count(*) FROM attempts WHERE error_class = 'rate_limited'"));
    // A generous bound (about the first in-flight calls are refused; without learning, most
    // calls are).
    CHECK(refused * 3 < calls);
}

TEST_CASE("unknown limit: a first burst refused whole does not leave the lane at 1/min") {
    // Four calls in flight, all refused (429): the lane learns a rate from that, and the
    // three requests claimed meanwhile still go out within seconds, not a minute apart.
    Sim sim({"--latency-ms", "300"});
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 4)")}, fast_retry(6));
    env.enqueue(R"({"key": "k0", "prompt": "a sea #fail=429*4", "model": "gpt-image-2"}
{"key": "k1", "prompt": "a sea #fail=429*4", "model": "gpt-image-2"}
{"key": "k2", "prompt": "a sea #fail=429*4", "model": "gpt-image-2"}
{"key": "k3", "prompt": "a sea #fail=429*4", "model": "gpt-image-2"}
)");
    env.run_until_idle(30);  // at 1 request a minute this took over three minutes
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 4);
    CHECK(env.number("SELECT count(*) FROM outputs") == 4);
    CHECK(sim.stat("images") == 4);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE error_class = 'rate_limited'") == 4);
}

TEST_CASE("unknown limit: x-ratelimit headers tell the lane the rate before any 429") {
    Sim sim({"--rpm", "600", "--latency-ms", "20", "--ratelimit-headers"});
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 8)")}, fast_retry(6));
    env.enqueue(many_jobs(40, "h"));
    env.run_until_idle();
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 40);
    CHECK(sim.stat("images") == 40);
    INFO("calls " << sim.stat("requests") << ", refused " << sim.stat("rate_limited"));
    CHECK(sim.stat("rate_limited") * 20 < sim.stat("requests"));
}

TEST_CASE("gateway: a burst of 503s without Retry-After slows the lane, no job fails") {
    // nginx limit_req in front of the API: more than 300 requests a minute get 503 (HTML).
    Sim sim({"--gateway-rpm", "300"});
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 4)")}, fast_retry(4));
    env.enqueue(many_jobs(20, "g"));
    env.run_until_idle();
    auto failed =
        env.rows("SELECT key || ': ' || coalesce(error, '') FROM jobs WHERE state != 'succeeded'");
    std::string why;
    for (const auto& f : failed) why += f + "\n";
    INFO("not succeeded:\n" << why);
    CHECK(failed.empty());
    CHECK(env.number("SELECT count(*) FROM outputs") == 20);
    CHECK(sim.stat("images") == 20);
    INFO("503s " << sim.stat("gateway_refused") << " of " << sim.stat("requests"));
    CHECK(sim.stat("gateway_refused") > 0);  // the gateway did refuse
    CHECK(sim.stat("gateway_refused") == sim.stat("503"));
    // Its refusals were blamed on the provider, not on the requests' attempts.
    CHECK(env.number("SELECT sum(provider_failures) FROM requests") > 0);
    CHECK(env.number("SELECT max(attempts) FROM requests") <= 2);
}
