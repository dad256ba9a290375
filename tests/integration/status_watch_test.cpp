// `status --watch` (frames on a terminal through `script`, plain lines through a pipe) and
// `imgbatch wait` (exit codes) during real daemon runs against `imgbatch sim`.
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// n one-image jobs "kN" in batch b.
std::string jobs_lines(int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
        s += job_line("k" + std::to_string(i), "prompt " + std::to_string(i), "gpt-image-2", 1);
    return s;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (auto end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// "\r\x1b[NA": back up N lines to redraw the frame.
bool cursor_up(const std::string& text) {
    for (auto at = text.find("\r\x1b["); at != std::string::npos;
         at = text.find("\r\x1b[", at + 1)) {
        std::size_t i = at + 3;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        if (i > at + 3 && i < text.size() && text[i] == 'A') return true;
    }
    return false;
}

// Images the sim served equal images kept (rows and files).
void check_kept(const DaemonEnv& env, const Sim& sim, long long images) {
    CHECK(sim.stat("images") == images);
    CHECK(env.number("SELECT count(*) FROM outputs") == images);
    for (const auto& path : env.rows("SELECT path FROM outputs"))
        CHECK(std::filesystem::exists(path));
}

}  // namespace

TEST_CASE("status --watch on a terminal: redrawn frames with a bar, then the finished state") {
    Sim sim({"--latency-ms", "150"});
    DaemonEnv env({openai_provider(sim, "oa", R"("max_concurrency": 2)")});
    env.enqueue(jobs_lines(8), "b");
    // `script` gives the watch a pseudo-terminal; the watch starts before the daemon, so it
    // draws at least one unfinished frame, and ends by itself once the batch is final.
    const std::string cmd =
        imgbatch_bin() + " --config " + env.config + " status --watch --batch b --interval 0.2";
    Process watch({"/usr/bin/script", "-qfec", cmd, "/dev/null"},
                  {"TERM=xterm", "NO_COLOR=1", "COLUMNS=200"}, env.dir.path(), "", true);
    REQUIRE(wait_for([&] { return has(watch.out(), "images"); }, 30));
    auto run = env.start_run({"--until-idle"});
    REQUIRE(run->wait(90) == std::optional<int>(0));
    REQUIRE(watch.wait(30) == std::optional<int>(0));
    const std::string out = watch.out();
    INFO(out);
    CHECK(has(out, "\x1b[2K"));  // clear line
    CHECK(cursor_up(out));       // redrawn in place, not scrolled
    CHECK(has(out, "[........................] 0.0%"));
    CHECK(has(out, "[########################] 100.0%  8/8 images"));
    CHECK(has(out, "finished"));
    CHECK(has(out, "succeeded 8, "));
    CHECK(has(out, "lane "));
    CHECK(has(out, "daemon: "));
    check_kept(env, sim, 8);

    // TERM=dumb: plain lines, no escape sequences (the batch is final: one line, then exit).
    Process dumb({"/usr/bin/script", "-qfec", cmd, "/dev/null"}, {"TERM=dumb"}, env.dir.path(), "",
                 true);
    REQUIRE(dumb.wait(30) == std::optional<int>(0));
    CHECK_FALSE(has(dumb.out(), "\x1b["));
    CHECK(has(dumb.out(), " b 100.0% 8/8 images"));
}

TEST_CASE("status --watch through a pipe: one plain line per interval, ending when final") {
    Sim sim({"--latency-ms", "100"});
    DaemonEnv env({openai_provider(sim, "oa", R"("max_concurrency": 2)")});
    env.enqueue(jobs_lines(6), "b");
    Process watch(
        {"--config", env.config, "status", "--watch", "--batch", "b", "--interval", "0.2"}, {},
        env.dir.path());
    REQUIRE(wait_for([&] { return has(watch.out(), "\n"); }, 30));
    auto run = env.start_run({"--until-idle"});
    REQUIRE(run->wait(90) == std::optional<int>(0));
    REQUIRE(watch.wait(30) == std::optional<int>(0));
    const auto lines = lines_of(watch.out());
    INFO(watch.out());
    REQUIRE(lines.size() >= 2);
    for (const auto& l : lines) {
        CHECK(l.size() > 25);
        CHECK(l[4] == '-');
        CHECK(l[10] == 'T');
        CHECK(l[19] == '.');  // milliseconds
        CHECK(l[23] == 'Z');  // UTC
        CHECK_FALSE(has(l, "\x1b"));
    }
    CHECK(has(lines.front(), " b 0.0% 0/6 images"));
    CHECK(has(lines.back(), " b 100.0% 6/6 images"));
    CHECK(has(lines.back(), "finished"));
    CHECK(has(lines.back(), "lanes: oa "));
    check_kept(env, sim, 6);

    // --json: one status object a line, with the same end once the batch is final.
    auto r = env.cli({"status", "--watch", "--json", "--batch", "b", "--interval", "0.2"});
    CHECK(r.code == 0);
    const auto objects = lines_of(r.out);
    REQUIRE(objects.size() == 1);
    auto o = boost::json::parse(objects[0]).as_object();
    CHECK(o.at("batches").at(0).at("state") == "finished");
    CHECK(o.at("batches").at(0).at("progress") == 1);
    // The same spend and projection as `status --json`.
    auto once = env.cli({"status", "--json", "--batch", "b"});
    REQUIRE(once.code == 0);
    auto one = boost::json::parse(once.out).as_object();
    REQUIRE(o.contains("spend"));
    REQUIRE(o.contains("projected"));
    CHECK(o.at("spend") == one.at("spend"));
    CHECK(o.at("projected") == one.at("projected"));
    CHECK(o.at("spend").at("billed_attempts").as_int64() > 0);
    CHECK(o.at("spend").at("usd").as_double() > 0);
}

TEST_CASE("wait: blocks until the batch is final; exit 0, 1, 2 and 124") {
    Sim sim({"--latency-ms", "50"});
    DaemonEnv env({openai_provider(sim)});
    env.enqueue(jobs_lines(4), "b");
    env.enqueue(job_line("c0", "to cancel", "gpt-image-2", 1), "c");

    // No daemon yet: it says so, and gives up at the timeout like timeout(1).
    auto r = env.cli({"wait", "--batch", "b", "--timeout", "0.3"});
    CHECK(r.code == 124);
    CHECK(has(r.err, "no daemon is running"));
    CHECK(has(r.err, "timed out"));
    // Unknown batch, bad usage, no database: 2.
    CHECK(env.cli({"wait", "--batch", "nope"}).code == 2);
    CHECK(env.cli({"wait", "--timeout", "-1"}).code == 2);
    CHECK(run({"--db", env.dir.file("missing.db"), "wait"}).code == 2);

    // Cancelled: final, but not succeeded.
    REQUIRE(env.cli({"cancel", "--batch", "c"}).code == 0);
    r = env.cli({"wait", "--batch", "c"});
    CHECK(r.code == 1);
    CHECK(has(r.out, "batch c: 1 jobs (cancelled 1)"));

    // Waits while the daemon works, then 0.
    Process waiter({"--config", env.config, "wait", "--batch", "b", "--interval", "0.1"}, {},
                   env.dir.path());
    auto daemon = env.start_run({"--until-idle"});
    REQUIRE(daemon->wait(90) == std::optional<int>(0));
    REQUIRE(waiter.wait(30) == std::optional<int>(0));
    CHECK(has(waiter.out(), "batch b: 4 jobs (succeeded 4)"));
    check_kept(env, sim, 4);
    // Every job of the database: c was cancelled.
    CHECK(env.cli({"wait"}).code == 1);
}
