// Metrics: every series is there from the start (at zero), a scrape taken during a real run
// passes `promtool check metrics`, the counters agree with what was kept, an address that
// cannot be bound stops the start, and the shipped alert rules pass promtool.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <regex>
#include <string>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// A loopback socket bound to a free port, listening until closed; port() names it.
class Listener {
  public:
    Listener() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 1) == 0);
        socklen_t len = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
    }
    ~Listener() { ::close(fd_); }
    int port() const { return port_; }

  private:
    int fd_;
    int port_ = 0;
};

// `promtool check metrics` on a scrape: its exit code, and what it said.
int promtool_check(const std::string& body, std::string* said) {
    TempDir dir;
    write_file(dir.file("scrape.txt"), body);
    int code = run_shell("promtool check metrics < " + dir.file("scrape.txt") + " > " +
                         dir.file("out.txt") + " 2>&1");
    *said = read_file(dir.file("out.txt"));
    return code;
}

std::string jobs(int count, int n = 1) {
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += job_line("j" + std::to_string(i), "a quiet harbour " + std::to_string(i),
                          "gpt-image-2", n);
    return lines;
}

}  // namespace

TEST_CASE("metrics: every series is there at zero before any work") {
    REQUIRE(run_shell("command -v promtool") == 0);  // scripts/install-deps.sh installs it
    Sim sim;
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p"), google_provider(sim, "g")}, fast_retry(), 10,
                  "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    auto daemon = env.start_run();
    SimpleResponse m;
    REQUIRE(wait_for(
        [&] {
            m = http_request("GET", port, "/metrics");
            return m.status == 200;
        },
        20));
    INFO("scrape: " << m.body);
    for (const char* provider : {"p", "g"}) {
        std::string pl = std::string("provider=\"") + provider + "\"";
        CHECK(metric_sample(m.body,
                            "imgbatch_attempts_total{" + pl + ",outcome=\"ok\",class=\"\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_attempts_total{" + pl +
                                        ",outcome=\"error\",class=\"rate_limited\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_attempts_total{" + pl +
                                        ",outcome=\"error\",class=\"auth\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_provider_paused{" + pl + ",reason=\"auth\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_provider_paused{" + pl + ",reason=\"quota\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_lane_holding{" + pl + "}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_lane_learning{" + pl + "}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_lane_rate_rpm{" + pl + "}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_request_duration_seconds_count{" + pl + "}") == 0);
        CHECK(metric_sample(
                  m.body, "imgbatch_request_duration_seconds_bucket{" + pl + ",le=\"+Inf\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_images_total{" + pl + "}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_written_bytes_total{" + pl + "}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_usage_tokens_total{" + pl + ",kind=\"total\"}") == 0);
        CHECK(metric_sample(m.body, "imgbatch_requests{" + pl + ",state=\"queued\"}") == 0);
    }
    CHECK(metric_sample(m.body, "imgbatch_jobs{state=\"failed\"}") == 0);
    CHECK(metric_sample(m.body, "imgbatch_leases_expired_total") == 0);
    CHECK(metric_sample(m.body, "imgbatch_commit_errors_total") == 0);
    CHECK(metric_sample(m.body, "imgbatch_commit_duration_seconds_count") == 0);
    CHECK(std::regex_search(m.body, std::regex("\nimgbatch_build_info\\{version=\"[0-9.]+\",")));
    CHECK(metric_sample(m.body, "process_start_time_seconds") > 1.7e9);
    CHECK(metric_sample(m.body, "process_resident_memory_bytes") > 1e6);
    std::string said;
    CHECK_MESSAGE(promtool_check(m.body, &said) == 0, said);
    daemon->signal(SIGTERM);
    CHECK(daemon->wait(30) == 0);
}

TEST_CASE("metrics: a scrape during a run passes promtool and the counters match what was kept") {
    REQUIRE(run_shell("command -v promtool") == 0);
    Sim sim({"--latency-ms", "300"});
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p", "\"max_concurrency\": 2")}, fast_retry(), 10,
                  "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    env.enqueue(jobs(6, 2) + job_line("retried", "a storm #fail=500*1", "gpt-image-2", 1));
    auto daemon = env.start_run();
    // During the run: requests in flight, some attempts ended.
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [](const std::string& body) {
            return metric_sample(
                       body, "imgbatch_attempts_total{provider=\"p\",outcome=\"ok\",class=\"\"}") >=
                       1 &&
                   metric_sample(body, "imgbatch_requests_in_flight{provider=\"p\"}") >= 1;
        },
        30, m));
    {
        INFO("scrape: " << m.body);
        std::string said;
        CHECK_MESSAGE(promtool_check(m.body, &said) == 0, said);
    }
    // When it is done: the counters against the database and the simulator.
    REQUIRE(wait_for(
        [&] { return env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 7; },
        60));
    REQUIRE(scrape_until(
        port,
        [](const std::string& body) {
            return metric_sample(body, "imgbatch_jobs{state=\"succeeded\"}") == 7;
        },
        30, m));
    INFO("scrape: " << m.body);
    const long long kept = env.number("SELECT count(*) FROM outputs");
    CHECK(kept == 13);
    CHECK(sim.stat("images") == kept);
    CHECK(metric_sample(m.body, "imgbatch_images_total{provider=\"p\"}") == kept);
    CHECK(metric_sample(m.body, "imgbatch_written_bytes_total{provider=\"p\"}") ==
          env.number("SELECT sum(bytes) FROM outputs"));
    CHECK(metric_sample(m.body,
                        "imgbatch_attempts_total{provider=\"p\",outcome=\"ok\",class=\"\"}") == 7);
    CHECK(metric_sample(
              m.body,
              "imgbatch_attempts_total{provider=\"p\",outcome=\"error\",class=\"server\"}") == 1);
    CHECK(metric_sample(m.body, "imgbatch_request_duration_seconds_count{provider=\"p\"}") == 8);
    CHECK(metric_sample(
              m.body, "imgbatch_request_duration_seconds_bucket{provider=\"p\",le=\"0.5\"}") >= 1);
    CHECK(metric_sample(m.body, "imgbatch_usage_tokens_total{provider=\"p\",kind=\"total\"}") > 0);
    CHECK(metric_sample(m.body, "imgbatch_commit_duration_seconds_count") >= 1);
    CHECK(metric_sample(m.body, "imgbatch_jobs{state=\"queued\"}") == 0);
    CHECK(metric_sample(m.body, "imgbatch_requests{provider=\"p\",state=\"queued\"}") == 0);
    std::string said;
    CHECK_MESSAGE(promtool_check(m.body, &said) == 0, said);
    daemon->signal(SIGTERM);
    CHECK(daemon->wait(30) == 0);
}

TEST_CASE("metrics: a paused provider shows its reason") {
    Sim sim({"--api-key", "right"});
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p", R"("api_key_env": "METRICS_TEST_KEY")")}, fast_retry(),
                  10, "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    env.enqueue(jobs(1));
    Process daemon({"--config", env.config, "run"}, {"METRICS_TEST_KEY=wrong"}, env.dir.path());
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [](const std::string& body) {
            return metric_sample(body,
                                 "imgbatch_provider_paused{provider=\"p\",reason=\"auth\"}") == 1;
        },
        30, m));
    INFO("scrape: " << m.body);
    CHECK(metric_sample(m.body, "imgbatch_provider_paused{provider=\"p\",reason=\"quota\"}") == 0);
    CHECK(metric_sample(
              m.body, "imgbatch_attempts_total{provider=\"p\",outcome=\"error\",class=\"auth\"}") ==
          1);
    daemon.signal(SIGTERM);
    CHECK(daemon.wait(30) == 0);
}

TEST_CASE("metrics: an address that cannot be bound is a configuration error naming it") {
    Sim sim;
    Listener taken;
    const std::string address = "127.0.0.1:" + std::to_string(taken.port());
    DaemonEnv env({openai_provider(sim, "p")}, fast_retry(), 10,
                  "\"metrics_listen\": \"" + address + "\"");
    env.enqueue(jobs(1));
    RunResult r = env.cli({"run", "--until-idle"}, "", 30);
    INFO("stderr: " << r.err);
    // The exit code of any configuration error (a config file naming an unknown key).
    DaemonEnv bad({openai_provider(sim, "p")}, fast_retry(), 10, "\"no_such_key\": 1");
    RunResult config_error = bad.cli({"run", "--until-idle"}, "", 30);
    REQUIRE(config_error.code != 0);
    CHECK(r.code == config_error.code);
    CHECK(r.err.find("metrics_listen: cannot listen on " + address) != std::string::npos);
    // Nothing started: no call, no daemon row.
    CHECK(sim.stat("requests") == 0);
    CHECK(env.number("SELECT count(*) FROM daemons") == 0);
    CHECK(env.job_state("j0") == "queued");

    DaemonEnv malformed({openai_provider(sim, "p")}, fast_retry(), 10,
                        "\"metrics_listen\": \"localhost:http\"");
    RunResult m = malformed.cli({"run", "--until-idle"}, "", 30);
    CHECK(m.code == config_error.code);
    CHECK(m.err.find("metrics_listen") != std::string::npos);
}

TEST_CASE("metrics: the shipped alert rules pass promtool check rules and their tests") {
    REQUIRE(run_shell("command -v promtool") == 0);
    const std::string dir = std::string(IMGBATCH_SOURCE_DIR) + "/examples/prometheus";
    CHECK(run_shell("promtool check rules " + dir + "/imgbatch-alerts.yml") == 0);
    CHECK(run_shell("cd " + dir + " && promtool test rules imgbatch-alerts.test.yml") == 0);
}
