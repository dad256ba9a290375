// `imgbatch run` end to end against `imgbatch sim`: the three API styles, --until-idle, rows
// inserted by plain SQL, and a graceful stop on SIGTERM.
#include <doctest/doctest.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;

namespace {

std::string provider(const std::string& name, const std::string& api, const std::string& url,
                     const std::string& models) {
    return "{\"name\": \"" + name + "\", \"api\": \"" + api + "\", \"base_url\": \"" + url +
           "\", \"models\": " + models +
           ", \"max_concurrency\": 4, \"timeout_s\": 20, \"connect_timeout_s\": 5}";
}

// A config with an openai, a google and an openai-chat provider on the sim.
std::string write_config(const TempDir& dir, const Sim& sim, double grace_s = 10) {
    std::string cfg =
        "{\"database\": \"" + dir.file("t.db") + "\", \"output_dir\": \"" + dir.file("out") +
        "\", \"poll_interval_s\": 0.2, \"shutdown_grace_s\": " + std::to_string(grace_s) +
        ", \"retry\": {\"max_attempts\": 4, \"base_delay_s\": 0.05, "
        "\"max_delay_s\": 0.5},\n \"providers\": [" +
        provider("oa", "openai", sim.url() + "/v1", "[\"gpt-image-2\"]") + ",\n" +
        provider("gg", "google", sim.url() + "/v1beta", "[\"imagen-4.0-generate-001\"]") + ",\n" +
        provider("chat", "openai-chat", sim.url() + "/v1", "[\"sora_image\"]") + "]}";
    std::string path = dir.file("config.json");
    write_file(path, cfg);
    return path;
}

// Every recorded output exists with its recorded size and sha256.
void check_outputs(const std::string& db) {
    auto rows = sql_rows(db, "SELECT path, sha256, bytes FROM outputs");
    for (const auto& row : rows) {
        auto a = row.find('|');
        auto b = row.rfind('|');
        std::string path = row.substr(0, a);
        INFO(path);
        REQUIRE(fs::exists(path));
        CHECK(sha256_file(path) == row.substr(a + 1, b - a - 1));
        CHECK(std::to_string(fs::file_size(path)) == row.substr(b + 1));
    }
}

// One job of each API style: cat (openai, n 3), dog (google, n dog_n), fox (openai-chat).
std::string three_styles(int dog_n) {
    return "{\"key\": \"cat\", \"prompt\": \"a cat\", \"model\": \"gpt-image-2\", \"n\": 3}\n"
           "{\"key\": \"dog\", \"prompt\": \"a dog\", \"model\": "
           "\"imagen-4.0-generate-001\", \"n\": " +
           std::to_string(dog_n) +
           "}\n"
           "{\"key\": \"fox\", \"prompt\": \"a fox\", \"model\": \"sora_image\", \"n\": 1}\n";
}

// Enqueues jobs as batch, then `run --until-idle`.
RunResult enqueue_and_run(const std::string& cfg, const TempDir& dir, const std::string& jobs,
                          const std::string& batch) {
    write_file(dir.file("jobs.jsonl"), jobs);
    auto enq = run({"--config", cfg, "enqueue", dir.file("jobs.jsonl"), "--batch", batch});
    REQUIRE(enq.code == 0);
    return run({"--config", cfg, "run", "--until-idle"}, "", {}, "", 60);
}

}  // namespace

TEST_CASE("run --until-idle: three API styles, files named and recorded") {
    Sim sim;
    TempDir dir;
    std::string cfg = write_config(dir, sim);
    std::string db = dir.file("t.db");
    auto r = enqueue_and_run(
        cfg, dir,
        three_styles(6) + "{\"prompt\": \"an owl #url\", \"model\": \"gpt-image-2\", \"n\": 2}\n",
        "night run");
    INFO(r.err);
    REQUIRE(r.code == 0);

    CHECK(sql_value(db, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == "4");
    CHECK(sql_value(db, "SELECT count(*) FROM requests WHERE state != 'succeeded'") == "0");
    // Imagen: at most 4 per request -> 4 + 2.
    CHECK(sql_rows(db,
                   "SELECT r.n FROM requests r JOIN jobs j ON j.id = r.job_id "
                   "WHERE j.key = 'dog' ORDER BY r.seq") == std::vector<std::string>{"4", "2"});
    CHECK(sql_value(db, "SELECT count(*) FROM outputs") == "12");
    std::string owl = sql_value(db, "SELECT id FROM jobs WHERE key IS NULL");
    std::string batch = dir.file("out") + "/night run/";  // names stay readable
    for (const std::string& name :
         {std::string("cat-0.png"), std::string("cat-2.png"), std::string("dog-0.png"),
          std::string("dog-5.png"), std::string("fox-0.png"), "job-" + owl + "-0.png",
          "job-" + owl + "-1.png"}) {
        INFO(name);
        CHECK(fs::exists(batch + name));
    }
    CHECK(sql_value(db, "SELECT count(*) FROM outputs WHERE path LIKE '%/night run/dog-%.png'") ==
          "6");
    check_outputs(db);
    // No temporary files are left.
    for (const auto& f : fs::directory_iterator(batch))
        CHECK(f.path().filename().string().ends_with(".png"));
    // One line per attempt in the log, without the prompt.
    CHECK(r.err.find("event=attempt") != std::string::npos);
    CHECK(r.err.find("a cat") == std::string::npos);
    // What it cost: the provider's usage, summed per job, is in the export.
    auto ex = run({"--config", cfg, "export", "--batch", "night run"});
    REQUIRE(ex.code == 0);
    auto first = ex.out.substr(0, ex.out.find('\n'));
    CHECK(first.find("\"key\":\"cat\"") != std::string::npos);
    CHECK(first.find("\"usage\":{\"total_tokens\":") != std::string::npos);
}

TEST_CASE("run --until-idle: small answers (decoded on the network thread) are kept whole") {
    // 4x4 PNGs: every answer is under the size decoded without the decode pool; the test
    // above has answers over it.
    Sim sim({"--image-size", "4"});
    TempDir dir;
    std::string cfg = write_config(dir, sim);
    std::string db = dir.file("t.db");
    auto r = enqueue_and_run(cfg, dir, three_styles(2), "tiny");
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(sql_value(db, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == "3");
    CHECK(sql_value(db, "SELECT count(*) FROM outputs") == "6");
    CHECK(sim.stat("images") == 6);  // every image served is kept
    CHECK(sql_value(db, "SELECT min(width) || 'x' || max(height) FROM outputs") == "4x4");
    check_outputs(db);
}

TEST_CASE("rows inserted by plain SQL are planned and run; bad rows rejected") {
    Sim sim;
    TempDir dir;
    std::string cfg = write_config(dir, sim);
    std::string db = dir.file("t.db");
    REQUIRE(run({"--config", cfg, "init"}).code == 0);
    {
        SQLite::Database w(db, SQLite::OPEN_READWRITE);
        w.exec(
            "INSERT INTO jobs(prompt, model, n) VALUES ('by sql', 'gpt-image-2', 2), "
            "('bad model', 'no-such-model', 1)");
    }
    auto r = run({"--config", cfg, "run", "--until-idle"}, "", {}, "", 60);
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(sql_value(db, "SELECT state || ',' || images_done FROM jobs WHERE prompt = 'by sql'") ==
          "succeeded,2");
    CHECK(sql_value(db, "SELECT state FROM jobs WHERE prompt = 'bad model'") == "rejected");
    CHECK(sql_value(db, "SELECT error FROM jobs WHERE prompt = 'bad model'") != "");
    CHECK(sql_value(db, "SELECT count(*) FROM outputs WHERE path LIKE '%/sql/%'") == "2");
    check_outputs(db);
}

TEST_CASE("SIGTERM: in-flight requests go back to the queue without using an attempt") {
    Sim sim;
    TempDir dir;
    std::string cfg = write_config(dir, sim, 0.5);
    std::string db = dir.file("t.db");
    std::string lines;
    for (int i = 0; i < 4; ++i)
        lines += "{\"prompt\": \"slow " + std::to_string(i) +
                 " #slow=4000\", \"model\": \"gpt-image-2\", \"n\": 1}\n";
    write_file(dir.file("slow.jsonl"), lines);
    REQUIRE(run({"--config", cfg, "enqueue", dir.file("slow.jsonl")}).code == 0);

    Process daemon({"--config", cfg, "run"});
    // Wait until the requests are running.
    for (int i = 0; i < 100; ++i) {
        if (sql_value(db, "SELECT count(*) FROM requests WHERE state = 'running'") == "4") break;
        ::usleep(50'000);
    }
    INFO(daemon.err());
    REQUIRE(sql_value(db, "SELECT count(*) FROM requests WHERE state = 'running'") == "4");
    daemon.signal(SIGTERM);
    auto code = daemon.wait(30);
    INFO(daemon.err());
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(sql_value(db, "SELECT count(*) FROM requests WHERE state = 'running'") == "0");
    CHECK(sql_value(db, "SELECT count(*) FROM requests WHERE state = 'queued'") == "4");
    CHECK(sql_value(db, "SELECT count(*) FROM attempts WHERE outcome = 'returned'") == "4");
    CHECK(sql_value(db, "SELECT sum(attempts) FROM requests") == "0");
    CHECK(daemon.err().find("event=stopping reason=SIGTERM") != std::string::npos);

    // A second run finishes them.
    auto r = run({"--config", cfg, "run", "--until-idle"}, "", {}, "", 60);
    REQUIRE(r.code == 0);
    CHECK(sql_value(db, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == "4");
    check_outputs(db);
}
