// Spend through the real binary: after a run against `imgbatch sim`, `status` (spend and the
// projection of what is queued), `export` (per job and per image), sidecars, the report and
// the metric imgbatch_spend_usd_total agree with the attempts' recorded costs.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cmath>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {}  // namespace

TEST_CASE("spend: status, export, sidecars, the report and the metric show what was spent") {
    REQUIRE(run_shell("command -v promtool") == 0);
    Sim sim;
    const int port = free_port();
    DaemonEnv env(
        {openai_provider(sim)}, fast_retry(), 10,
        "\"sidecar\": true, \"metrics_listen\": \"127.0.0.1:" + std::to_string(port) + "\"");
    env.enqueue(job_line("a", "a red fox", "gpt-image-2", 2) +
                job_line("b", "a blue owl", "gpt-image-2", 1));
    auto daemon = env.start_run();
    REQUIRE(wait_for(
        [&] {
            return env.number(
                       "SELECT count(*) FROM jobs WHERE state = "
                       "'succeeded'") == 2;
        },
        60));
    const double spent =
        num_or_nan(env.value("SELECT sum(cost_usd) FROM attempts WHERE billed = 1"));
    CHECK(spent > 0);
    // The metric counts the same dollars; the scrape passes promtool.
    SimpleResponse m;
    REQUIRE(scrape_until(
        port,
        [](const std::string& body) {
            return metric_sample(
                       body, "imgbatch_spend_usd_total{provider=\"oa\",model=\"gpt-image-2\"}") > 0;
        },
        20, m));
    CHECK(
        metric_sample(m.body, "imgbatch_spend_usd_total{provider=\"oa\",model=\"gpt-image-2\"}") ==
        doctest::Approx(spent));
    CHECK(metric_sample(m.body, "imgbatch_spend_usd_total{provider=\"oa\",model=\"dall-e-3\"}") ==
          0);
    write_file(env.dir.file("scrape.txt"), m.body);
    CHECK(run_shell("promtool check metrics < " + env.dir.file("scrape.txt")) == 0);
    daemon->signal(SIGTERM);
    CHECK(daemon->wait(30) == 0);
    CHECK(env.number("SELECT count(*) FROM outputs") == sim.stat("images"));

    // Something queued, not run: its projection. gpt-image-2 with size and quality left to the
    // vendor: at worst high 1024x1024 (7024 tokens at $30/1M) and the prompt's bytes.
    const std::string later = "a later picture";
    env.enqueue(job_line("c", later, "gpt-image-2", 1), "b2");
    auto s = json::parse(env.cli({"status", "--json"}).out).as_object();
    CHECK(s.at("spend").at("usd").to_number<double>() == doctest::Approx(spent));
    CHECK(s.at("spend").at("billed_attempts").as_int64() == 2);
    CHECK(s.at("projected").at("requests").as_int64() == 1);
    CHECK(s.at("projected").at("worst_usd").to_number<double>() ==
          doctest::Approx((later.size() + 16) * 5e-6 + 7024 * 30e-6));
    auto sb = json::parse(env.cli({"status", "--batch", "b2", "--json"}).out).as_object();
    CHECK(sb.at("spend").at("usd").to_number<double>() == 0);
    auto text = env.cli({"status"}).out;
    CHECK(text.find("spend: $") != std::string::npos);
    CHECK(text.find("projected: ") != std::string::npos);

    // Export: per job the sum of its attempts, per image its share; CSV has the column.
    double jobs_total = 0;
    for (const auto& line : DaemonEnv::split(env.cli({"export", "--batch", "b"}).out, '\n')) {
        if (line.empty()) continue;
        auto j = json::parse(line).as_object();
        const double cost = j.at("cost_usd").to_number<double>();
        CHECK(cost == doctest::Approx(num_or_nan(env.value(
                          "SELECT sum(cost_usd) FROM attempts WHERE billed = 1 AND job_id = " +
                          std::to_string(j.at("id").as_int64())))));
        jobs_total += cost;
    }
    CHECK(jobs_total == doctest::Approx(spent));
    double images_total = 0;
    int images = 0;
    for (const auto& line :
         DaemonEnv::split(env.cli({"export", "--batch", "b", "--per-image"}).out, '\n')) {
        if (line.empty()) continue;
        auto j = json::parse(line).as_object();
        images_total += j.at("cost_usd").to_number<double>();
        ++images;
        // The sidecar carries the same share.
        auto side = json::parse(read_file(std::string(j.at("path").as_string()) + ".json"));
        CHECK(side.at("cost_usd").to_number<double>() ==
              doctest::Approx(j.at("cost_usd").to_number<double>()));
    }
    CHECK(images == 3);
    CHECK(images_total == doctest::Approx(spent));
    auto csv = env.cli({"export", "--format", "csv"}).out;
    CHECK(csv.substr(0, csv.find('\r')).ends_with(",usage,cost_usd"));

    // show: each attempt's billing and cost.
    auto show = json::parse(env.cli({"show", env.job_id("a"), "--json"}).out).as_object();
    const auto& log = show.at("attempt_log").as_array();
    REQUIRE(log.size() == 1);
    CHECK(log[0].at("billed") == json::value(true));
    CHECK(log[0].at("cost_basis") == json::value("tokens"));
    CHECK(log[0].at("cost_usd").to_number<double>() ==
          doctest::Approx(num_or_nan(
              env.value("SELECT cost_usd FROM attempts WHERE job_id = " + env.job_id("a")))));

    // The report's batch summary has the spend.
    REQUIRE(env.cli({"report", "-o", env.dir.file("report"), "--thumb-size", "32"}).code == 0);
    auto page = read_file(env.dir.file("report/index.html"));
    CHECK(page.find("\"spend\":{\"usd\":") != std::string::npos);
}
