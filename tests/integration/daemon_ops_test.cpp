// Operating a running daemon: SIGHUP reloads provider limits (and keeps the old ones when
// the file is bad); an output directory that cannot be written is a local error that keeps
// the job queued without using its attempts.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <thread>

#include <boost/json/parse.hpp>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

namespace {

std::string jobs(int count) {
    std::string lines;
    for (int i = 0; i < count; ++i)
        lines += job_line("j" + std::to_string(i), "a quiet harbour " + std::to_string(i),
                          "gpt-image-2", 1);
    return lines;
}

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
    std::string text = read_file(path);
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    write_file(path, text.replace(at, from.size(), to));
}

}  // namespace

TEST_CASE("metrics: GET /metrics serves Prometheus text while the daemon runs") {
    Sim sim({"--latency-ms", "300"});
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p", "\"max_concurrency\": 2")}, fast_retry(), 10,
                  "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    env.enqueue(jobs(6));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("images") >= 2; }, 20));
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [](const std::string& body) {
            return body.find("outcome=\"ok\"") != std::string::npos;  // an attempt ended
        },
        10, m));
    CHECK(m.body.find("# TYPE imgbatch_requests_in_flight gauge") != std::string::npos);
    CHECK(m.body.find("imgbatch_requests_in_flight{provider=\"p\"}") != std::string::npos);
    CHECK(m.body.find("imgbatch_images_total{provider=\"p\"}") != std::string::npos);
    CHECK(m.body.find("imgbatch_attempts_total{provider=\"p\",outcome=\"ok\",class=\"\"}") !=
          std::string::npos);
    CHECK(http_request("GET", port, "/other").status == 404);
    auto code = daemon->wait(60);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}

TEST_CASE("metrics: a client that says nothing is disconnected after the read deadline") {
    Sim sim;
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p")}, fast_retry(), 10,
                  "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    auto daemon = env.start_run();
    REQUIRE(wait_for([&] { return http_request("GET", port, "/metrics").status == 200; }, 20));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto t0 = Clock::now();
    char c;
    ssize_t got = ::recv(fd, &c, 1, 0);  // blocks until the daemon closes the connection
    double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(fd);
    CHECK(got == 0);  // closed by the daemon, not by our 30 s receive timeout
    CHECK(waited < 25);
    CHECK(http_request("GET", port, "/metrics").status == 200);  // still serving
    daemon->signal(SIGTERM);
    CHECK(daemon->wait(30).has_value());
}

TEST_CASE("SIGHUP: new max_concurrency applies to the running daemon") {
    Sim sim({"--latency-ms", "300"});
    DaemonEnv env({openai_provider(sim, "p", "\"max_concurrency\": 1")});
    env.enqueue(jobs(16));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("requests") >= 2; }, 20));
    CHECK(sim.stat("max_in_flight") == 1);

    replace_in_file(env.config, "\"max_concurrency\": 1", "\"max_concurrency\": 4");
    daemon->signal(SIGHUP);
    CHECK(wait_for([&] { return sim.stat("in_flight") >= 4; }, 20));
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(sim.stat("max_in_flight") == 4);
    CHECK(daemon->err().find("event=reloaded provider=p max_concurrency=4") != std::string::npos);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 16);
}

TEST_CASE("status: IN_FLIGHT is the calls sent, never more than max_concurrency; CLAIMED apart") {
    // The daemon claims ahead of its free slots (the prefetch): the requests running under
    // its lease outnumber its calls. status used to show those claims as calls in flight.
    Sim sim({"--latency-ms", "10000"});
    const int port = free_port();
    DaemonEnv env({openai_provider(sim, "p", "\"max_concurrency\": 3")}, fast_retry(), 10,
                  "\"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    env.enqueue(jobs(30));
    auto daemon = env.start_run();
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 3; }, 20));
    // The heartbeat (every 5 s) reports the calls.
    auto in_flight = [&] {
        auto r = env.cli({"status", "--json"});
        REQUIRE(r.code == 0);
        auto p = json::parse(r.out).at("providers").as_array().at(0).as_object();
        return std::pair{p.at("in_flight").to_number<std::int64_t>(),
                         p.at("claimed").to_number<std::int64_t>()};
    };
    REQUIRE(wait_for([&] { return in_flight().first == 3; }, 15));
    auto [calls, claimed] = in_flight();
    CHECK(calls == 3);
    CHECK(claimed > 3);  // the prefetch
    CHECK(claimed == env.number("SELECT count(*) FROM requests WHERE state = 'running'"));
    auto text = env.cli({"status"}).out;
    INFO(text);
    CHECK(text.find("CLAIMED  IN_FLIGHT") != std::string::npos);
    // The metrics: the calls from the lane, the claimed requests as "running".
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [&](const std::string& body) {
            return body.find("imgbatch_requests{provider=\"p\",state=\"running\"} " +
                             std::to_string(claimed)) != std::string::npos;
        },
        10, m));
    CHECK(m.body.find("imgbatch_requests_in_flight{provider=\"p\"} 3") != std::string::npos);
    daemon->signal(SIGTERM);
    REQUIRE(daemon->wait(30).has_value());
    // A stopped daemon has no calls in flight.
    CHECK(in_flight().first == 0);
}

TEST_CASE("SIGHUP: a bad config file is reported and the old limits are kept") {
    Sim sim({"--latency-ms", "200"});
    DaemonEnv env({openai_provider(sim, "p", "\"max_concurrency\": 2")});
    env.enqueue(jobs(10));
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(wait_for([&] { return sim.stat("requests") >= 1; }, 20));

    replace_in_file(env.config, "\"max_concurrency\": 2", "\"max_concurrency\": \"lots\"");
    daemon->signal(SIGHUP);
    auto code = daemon->wait(60);
    INFO("daemon stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=reload_failed") != std::string::npos);
    CHECK(sim.stat("max_in_flight") == 2);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 10);
}

TEST_CASE("local error: an unwritable output directory holds dispatching, keeps paid images") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p", R"("max_concurrency": 2)")});
    // A regular file where the batch directory must go: every write fails (as root, too).
    std::filesystem::create_directories(env.out);
    write_file(env.out + "/b", "not a directory");
    std::string lines;
    for (int i = 0; i < 6; ++i)
        lines += job_line("k" + std::to_string(i), "a lantern in fog " + std::to_string(i),
                          "gpt-image-2", 1);
    env.enqueue(lines);

    auto daemon = env.start_run({"--until-idle"});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string status;
    while (std::chrono::steady_clock::now() < deadline) {
        status = env.cli({"status"}).out;
        if (status.find("local pause") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO("status: " << status);
    CHECK(status.find("local pause") != std::string::npos);
    CHECK(status.find("Not a directory") != std::string::npos);
    // Held: the answers in hand wait in memory; nothing more is asked for. (A lane's slot is
    // free as soon as an answer is in, so a call may have started before the first write
    // failed: at most one per slot.)
    const long long asked = sim.stat("requests");
    CHECK(asked <= 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(sim.stat("requests") == asked);
    CHECK(env.number("SELECT count(*) FROM attempts") == 0);

    // Once the directory can be written, the images held are written and the rest runs.
    std::filesystem::remove(env.out + "/b");
    auto code = daemon->wait(60);
    INFO("run stderr: " << DaemonEnv::tail(daemon->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(daemon->err().find("event=local_pause") != std::string::npos);
    CHECK(daemon->err().find("event=local_resumed") != std::string::npos);
    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 6);
    for (int i = 0; i < 6; ++i) env.check_outputs("k" + std::to_string(i), 1);
    // Every image served was kept, none was asked for twice, no attempt was spent.
    CHECK(sim.stat("requests") == 6);
    CHECK(sim.stat("images") == 6);
    CHECK(env.number("SELECT count(*) FROM attempts") == 6);
    CHECK(env.number("SELECT count(*) FROM attempts WHERE error_class = 'local'") == 0);
}
