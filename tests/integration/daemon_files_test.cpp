// Output files through the real binary: names that cannot collide, a second daemon that
// leaves a live daemon's staged files alone, crash leftovers removed at start, and an output
// directory that cannot be written refused at start.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Temporary files anywhere below dir (any naming).
int temp_files(const std::string& dir) {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->path().filename().string().ends_with(".tmp")) ++n;
    return n;
}

// Every output is a file of its own whose content has the recorded size and sha256.
void check_all_outputs(const DaemonEnv& env, std::size_t want) {
    auto rows = env.rows("SELECT path, bytes, sha256 FROM outputs ORDER BY id");
    CHECK(rows.size() == want);
    std::set<std::string> paths;
    for (const auto& row : rows) {
        auto f = DaemonEnv::split(row);
        REQUIRE(f.size() == 3);
        INFO(f[0]);
        paths.insert(f[0]);
        REQUIRE(fs::exists(f[0]));
        CHECK(std::to_string(fs::file_size(f[0])) == f[1]);
        CHECK(sha256_file(f[0]) == f[2]);
    }
    CHECK(paths.size() == rows.size());
}

}  // namespace

TEST_CASE("files: keys that look alike get distinct, readable files with their own images") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    // The key-less job is job 1, next to the key "1".
    std::string lines = "{\"prompt\": \"no key\", \"model\": \"gpt-image-2\", \"n\": 1}\n";
    for (const std::string key : {"\xe7\x8c\xab", "\xe7\x8b\x97", "a b", "a_b", "1"})
        lines += job_line(key, "picture of " + key, "gpt-image-2", 1);
    env.enqueue(lines, "night run");
    REQUIRE(env.value("SELECT id FROM jobs WHERE key IS NULL") == "1");
    env.run_until_idle();

    CHECK(env.number("SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 6);
    check_all_outputs(env, 6);
    CHECK(sim.stat("images") == 6);
    const std::string dir = env.out + "/night run/";
    for (const std::string name : {"\xe7\x8c\xab-0.png", "\xe7\x8b\x97-0.png", "a b-0.png",
                                   "a_b-0.png", "1-0.png", "job-1-0.png"}) {
        INFO(name);
        CHECK(fs::exists(dir + name));
    }
}

TEST_CASE("files: a second daemon never removes a live daemon's staged images") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("s0", "slow owl #slow=1000", "gpt-image-2", 1) +
                job_line("s1", "slow elk #slow=1000", "gpt-image-2", 1));
    // Both daemons ask for company: the second one must not be refused before it reaches
    // the files.
    auto first = env.start_run({"--until-idle", "--allow-multiple"});
    REQUIRE(wait_for([&] { return sim.stat("in_flight") == 2; }, 20));

    // Hold the database so that the first daemon's images stay staged (not yet committed).
    {
        SQLite::Database hold(env.db, SQLite::OPEN_READWRITE);
        hold.exec("BEGIN IMMEDIATE");
        REQUIRE(wait_for([&] { return temp_files(env.out) == 2; }, 20));

        // A second daemon starts on the same output directory (and waits for the database).
        auto second = env.start_run({"--max-seconds", "1", "--allow-multiple"});
        // Until it has taken its own temporary directory, or (before per-owner directories)
        // removed the first one's files.
        wait_for(
            [&] {
                std::error_code ec;
                int dirs = 0;
                for (const auto& e : fs::directory_iterator(env.out + "/.imgbatch-tmp", ec))
                    dirs += e.is_directory() ? 1 : 0;
                return dirs >= 2 || temp_files(env.out) < 2;
            },
            10);
        CHECK(temp_files(env.out) == 2);
        hold.exec("ROLLBACK");
        auto code = second->wait(30);
        INFO("second stderr: " << DaemonEnv::tail(second->err()));
        REQUIRE(code.has_value());
        CHECK(*code == 0);
    }
    auto code = first->wait(60);
    INFO("first stderr: " << DaemonEnv::tail(first->err()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(env.job_state("s0") == "succeeded");
    CHECK(env.job_state("s1") == "succeeded");
    env.check_outputs("s0", 1);
    env.check_outputs("s1", 1);
    // Nothing was paid for twice: every image served is kept.
    CHECK(sim.stat("images") == 2);
    CHECK(env.number("SELECT count(*) FROM outputs") == sim.stat("images"));
    CHECK(env.number("SELECT count(*) FROM attempts") == 2);
}

TEST_CASE("files: a final file a crash left unrecorded is removed at start") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    env.enqueue(job_line("k", "a heron", "gpt-image-2", 1));
    // As after a crash between the rename and the commit: the request was attempted and is
    // queued again, and its file is there without an output row.
    env.exec("UPDATE requests SET attempt_no = 1");
    fs::create_directories(env.out + "/b");
    write_file(env.out + "/b/k-0.png", "left by a crash");
    write_file(env.out + "/b/notes.txt", "the user's");

    RunResult r = env.run_until_idle();
    CHECK(r.err.find("event=orphan_files_removed count=1") != std::string::npos);
    CHECK(env.job_state("k") == "succeeded");
    env.check_outputs("k", 1);  // at k-0.png, with the new image
    CHECK(read_file(env.out + "/b/notes.txt") == "the user's");
    CHECK(sim.stat("images") == 1);
}

TEST_CASE("files: run refuses an output directory it cannot write, before any call") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "p")});
    // As root too: the parent of output_dir is a regular file.
    write_file(env.dir.file("file"), "not a directory");
    const std::string bad = env.dir.file("file") + "/out";
    std::string cfg = read_file(env.config);
    auto at = cfg.find(json_str(env.out));
    REQUIRE(at != std::string::npos);
    cfg.replace(at, json_str(env.out).size(), json_str(bad));
    write_file(env.config, cfg);
    env.enqueue(job_line("k", "a lantern", "gpt-image-2", 1));

    RunResult r = env.cli({"run", "--until-idle"}, "", 30);
    INFO("run stderr: " << r.err);
    CHECK(r.code == 78);  // a configuration error: EX_CONFIG
    CHECK(r.err.find(bad) != std::string::npos);
    CHECK(r.err.find("Not a directory") != std::string::npos);
    CHECK(sim.stat("requests") == 0);
    CHECK(env.job_state("k") == "queued");
}
