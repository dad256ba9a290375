// Paths and exit codes an operator relies on (README "Paths", "Command line"): relative
// database/output_dir resolve against the config file's directory whatever the caller's
// working directory; a read command on a missing database names the path it looked at and
// creates nothing; configuration errors exit 78 (EX_CONFIG), which the unit does not restart.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;

TEST_CASE("paths: relative database and output_dir follow the config file, not the cwd") {
    Sim sim;
    TempDir conf_dir, elsewhere;
    fs::create_directories(conf_dir.file("sub"));
    const std::string config = conf_dir.file("sub/imgbatch.json");
    write_file(config,
               "{\"database\": \"jobs.db\", \"output_dir\": \"../images\",\n"
               " \"poll_interval_s\": 0.1, \"retry\": " +
                   fast_retry() + ",\n \"providers\": [" + openai_provider(sim, "p") + "]}\n");
    // Every command runs in another directory.
    auto cli = [&](const std::vector<std::string>& args, const std::string& in = "") {
        std::vector<std::string> all{"--config", config};
        all.insert(all.end(), args.begin(), args.end());
        return run(all, in, {}, elsewhere.path());
    };
    RunResult e = cli({"enqueue", "-", "--batch", "b"}, job_line("fox", "a fox", "gpt-image-2", 2));
    INFO("enqueue: " << e.err);
    REQUIRE(e.code == 0);
    CHECK(fs::exists(conf_dir.file("sub/jobs.db")));
    CHECK(!fs::exists(elsewhere.file("jobs.db")));

    RunResult r = cli({"run", "--until-idle"});
    INFO("run: " << DaemonEnv::tail(r.err));
    REQUIRE(r.code == 0);
    CHECK(r.err.find(conf_dir.file("sub/jobs.db")) != std::string::npos);
    CHECK(sql_value(conf_dir.file("sub/jobs.db"), "SELECT state FROM jobs") == "succeeded");
    // Money path: every image the sim served is a file in the config's output directory.
    const long long served = sim.stat("images");
    CHECK(served == 2);
    int files = 0;
    for (const auto& f : fs::recursive_directory_iterator(conf_dir.file("images")))
        files += f.is_regular_file();
    CHECK(files == served);
    CHECK(std::stoll(sql_value(conf_dir.file("sub/jobs.db"), "SELECT count(*) FROM outputs")) ==
          served);
    CHECK(!fs::exists(elsewhere.file("images")));
    CHECK(!fs::exists(conf_dir.file("sub/images")));

    // Read commands from a third directory see the same database.
    TempDir third;
    RunResult s = run({"--config", config, "jobs"}, "", {}, third.path());
    CHECK(s.code == 0);
    CHECK(s.out.find("succeeded") != std::string::npos);
    // --db stays relative to the caller's directory (a command-line path).
    RunResult d = run({"--config", config, "--db", "jobs.db", "status"}, "", {}, third.path());
    CHECK(d.code == 2);
    CHECK(d.err.find("no database at " + third.file("jobs.db")) != std::string::npos);
}

TEST_CASE("paths: a read command on a missing database names it and creates nothing") {
    TempDir dir, cwd;
    const std::string config = dir.file("imgbatch.json");
    write_file(config, "{\"database\": \"missing.db\"}\n");
    for (const std::vector<std::string>& cmd : {std::vector<std::string>{"status"},
                                                {"jobs"},
                                                {"show", "1"},
                                                {"export"},
                                                {"cancel", "1"},
                                                {"retry", "1"}}) {
        CAPTURE(cmd.front());
        std::vector<std::string> args{"--config", config};
        args.insert(args.end(), cmd.begin(), cmd.end());
        RunResult r = run(args, "", {}, cwd.path());
        CHECK(r.code == 2);
        CHECK(r.err.find("no database at " + dir.file("missing.db") + " (from 'database' of " +
                         config + ")") != std::string::npos);
        CHECK(r.err.find("init") == std::string::npos);  // no offer to create another one
        CHECK(!fs::exists(dir.file("missing.db")));
        CHECK(!fs::exists(cwd.file("missing.db")));
    }
    // Without any config: the default in the working directory, named as such.
    RunResult r = run({"status"}, "", {}, cwd.path());
    CHECK(r.code == 2);
    CHECK(r.err.find("no database at " + cwd.file("imgbatch.db") + " (from the default") !=
          std::string::npos);
    CHECK(!fs::exists(cwd.file("imgbatch.db")));
}

TEST_CASE("exit codes: configuration errors exit 78 (EX_CONFIG), other start errors 2") {
    TempDir dir;
    write_file(dir.file("bad.json"), "{\"database\": \"x.db\", \"poll_interval_s\": -1}\n");
    RunResult bad = run({"--config", dir.file("bad.json"), "run"}, "", {}, dir.path());
    CHECK(bad.code == 78);
    CHECK(bad.err.find("poll_interval_s") != std::string::npos);
    CHECK(run({"--config", dir.file("bad.json"), "status"}, "", {}, dir.path()).code == 78);
    CHECK(run({"--config", dir.file("none.json"), "run"}, "", {}, dir.path()).code == 78);

    // A provider whose key variable is not set: refused at start, exit 78.
    write_file(dir.file("nokey.json"),
               "{\"providers\": [{\"name\": \"p\", \"api\": \"openai\", \"base_url\": "
               "\"http://127.0.0.1:9/v1\", \"api_key_env\": \"IMGBATCH_TEST_UNSET_KEY\", "
               "\"models\": [\"gpt-image-2\"]}]}\n");
    RunResult nokey =
        run({"--config", dir.file("nokey.json"), "run", "--until-idle"}, "", {}, dir.path());
    CHECK(nokey.code == 78);
    CHECK(nokey.err.find("IMGBATCH_TEST_UNSET_KEY") != std::string::npos);
    // Usage errors stay 2.
    CHECK(run({"frobnicate"}, "", {}, dir.path()).code == 2);
}

TEST_CASE(
    "layout: in a setgid group directory with umask 0007, the database and its -wal and "
    "-shm files are the group's and group-writable") {
    // README "Sharing the database with other users": what the unit's StateDirectoryMode=2770
    // and UMask=0007 give the daemon, and a user of the group with umask 0007.
    if (::geteuid() != 0) {
        MESSAGE("skipped: needs root to give the directory another group");
        return;
    }
    TempDir dir;
    const std::string state = dir.file("state");
    fs::create_directory(state);
    // A group that is not root's own: files inherit it only through the setgid bit.
    REQUIRE(::chown(state.c_str(), 0, 65534) == 0);
    REQUIRE(::chmod(state.c_str(), 02770) == 0);
    write_file(dir.file("imgbatch.json"),
               "{\"database\": \"state/imgbatch.db\", \"output_dir\": \"state/out\", "
               "\"providers\": [" +
                   provider_json("p", "openai", "http://127.0.0.1:9/v1", {"gpt-image-2"}) + "]}\n");
    write_file(dir.file("jobs.jsonl"), job_line("a", "a fox", "gpt-image-2", 1));
    // An open connection keeps -wal and -shm while another process enqueues.
    const std::string cmd = "umask 0007 && cd / && " + imgbatch_bin() + " --config " +
                            dir.file("imgbatch.json") + " init >/dev/null && sqlite3 " + state +
                            "/imgbatch.db 'PRAGMA journal_mode' >/dev/null";
    REQUIRE(run_shell(cmd) == 0);
    SQLite::Database reader(state + "/imgbatch.db", SQLite::OPEN_READONLY);
    reader.exec("BEGIN");
    reader.exec("SELECT count(*) FROM jobs");  // holds a read snapshot: the WAL stays
    REQUIRE(run_shell("umask 0007 && cd / && " + imgbatch_bin() + " --config " +
                      dir.file("imgbatch.json") + " enqueue " + dir.file("jobs.jsonl") +
                      " >/dev/null 2>&1") == 0);
    for (const std::string name : {"imgbatch.db", "imgbatch.db-wal", "imgbatch.db-shm", "out"}) {
        CAPTURE(name);
        struct stat st {};
        REQUIRE(::stat((state + "/" + name).c_str(), &st) == 0);
        CHECK(st.st_gid == 65534);
        CHECK((st.st_mode & 0060) == 0060);  // group read and write
        CHECK((st.st_mode & 0007) == 0);     // nothing for others
    }
    reader.exec("COMMIT");
}
