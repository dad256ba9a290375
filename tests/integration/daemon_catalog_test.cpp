// The model catalog through the real binary: its lifecycle at enqueue (a deprecated model is
// warned about, a retired one refused on the vendor's own API and warned about on a relay),
// the same check for rows inserted by SQL, catalog_file replacing the built-in catalog, a
// provider's "model not found" failing the request at once with the catalog's replacement,
// and Imagen's limits kept behind an OpenAI-compatible relay.
#include <doctest/doctest.h>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// A catalog whose dates do not move with the calendar: old-model retired long ago,
// aging-model deprecated until far ahead.
constexpr const char* kCatalog = R"({
  "format": 1,
  "models": {
    "new-model": {"api": "openai", "family": "gpt-image", "max_per_request": 2,
                  "sizes": ["1024x1024"]},
    "aging-model": {"like": "new-model", "status": "deprecated", "shutdown": "2999-12-31",
                    "replacement": "new-model"},
    "old-model": {"like": "new-model", "status": "retired", "retired": "2020-01-01",
                  "replacement": "new-model"}
  }
})";

// imgbatch.json with the catalog file beside it (named relative to the config's directory),
// a vendor provider (never called: nothing is enqueued for it that passes) and a relay.
struct LifecycleEnv {
    TempDir dir;
    std::string db = dir.file("t.db");
    explicit LifecycleEnv(const std::string& relay_url = "http://127.0.0.1:9/v1") {
        write_file(dir.file("models.json"), kCatalog);
        write_file(dir.file("imgbatch.json"),
                   R"({"database": "t.db", "output_dir": "out", "catalog_file": "models.json",
                       "poll_interval_s": 0.1,
                       "retry": )" +
                       fast_retry() + R"(,
                       "providers": [
                         {"name": "openai", "api": "openai",
                          "base_url": "https://api.openai.com/v1",
                          "models": ["new-model", "aging-model", "old-model"]},
                         {"name": "relay", "api": "openai", "base_url": ")" +
                       relay_url + R"(", "models": ["new-model", "aging-model", "old-model"],
                          "timeout_s": 20, "connect_timeout_s": 5}]})");
    }
    RunResult cli(const std::vector<std::string>& args, const std::string& in = "") const {
        std::vector<std::string> all{"--config", dir.file("imgbatch.json")};
        all.insert(all.end(), args.begin(), args.end());
        return run(all, in, {}, dir.path());
    }
};

std::string line(const std::string& key, const std::string& model, const std::string& provider) {
    return job_line(key, "a fox " + key, model, 1, "\"provider\": " + json_str(provider));
}

}  // namespace

TEST_CASE("catalog: enqueue warns about deprecated models and refuses retired ones on the vendor") {
    LifecycleEnv env;
    write_file(env.dir.file("jobs.jsonl"), line("a", "aging-model", "openai") +      // 1
                                               line("b", "old-model", "openai") +    // 2
                                               line("c", "old-model", "relay") +     // 3
                                               line("d", "aging-model", "openai") +  // 4
                                               line("e", "new-model", "openai"));    // 5
    auto r = env.cli({"enqueue", "jobs.jsonl", "--batch", "b"});
    INFO(r.err);
    CHECK(r.code == 1);  // a line was rejected
    CHECK(has(r.err,
              "jobs.jsonl:1: warning: model aging-model is deprecated, shuts down 2999-12-31; "
              "use new-model\n"));
    CHECK(has(r.err,
              "jobs.jsonl:2: error: model old-model was retired on 2020-01-01; use new-model\n"));
    CHECK(has(r.err,
              "jobs.jsonl:3: warning: model old-model was retired on 2020-01-01; use new-model "
              "(provider 'relay' is a relay, which may still serve it)\n"));
    CHECK_FALSE(has(r.err, "jobs.jsonl:4:"));  // the same warning is given once
    CHECK(has(r.err, "imgbatch: warning: 1 more lines use a model named in a warning above"));
    CHECK_FALSE(has(r.err, "jobs.jsonl:5:"));
    CHECK(has(r.out, "4 jobs enqueued"));
    CHECK(has(r.out, "1 rejected"));
    CHECK(sql_value(env.db,
                    "SELECT group_concat(key, ',') FROM (SELECT key FROM jobs ORDER BY "
                    "key)") == "a,c,d,e");

    // Only deprecated models: accepted with the warning, exit 0.
    write_file(env.dir.file("ok.jsonl"), line("f", "aging-model", "openai"));
    r = env.cli({"enqueue", "ok.jsonl", "--batch", "b2"});
    CHECK(r.code == 0);
    CHECK(has(r.err, "ok.jsonl:1: warning: model aging-model is deprecated"));
}

TEST_CASE("catalog: the built-in catalog refuses dall-e-3 on api.openai.com, names gpt-image-2") {
    TempDir dir;
    write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "providers": [
        {"name": "openai", "api": "openai", "base_url": "https://api.openai.com/v1",
         "models": ["dall-e-3", "gpt-image-2"]},
        {"name": "vertex", "api": "google",
         "base_url": "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google",
         "auth": "bearer", "models": ["imagen-4.0-generate-001"]}]})");
    write_file(dir.file("jobs.jsonl"),
               job_line("old", "a fox", "dall-e-3", 1) +
                   job_line("new", "a fox", "gpt-image-2", 1) +
                   job_line("imagen", "a fox", "imagen-4.0-generate-001", 1));
    auto r = run({"enqueue", "jobs.jsonl", "--batch", "b"}, "", {}, dir.path());
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(has(r.err,
              "jobs.jsonl:1: error: model dall-e-3 was retired on 2026-05-12; use "
              "gpt-image-2\n"));
    CHECK(has(r.err,
              "jobs.jsonl:3: error: model imagen-4.0-generate-001 was retired on "
              "2026-08-17"));
    CHECK(has(r.err, "; use gemini-2.5-flash-image\n"));
    CHECK(has(r.out, "1 jobs enqueued"));
}

TEST_CASE("catalog: a bad catalog_file is a configuration error naming file and field") {
    TempDir dir;
    write_file(dir.file("models.json"),
               R"({"format": 1, "models": {"m": {"family": "f", "status": "gone"}}})");
    write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "catalog_file": "models.json"})");
    auto r = run({"enqueue", "-", "--batch", "b"}, "", {}, dir.path());
    CHECK(r.code == 78);
    CHECK(has(r.err, "'catalog_file': "));
    CHECK(has(r.err, "models.json: models.m.status: must be active, deprecated or retired"));

    write_file(dir.file("imgbatch.json"), R"({"database": "t.db", "catalog_file": "none.json"})");
    r = run({"enqueue", "-", "--batch", "b"}, "", {}, dir.path());
    CHECK(r.code == 78);
    CHECK(has(r.err, "'catalog_file': cannot read '"));
    CHECK(has(r.err, "none.json"));
}

TEST_CASE("catalog: SQL rows with a retired model on the vendor are rejected when planned") {
    Sim sim;
    LifecycleEnv env(sim.url() + "/v1");
    REQUIRE(env.cli({"init"}).code == 0);
    sql_exec(env.db,
             "INSERT INTO jobs(prompt, model, provider) VALUES ('vendor', 'old-model', 'openai');"
             "INSERT INTO jobs(prompt, model, provider) VALUES ('relay', 'old-model', 'relay');"
             "INSERT INTO jobs(prompt, model, provider) VALUES ('aging', 'aging-model', "
             "'relay');");
    auto r = env.cli({"run", "--until-idle"});
    INFO(DaemonEnv::tail(r.err));
    REQUIRE(r.code == 0);
    CHECK(sql_value(env.db, "SELECT state || '|' || error FROM jobs WHERE prompt = 'vendor'") ==
          "rejected|model old-model was retired on 2020-01-01; use new-model");
    CHECK(sql_value(env.db, "SELECT state FROM jobs WHERE prompt = 'relay'") == "succeeded");
    CHECK(sql_value(env.db, "SELECT state FROM jobs WHERE prompt = 'aging'") == "succeeded");
    CHECK(has(r.err, "event=model_lifecycle"));
    CHECK(sim.stat("requests") == 2);  // nothing was sent for the rejected row
}

TEST_CASE("catalog: the provider says the model is gone: failed at once, replacement named") {
    struct Case {
        const char* api;
        const char* path;
        const char* model;
        const char* fault;
        int status;
        const char* replacement;
    };
    const Case cases[] = {
        {"openai", "/v1", "dall-e-3", "nomodel", 404, "gpt-image-2"},
        // The retired gpt-image-1 on purpose: the vendor's answer for a model it shut down.
        {"openai", "/v1", "gpt-image-1", "modelgone", 404, "gpt-image-2"},
        {"openai", "/v1", "sora_image", "relaynomodel", 503, "gpt-image-2-all"},
        {"openai-chat", "/v1", "sora_image", "nomodel", 404, "gpt-image-2-all"},
        {"google", "/v1beta", "imagen-4.0-generate-001", "nomodel", 404, "gemini-2.5-flash-image"},
        {"gemini", "/v1beta", "gemini-2.5-flash-image", "modelgone", 404, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.api);
        CAPTURE(c.fault);
        Sim sim;
        DaemonEnv env({provider_json("p", c.api, sim.url() + c.path, {c.model})}, fast_retry(4, 2));
        env.enqueue(job_line("gone", std::string("a fox #fail=") + c.fault, c.model, 1));
        env.run_until_idle();
        CHECK(env.job_state("gone") == "failed");
        CHECK(env.attempts("gone") ==
              std::vector<std::string>{"error|invalid_request|" + std::to_string(c.status)});
        const std::string error = env.value("SELECT error FROM jobs");
        CHECK(has(error, c.model));
        if (*c.replacement)
            CHECK(error.ends_with(std::string("; the catalog's replacement: ") + c.replacement));
        else
            CHECK_FALSE(has(error, "replacement"));
        CHECK(sim.stat("requests") == 1);  // not retried
        CHECK(sim.stat("images") == 0);
        CHECK(env.number("SELECT count(*) FROM outputs") == 0);
    }
}

TEST_CASE("catalog: Imagen through an OpenAI-compatible relay keeps Imagen's limits") {
    Sim sim;
    DaemonEnv env({provider_json("relay", "openai", sim.url() + "/v1",
                                 {"imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001"})});
    // 6 images in requests of Imagen's 4 (a generic relay model takes 1); Imagen's ratios.
    env.enqueue(
        job_line("six", "six foxes", "imagen-4.0-generate-001", 6, "\"aspect_ratio\": \"16:9\"") +
        job_line("ultra", "two foxes", "imagen-4.0-ultra-generate-001", 2));
    auto bad = env.cli(
        {"enqueue", "-", "--batch", "bad"},
        job_line("size", "a fox", "imagen-4.0-generate-001", 1, "\"size\": \"1024x1024\"") +
            job_line("ratio", "a fox", "imagen-4.0-generate-001", 1, "\"aspect_ratio\": \"21:9\""));
    CHECK(bad.code == 1);
    CHECK(has(bad.err,
              "<stdin>:1: field 'size': not accepted by imagen-4.0-generate-001 (use "
              "aspect_ratio: 1:1, 3:4, 4:3, 9:16, 16:9)"));
    CHECK(has(bad.err, "<stdin>:2: field 'aspect_ratio': '21:9' is not allowed"));
    env.run_until_idle();
    CHECK(env.requests("six") == std::vector<std::string>{"succeeded|4|4", "succeeded|2|2"});
    CHECK(env.requests("ultra") == std::vector<std::string>{"succeeded|1|1", "succeeded|1|1"});
    env.check_outputs("six", 6);
    env.check_outputs("ultra", 2);
    CHECK(sim.stat("requests") == 4);
    CHECK(sim.stat("images") == 8);
}
