// `imgbatch init` and `imgbatch enqueue` through the real binary: formats, every kind of bad
// input with its FILE:LINE message and exit code, duplicates, --strict and --dry-run.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "jobs/migrations.hpp"
#include "tests/integration/harness.hpp"

using namespace imgbatch::test;

namespace {

// A directory with imgbatch.json (two providers that are never called) and its database.
struct Cli {
    TempDir dir;
    std::string db = dir.file("t.db");
    Cli() {
        write_file(dir.file("imgbatch.json"), R"({
            // test configuration
            "database": "t.db", "output_dir": "out",
            // These tests are about input: the models' lifecycle (warnings) is left out here
            // and tested in daemon_catalog_test.
            "models": {"gpt-image-2": {"status": "active"}, "dall-e-3": {"status": "active"},
                       "dall-e-2": {"status": "active"},
                       "imagen-4.0-generate-001": {"status": "active"},
                       "imagen-3.0-generate-002": {"status": "active"}},
            "providers": [
              {"name": "oa", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
               "models": ["gpt-image-2", "dall-e-3", "dall-e-2"]},
              {"name": "gg", "api": "google", "base_url": "http://127.0.0.1:9/v1beta",
               "models": ["imagen-4.0-generate-001", "imagen-3.0-generate-002"]},
            ],
        })");
    }
    RunResult operator()(const std::vector<std::string>& args, const std::string& in = "") const {
        return run(args, in, {}, dir.path());
    }
    std::string file(const std::string& name, const std::string& content) const {
        write_file(dir.file(name), content);
        return name;
    }
    std::string count(const std::string& where = "1") const {
        return sql_value(db, "SELECT count(*) FROM jobs WHERE " + where);
    }
};

}  // namespace

TEST_CASE("init creates the database and the output directory") {
    Cli cli;
    auto r = cli({"init"});
    CHECK(r.code == 0);
    const std::string latest = std::to_string(imgbatch::jobs::migrations().size());
    // ./imgbatch.json names t.db and out: relative to the config file's directory.
    CHECK(r.out == "database " + cli.db + " (schema version " + latest + ")\noutput directory " +
                       cli.dir.file("out") + "\n");
    CHECK(sql_value(cli.db, "PRAGMA user_version") == latest);
    CHECK(cli({"init"}).code == 0);  // again: nothing to migrate
}

TEST_CASE("enqueue jsonl: job lines and OpenAI Batch lines") {
    Cli cli;
    cli.file(
        "a.jsonl",
        R"({"prompt": "a cat", "model": "gpt-image-2", "n": 3, "key": "k1", "size": "1024x1024", "metadata": {"row": 1}}
{"prompt": "a dog", "model": "dall-e-3", "n": 2, "priority": 5}

{"custom_id": "req-1", "method": "POST", "url": "/v1/images/generations", "body": {"model": "dall-e-2", "prompt": "a fox", "n": 12}}
)");
    auto r = cli({"enqueue", "a.jsonl", "--batch", "b1"});
    CHECK(r.code == 0);
    CHECK(r.err == "");
    // dall-e-3 makes one image per request, dall-e-2 ten.
    CHECK(r.out ==
          "batch b1: 3 jobs enqueued (17 images in 5 requests), 0 rejected, 0 duplicates\n");
    CHECK(sql_rows(cli.db,
                   "SELECT j.key, j.state, j.prompt, j.model, j.provider, j.n, j.priority, b.name "
                   "FROM jobs j JOIN batches b ON b.id = j.batch_id ORDER BY j.id") ==
          std::vector<std::string>{"k1|queued|a cat|gpt-image-2|oa|3|0|b1",
                                   "|queued|a dog|dall-e-3|oa|2|5|b1",
                                   "req-1|queued|a fox|dall-e-2|oa|12|0|b1"});
    CHECK(sql_value(cli.db, "SELECT json_extract(params, '$.size') FROM jobs WHERE key='k1'") ==
          "1024x1024");
    CHECK(sql_value(cli.db, "SELECT json_extract(metadata, '$.row') FROM jobs WHERE key='k1'") ==
          "1");
    CHECK(sql_rows(cli.db, "SELECT n FROM requests WHERE job_id = 3 ORDER BY seq") ==
          std::vector<std::string>{"10", "2"});
}

TEST_CASE("enqueue csv with quoted commas and newlines, txt, and stdin") {
    Cli cli;
    cli.file("p.csv",
             "prompt,model,n,size\n\"a cat, sitting\",gpt-image-2,2,1024x1536\n"
             "\"two\nlines\",dall-e-3,1,\n");
    auto r = cli({"enqueue", "p.csv", "--batch", "c"});
    CHECK(r.code == 0);
    CHECK(r.out == "batch c: 2 jobs enqueued (3 images in 2 requests), 0 rejected, 0 duplicates\n");
    CHECK(sql_rows(cli.db, "SELECT prompt, n FROM jobs ORDER BY id") ==
          std::vector<std::string>{"a cat, sitting|2", "two\nlines|1"});

    cli.file("p.txt", "a lighthouse\n\n# a comment\na harbour\n");
    r = cli({"enqueue", "p.txt", "--model", "imagen-4.0-generate-001", "--n", "2"});
    CHECK(r.code == 0);
    // The default batch name is the file stem and the time.
    CHECK(r.out.rfind("batch p-", 0) == 0);
    CHECK(has(r.out, ": 2 jobs enqueued (4 images in 2 requests)"));
    CHECK(cli.count("model = 'imagen-4.0-generate-001' AND provider = 'gg' AND n = 2") == "2");

    r = cli({"enqueue", "-"}, "{\"prompt\": \"from stdin\", \"model\": \"dall-e-3\"}\n");
    CHECK(r.code == 0);
    CHECK(r.out.rfind("batch stdin-", 0) == 0);
    CHECK(cli.count("prompt = 'from stdin'") == "1");

    r = cli({"enqueue", "-", "--format", "txt", "--model", "gpt-image-2", "--batch", "t"},
            "one\ntwo\n");
    CHECK(r.code == 0);
    CHECK(cli.count("prompt IN ('one', 'two')") == "2");
}

TEST_CASE("bad lines are reported as FILE:LINE and the good ones are stored") {
    Cli cli;
    const std::string long_prompt(4001, 'x');
    cli.file("mixed.jsonl",
             "{\"prompt\": \"good one\", \"model\": \"gpt-image-2\", \"key\": \"g1\"}\n"
             "{\"prompt\": \"broken\", \n"
             "{\"prompt\": \"a\", \"model\": \"no-such-model\"}\n"
             "{\"prompt\": \"a\", \"model\": \"dall-e-3\", \"size\": \"512x512\"}\n"
             "{\"prompt\": \"a\", \"model\": \"gpt-image-2\", \"quality\": \"ultra\"}\n"
             "{\"prompt\": \"a\", \"model\": \"dall-e-3\", \"background\": \"transparent\"}\n"
             "{\"prompt\": \"a\", \"model\": \"gpt-image-2\", \"n\": 0}\n"
             "{\"prompt\": \"\", \"model\": \"gpt-image-2\"}\n"
             "{\"prompt\": \"" +
                 long_prompt +
                 "\", \"model\": \"dall-e-3\"}\n"
                 "{\"prompt\": \"again\", \"model\": \"gpt-image-2\", \"key\": \"g1\"}\n"
                 "{\"prompt\": \"good two\", \"model\": \"dall-e-3\"}\n");
    auto r = cli({"enqueue", "mixed.jsonl", "--batch", "m"});
    CHECK(r.code == 1);
    CHECK(r.out == "batch m: 2 jobs enqueued (2 images in 2 requests), 9 rejected, 0 duplicates\n");
    check_has_all(r.err,
                  {"mixed.jsonl:2: ", "mixed.jsonl:3: field 'model': unknown model 'no-such-model'",
                   "mixed.jsonl:4: field 'size'", "mixed.jsonl:5: field 'quality'",
                   "mixed.jsonl:6: field 'background'", "mixed.jsonl:7: field 'n'",
                   "mixed.jsonl:8: field 'prompt'", "mixed.jsonl:9: field 'prompt'",
                   "mixed.jsonl:10: key 'g1' repeats line 1"});
    CHECK_FALSE(has(r.err, "mixed.jsonl:1:"));
    CHECK_FALSE(has(r.err, "mixed.jsonl:11:"));
    CHECK(sql_rows(cli.db, "SELECT prompt FROM jobs ORDER BY id") ==
          std::vector<std::string>{"good one", "good two"});
}

TEST_CASE("binary junk, an empty file, an unreadable file") {
    Cli cli;
    cli.file("junk.jsonl", std::string("\x00\x01\xff\xfe junk\n", 10));
    cli.file("empty.jsonl", "");
    cli.file("ok.txt", "fine\n");
    auto r = cli({"enqueue", "junk.jsonl", "empty.jsonl", "missing.jsonl", "ok.txt", "--model",
                  "gpt-image-2", "--batch", "j"});
    CHECK(r.code == 1);
    check_has_all(r.err, {"junk.jsonl:1: ", "empty.jsonl: ",
                          "missing.jsonl: cannot read: No such file or directory"});
    CHECK(r.out == "batch j: 1 jobs enqueued (1 images in 1 requests), 3 rejected, 0 duplicates\n");
    CHECK(cli.count() == "1");
}

TEST_CASE("a key already in the database is skipped, and re-runs are idempotent") {
    Cli cli;
    cli.file("k.jsonl",
             "{\"prompt\": \"one\", \"model\": \"gpt-image-2\", \"key\": \"a\"}\n"
             "{\"prompt\": \"two\", \"model\": \"gpt-image-2\", \"key\": \"b\"}\n");
    CHECK(cli({"enqueue", "k.jsonl", "--batch", "k"}).code == 0);
    auto r = cli({"enqueue", "k.jsonl", "--batch", "k"});
    CHECK(r.code == 0);
    CHECK(r.out == "batch k: 0 jobs enqueued (0 images in 0 requests), 0 rejected, 2 duplicates\n");
    check_has_all(r.err, {"k.jsonl:1: key 'a' already enqueued as job 1; skipped",
                          "k.jsonl:2: key 'b' already enqueued as job 2; skipped"});
    CHECK(cli.count() == "2");
}

TEST_CASE("--strict enqueues nothing when a line is rejected; --dry-run enqueues nothing") {
    Cli cli;
    cli.file("s.jsonl",
             "{\"prompt\": \"ok\", \"model\": \"gpt-image-2\"}\n"
             "{\"prompt\": \"bad\", \"model\": \"gpt-image-2\", \"n\": -1}\n");
    auto r = cli({"enqueue", "s.jsonl", "--strict", "--batch", "s"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "s.jsonl:2: field 'n'"));
    CHECK(has(r.out, "0 jobs enqueued"));
    CHECK(cli({"init"}).code == 0);
    CHECK(cli.count() == "0");

    cli.file("ok.jsonl", "{\"prompt\": \"ok\", \"model\": \"gpt-image-2\", \"n\": 4}\n");
    CHECK(cli({"enqueue", "ok.jsonl", "--strict"}).code == 0);
    CHECK(cli.count() == "1");

    r = cli({"enqueue", "s.jsonl", "--dry-run", "--batch", "d"});
    CHECK(r.code == 1);
    // The summary line, then the estimate (cli_estimate_test).
    CHECK(r.out.rfind("batch d: 1 jobs would be enqueued (1 images in 1 requests), 1 rejected, 0 "
                      "duplicates (dry run)\nestimate (USD):\n",
                      0) == 0);
    CHECK(cli({"enqueue", "ok.jsonl", "--dry-run"}).code == 0);
    CHECK(cli.count() == "1");
}

TEST_CASE("configuration errors exit 78 (EX_CONFIG), usage errors 2") {
    Cli cli;
    cli.file("a.txt", "x\n");
    auto r = cli({"--config", "nope.json", "enqueue", "a.txt"});
    CHECK(r.code == 78);
    CHECK(has(r.err, "cannot read config file 'nope.json': No such file or directory"));

    cli.file("bad.json", R"({"providers": [{"name": "p", "api": "openai",
        "base_url": "http://h/v1", "models": ["dall-e-3"], "max_conc": 2}]})");
    r = cli({"--config", "bad.json", "enqueue", "a.txt"});
    CHECK(r.code == 78);
    CHECK(has(r.err, "bad.json: unknown key 'providers[0].max_conc' (known: "));

    r = run({"enqueue", "a.txt"}, "", {"IMGBATCH_CONFIG=nope.json"}, cli.dir.path());
    CHECK(r.code == 78);
    CHECK(has(r.err, "'nope.json'"));

    CHECK(cli({"enqueue"}).code == 2);                       // no FILE
    CHECK(cli({"enqueue", "a.txt", "--n", "0"}).code == 2);  // CLI11 range check
    CHECK(cli({"enqueue", "a.txt", "--format", "xml"}).code == 2);
    CHECK(cli({"frobnicate"}).code == 2);
}

// ---- streaming: input is read, checked and stored chunk by chunk ----

namespace {

std::string jsonl_line(int i, const std::string& key) {
    return "{\"prompt\": \"streamed " + std::to_string(i) + "\", \"model\": \"gpt-image-2\"" +
           (key.empty() ? "" : ", \"key\": \"" + key + "\"") + "}\n";
}

// The lines of text that start with prefix, in order.
std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        auto nl = text.find('\n', start);
        auto line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        if (line.rfind(prefix, 0) == 0) out.push_back(line);
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("enqueue: chunk boundaries change nothing: repeats, known keys, bad lines, summary") {
    Cli cli;
    // 25,000 lines: more than two chunks of 10,000.
    std::string text;
    for (int i = 1; i <= 25000; ++i) {
        std::string key = i % 2 ? "key-" + std::to_string(i) : "";
        if (i == 15000 || i == 24999) key = "key-5";  // repeats line 5, chunks later
        if (i == 12345) {
            text += "{\"prompt\": \"bad\", \"model\": \"gpt-image-2\", \"n\": 0}\n";
            continue;
        }
        text += jsonl_line(i, key);
    }
    cli.file("big.jsonl", text);
    cli.file("known.jsonl", jsonl_line(20001, "key-20001"));
    REQUIRE(cli({"enqueue", "known.jsonl", "--batch", "k"}).code == 0);

    // --strict: nothing at all is stored.
    auto strict = cli({"enqueue", "big.jsonl", "--batch", "s", "--strict"});
    CHECK(strict.code == 1);
    CHECK(has(strict.out, "batch s: 0 jobs enqueued (0 images in 0 requests), 3 rejected"));
    CHECK(has(strict.err, "imgbatch: nothing enqueued: 3 rejected with --strict"));
    CHECK(cli.count() == "1");

    // --dry-run: the same findings, nothing stored.
    auto dry = cli({"enqueue", "big.jsonl", "--batch", "d", "--dry-run"});
    CHECK(dry.code == 1);
    // The summary line, then the estimate of the jobs counted (not the duplicate).
    CHECK(dry.out.rfind("batch d: 24996 jobs would be enqueued (24996 images in 24996 requests), 3 "
                        "rejected, 1 duplicates (dry run)\nestimate (USD):\n",
                        0) == 0);
    CHECK(has(dry.out, "oa        gpt-image-2  24996  24996   24996 "));
    CHECK(cli.count() == "1");

    auto r = cli({"enqueue", "big.jsonl", "--batch", "b"});
    CHECK(r.code == 1);
    CHECK(r.out ==
          "batch b: 24996 jobs enqueued (24996 images in 24996 requests), 3 rejected, 1 "
          "duplicates\n");
    CHECK(lines_with(r.err, "big.jsonl:") ==
          std::vector<std::string>{
              "big.jsonl:12345: field 'n': must be between 1 and 10000, got 0",
              "big.jsonl:15000: key 'key-5' repeats line 5",
              "big.jsonl:20001: key 'key-20001' already enqueued as job 1; skipped",
              "big.jsonl:24999: key 'key-5' repeats line 5"});
    CHECK(dry.err == r.err);
    CHECK(cli.count() == "24997");
    CHECK(cli.count("prompt = 'streamed 5' AND key = 'key-5'") == "1");
    CHECK(cli.count("prompt IN ('streamed 15000', 'streamed 24999', 'bad')") == "0");
    CHECK(cli.count("prompt = 'streamed 25000'") == "1");
    // Every job has its request, and the ids follow the file.
    CHECK(sql_value(cli.db,
                    "SELECT count(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM "
                    "requests r WHERE r.job_id = j.id)") == "0");
    CHECK(sql_value(cli.db, "SELECT prompt FROM jobs ORDER BY id DESC LIMIT 1") ==
          "streamed 25000");
    // Again: every key is known now, the key-less lines are new jobs.
    r = cli({"enqueue", "big.jsonl", "--batch", "b"});
    CHECK(has(r.out, ": 12499 jobs enqueued"));
}

TEST_CASE("enqueue: a key repeated across files names the file of its first line") {
    Cli cli;
    cli.file("one.jsonl", jsonl_line(1, "") + jsonl_line(2, "shared"));
    cli.file("two.csv", "prompt,model,key\nx,gpt-image-2,shared\n");
    auto r = cli({"enqueue", "one.jsonl", "two.csv", "--batch", "t"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "two.csv:2: key 'shared' repeats one.jsonl:2"));
    CHECK(r.out == "batch t: 2 jobs enqueued (2 images in 2 requests), 1 rejected, 0 duplicates\n");
}

TEST_CASE("enqueue: lines from a pipe are stored as they come, before the input ends") {
    Cli cli;
    REQUIRE(cli({"init"}).code == 0);
    const std::string fifo = cli.dir.file("feed.jsonl");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    Process enq({"enqueue", "feed.jsonl", "--batch", "live"}, {}, cli.dir.path());
    int fd = open(fifo.c_str(), O_WRONLY);  // waits for enqueue to open it
    REQUIRE(fd >= 0);
    auto send = [fd](const std::string& s) {
        REQUIRE(write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
    };
    auto wait_for_count = [&](const std::string& want) {
        std::string got;
        for (int i = 0; i < 200 && got != want; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            got = cli.count();
        }
        return got;
    };
    send(jsonl_line(1, "live-1"));
    CHECK(wait_for_count("1") == "1");
    CHECK(enq.running());
    send(jsonl_line(2, "live-2") + "{\"prompt\": \"broken\n");
    CHECK(wait_for_count("2") == "2");
    CHECK(enq.running());
    close(fd);
    CHECK(enq.wait(30) == std::optional<int>(1));
    CHECK(enq.out() ==
          "batch live: 2 jobs enqueued (2 images in 2 requests), 1 rejected, 0 "
          "duplicates\n");
    CHECK(has(enq.err(), "feed.jsonl:3: malformed JSON"));
}

TEST_CASE("enqueue: a database error midway keeps the chunks committed before it") {
    Cli cli;
    REQUIRE(cli({"init"}).code == 0);
    // A user's trigger that refuses one row: the chunk holding it fails.
    sql_exec(cli.db,
             "CREATE TRIGGER no_poison BEFORE INSERT ON jobs WHEN NEW.prompt = 'poison' "
             "BEGIN SELECT RAISE(ABORT, 'poison refused'); END");
    std::string text;
    for (int i = 1; i <= 15000; ++i)
        text += i == 12000 ? "{\"prompt\": \"poison\", \"model\": \"gpt-image-2\"}\n"
                           : jsonl_line(i, "");
    cli.file("p.jsonl", text);

    auto strict = cli({"enqueue", "p.jsonl", "--batch", "s", "--strict"});
    CHECK(strict.code == 1);
    CHECK(strict.out ==
          "batch s: 0 jobs enqueued (0 images in 0 requests), 0 rejected, 0 "
          "duplicates\n");
    CHECK(has(strict.err, "imgbatch: enqueue stopped: poison refused; nothing enqueued"));
    CHECK(cli.count() == "0");

    // A bad line in the chunk that fails is still reported.
    text.replace(text.find(jsonl_line(11000, "")), jsonl_line(11000, "").size(),
                 "{\"prompt\": \"bad\", \"model\": \"gpt-image-2\", \"n\": 0}\n");
    cli.file("p.jsonl", text);
    auto r = cli({"enqueue", "p.jsonl", "--batch", "b"});
    CHECK(r.code == 1);
    CHECK(r.out ==
          "batch b: 10000 jobs enqueued (10000 images in 10000 requests), 1 rejected, 0 "
          "duplicates\n");
    CHECK(has(r.err, "p.jsonl:11000: field 'n'"));
    CHECK(has(r.err,
              "imgbatch: enqueue stopped: poison refused; the jobs counted above are "
              "stored"));
    CHECK(cli.count() == "10000");
    CHECK(sql_value(cli.db, "SELECT count(*) FROM requests") == "10000");
}
