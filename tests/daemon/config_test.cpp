#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "daemon/config.hpp"

using imgbatch::daemon::Config;
using imgbatch::daemon::ConfigError;
using imgbatch::daemon::load_config;
using imgbatch::daemon::parse_config;
using imgbatch::daemon::ProviderConfig;
using imgbatch::daemon::resolve_api_key;

namespace {

// The ConfigError message parse_config throws for text, or "" when it parses.
std::string error_of(const std::string& text) {
    try {
        parse_config(text, "cfg.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

std::string provider_json(const std::string& extra) {
    return R"({"providers": [{"name": "p", "api": "openai", "base_url": "http://127.0.0.1:1/v1",
               "models": ["gpt-image-1"])" +
           extra + "}]}";
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& content) {
        path = (std::filesystem::temp_directory_path() /
                ("imgbatch-config-test-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter++)))
                   .string();
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() { std::filesystem::remove_all(path); }
    static inline int counter = 0;
};

struct EnvVar {
    std::string name;
    EnvVar(std::string n, const char* value) : name(std::move(n)) {
        if (value)
            ::setenv(name.c_str(), value, 1);
        else
            ::unsetenv(name.c_str());
    }
    ~EnvVar() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("a full configuration with comments and trailing commas") {
    const std::string text = R"({
        // where things go
        "database": "jobs.db", "output_dir": "images",
        "retry": {"max_attempts": 3, "base_delay_s": 0.5, "max_delay_s": 30,
                  "moderation_retries": 1, "max_rate_limited": 7, "auth_probe_s": 60,},
        "shutdown_grace_s": 10, "metrics_listen": "127.0.0.1:9464", "poll_interval_s": 0.2,
        /* a model of a relay, like dall-e-3 */
        "models": {"my-model": {"like": "dall-e-3"}},
        "providers": [
          {"name": "a", "api": "openai", "base_url": "https://api.example.com/v1",
           "api_key_env": "A_KEY", "models": ["gpt-image-1", "my-model"],
           "max_concurrency": 8, "requests_per_minute": 50, "images_per_minute": 100,
           "timeout_s": 120, "connect_timeout_s": 5, "max_images_per_request": 4,
           "max_response_bytes": 1000000, "headers": {"X-Team": "art"},},
          {"name": "g", "api": "google", "base_url": "http://relay:8080/v1beta",
           "api_key_file": "/etc/key", "models": ["imagen-4.0-generate-001"],
           "auth": "bearer", "image_size_key": "imageSize"},
        ],
    })";
    Config c = parse_config(text, "full.json");
    CHECK(c.source == "full.json");
    CHECK(c.database == "jobs.db");
    CHECK(c.output_dir == "images");
    CHECK(c.retry.max_attempts == 3);
    CHECK(c.retry.base_delay_s == doctest::Approx(0.5));
    CHECK(c.retry.max_delay_s == doctest::Approx(30));
    CHECK(c.retry.moderation_retries == 1);
    CHECK(c.retry.max_rate_limited == 7);
    CHECK(c.retry.auth_probe_s == doctest::Approx(60));
    CHECK(c.shutdown_grace_s == doctest::Approx(10));
    CHECK(c.metrics_listen == "127.0.0.1:9464");
    CHECK(c.poll_interval_s == doctest::Approx(0.2));
    REQUIRE(c.catalog.find("my-model"));
    CHECK(c.catalog.find("my-model")->max_per_request == 1);
    REQUIRE(c.providers.size() == 2);
    const ProviderConfig& a = c.providers[0];
    CHECK(a.name == "a");
    CHECK(a.api == "openai");
    CHECK(a.base_url == "https://api.example.com/v1");
    CHECK(a.api_key_env == "A_KEY");
    CHECK(a.models == std::vector<std::string>{"gpt-image-1", "my-model"});
    CHECK(a.max_concurrency == 8);
    CHECK(a.requests_per_minute == doctest::Approx(50));
    CHECK(a.images_per_minute == doctest::Approx(100));
    CHECK(a.timeout_s == doctest::Approx(120));
    CHECK(a.connect_timeout_s == doctest::Approx(5));
    CHECK(a.max_images_per_request == 4);
    CHECK(a.max_response_bytes == 1000000u);
    CHECK(a.auth == "bearer");
    CHECK(a.headers.at("X-Team") == "art");
    const ProviderConfig& g = c.providers[1];
    CHECK(g.auth == "bearer");
    CHECK(g.image_size_key == "imageSize");
    CHECK(g.api_key_file == "/etc/key");

    CHECK(c.provider("g") == &c.providers[1]);
    CHECK(c.provider("nope") == nullptr);
    auto infos = c.provider_infos();
    REQUIRE(infos.size() == 2);
    CHECK(infos[0].name == "a");
    CHECK(infos[0].max_images_per_request == 4);
    CHECK(infos[1].api == "google");
}

TEST_CASE("defaults: an empty object, and google's default auth header") {
    Config c = parse_config("{}", "empty.json");
    CHECK(c.database == "imgbatch.db");
    CHECK(c.output_dir == "out");
    CHECK(c.providers.empty());
    CHECK(c.retry.max_attempts == 6);
    Config g = parse_config(
        R"({"providers": [{"name": "g", "api": "google", "base_url": "https://x/v1beta",
            "models": ["imagen-3.0-generate-002"]}]})",
        "g.json");
    CHECK(g.providers.at(0).auth == "x-goog-api-key");
    CHECK(g.providers.at(0).image_size_key == "sampleImageSize");
}

TEST_CASE("unknown keys are named with their path and the known keys") {
    CHECK(error_of(R"({"databse": "x"})").find("cfg.json: unknown key 'databse' (known: ") == 0);
    std::string e = error_of(provider_json(R"(, "max_conc": 3)"));
    CHECK(e.find("cfg.json: unknown key 'providers[0].max_conc' (known: ") == 0);
    CHECK(e.find("max_concurrency") != std::string::npos);
    CHECK(error_of(R"({"retry": {"attempts": 3}})").find("unknown key 'retry.attempts'") !=
          std::string::npos);
}

TEST_CASE("bad types and ranges name the field and the value") {
    CHECK(error_of(provider_json(R"(, "max_concurrency": "x")")) ==
          R"(cfg.json: 'providers[0].max_concurrency' must be an integer >= 1, got "x")");
    CHECK(error_of(provider_json(R"(, "max_concurrency": 0)")) ==
          "cfg.json: 'providers[0].max_concurrency' must be an integer >= 1, got 0");
    CHECK(error_of(provider_json(R"(, "max_concurrency": 2.5)")).find("got 2.5") !=
          std::string::npos);
    CHECK(error_of(provider_json(R"(, "requests_per_minute": -1)"))
              .find("'providers[0].requests_per_minute' must be a number >= 0") !=
          std::string::npos);
    CHECK(error_of(provider_json(R"(, "timeout_s": 0)")).find("'providers[0].timeout_s'") !=
          std::string::npos);
    CHECK(error_of(provider_json(R"(, "auth": "basic")")).find("'providers[0].auth'") !=
          std::string::npos);
    CHECK(error_of(provider_json(R"(, "headers": {"X": 1})"))
              .find("'providers[0].headers.X' must be a string") != std::string::npos);
    CHECK(error_of(R"({"retry": {"max_attempts": 0}})")
              .find("'retry.max_attempts' must be an integer >= 1") != std::string::npos);
    CHECK(error_of(R"({"database": 5})").find("'database' must be a non-empty string") !=
          std::string::npos);
    CHECK(error_of(R"({"providers": {}})").find("'providers' must be an array") !=
          std::string::npos);
    CHECK(error_of(R"({"providers": [{"name": "p", "api": "azure", "base_url": "http://h/v1",
          "models": ["dall-e-3"]}]})")
              .find("'providers[0].api' must be one of openai, google, openai-chat") !=
          std::string::npos);
    CHECK(error_of(R"({"providers": [{"name": "p", "api": "openai", "base_url": "ftp://h/v1",
          "models": ["dall-e-3"]}]})")
              .find("'providers[0].base_url' must be an http:// or https:// URL") !=
          std::string::npos);
}

TEST_CASE("required provider fields") {
    CHECK(error_of(R"({"providers": [{"api": "openai", "base_url": "http://h/v1",
          "models": ["dall-e-3"]}]})") == "cfg.json: 'providers[0].name' is required");
    CHECK(error_of(R"({"providers": [{"name": "p", "api": "openai", "base_url": "http://h/v1",
          "models": []}]})")
              .find("'providers[0].models' must be a non-empty array") != std::string::npos);
    CHECK(error_of(R"({"providers": [{"name": "p", "api": "openai",
          "models": ["dall-e-3"]}]})") == "cfg.json: 'providers[0].base_url' is required");
}

TEST_CASE("unknown models and bad model overrides") {
    std::string e = error_of(R"({"providers": [{"name": "p", "api": "openai",
        "base_url": "http://h/v1", "models": ["dall-e-9"]}]})");
    CHECK(e.find("cfg.json: 'providers[0].models' names unknown model 'dall-e-9' (known: ") == 0);
    CHECK(e.find("gpt-image-1") != std::string::npos);
    // A catalog error (std::invalid_argument) becomes a ConfigError naming the file.
    e = error_of(R"({"models": {"m": {"like": "nope"}}})");
    CHECK(e.find("cfg.json: ") == 0);
    CHECK(e.find("nope") != std::string::npos);
}

TEST_CASE("duplicate provider names") {
    std::string p = R"({"name": "p", "api": "openai", "base_url": "http://h/v1",
                        "models": ["dall-e-3"]})";
    CHECK(error_of("{\"providers\": [" + p + "," + p + "]}") ==
          "cfg.json: 'providers[1].name' repeats provider name 'p' (names must be unique)");
}

TEST_CASE("malformed JSON reports line and column") {
    std::string e = error_of("{\n  \"database\": \"x\",\n  oops\n}");
    CHECK(e.find("cfg.json: malformed JSON at line 3 column 3: ") == 0);
    CHECK(error_of("{\"database\": ").find("cfg.json: malformed JSON at line 1") == 0);
    CHECK(error_of("[1]").find("must be a JSON object") != std::string::npos);
}

TEST_CASE("load_config: missing file, and a real file") {
    try {
        load_config("/nonexistent/imgbatch.json");
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              "cannot read config file '/nonexistent/imgbatch.json': No such file or directory");
    }
    TempFile f(R"({"database": "from-file.db"})");
    Config c = load_config(f.path);
    CHECK(c.database == "from-file.db");
    CHECK(c.source == f.path);
}

TEST_CASE("API keys: env, file, credentials directory, none") {
    ProviderConfig p;
    p.name = "prov";
    {
        EnvVar creds("CREDENTIALS_DIRECTORY", nullptr);
        CHECK(resolve_api_key(p) == "");
    }

    p.api_key_env = "IMGBATCH_TEST_KEY_VAR";
    {
        EnvVar v("IMGBATCH_TEST_KEY_VAR", "sk-env");
        CHECK(resolve_api_key(p) == "sk-env");
    }
    {
        EnvVar v("IMGBATCH_TEST_KEY_VAR", nullptr);
        try {
            resolve_api_key(p);
            FAIL("no error");
        } catch (const ConfigError& e) {
            CHECK(std::string(e.what()).find("IMGBATCH_TEST_KEY_VAR") != std::string::npos);
        }
        EnvVar empty("IMGBATCH_TEST_KEY_VAR", "");
        CHECK_THROWS_AS(resolve_api_key(p), ConfigError);
    }

    p.api_key_env.clear();
    TempFile key("sk-file\n");
    p.api_key_file = key.path;
    CHECK(resolve_api_key(p) == "sk-file");
    p.api_key_file = key.path + ".missing";
    CHECK_THROWS_AS(resolve_api_key(p), ConfigError);

    p.api_key_file.clear();
    TempFile dir("");
    std::filesystem::remove(dir.path);
    std::filesystem::create_directory(dir.path);
    std::ofstream(dir.path + "/prov") << "sk-cred\n";
    EnvVar creds("CREDENTIALS_DIRECTORY", dir.path.c_str());
    CHECK(resolve_api_key(p) == "sk-cred");
    p.name = "other";  // no credential file for it
    CHECK(resolve_api_key(p) == "");
}

TEST_CASE("shutdown_grace_s: \"auto\" by default covers the slowest provider's call") {
    using imgbatch::daemon::auto_shutdown_grace_s;
    using imgbatch::daemon::kShutdownGraceMargin_s;
    const std::string providers =
        R"("providers": [
          {"name": "a", "api": "openai", "base_url": "https://a/v1", "models": ["gpt-image-1"],
           "timeout_s": 120, "connect_timeout_s": 5},
          {"name": "b", "api": "openai", "base_url": "https://b/v1", "models": ["gpt-image-1"]}])";
    Config d = parse_config("{" + providers + "}", "d.json");
    CHECK(!d.shutdown_grace_s);
    // b keeps the defaults: 30 s to connect, 300 s to answer.
    CHECK(auto_shutdown_grace_s(d.providers) == doctest::Approx(330 + kShutdownGraceMargin_s));
    CHECK(auto_shutdown_grace_s(d.providers) > d.providers[1].timeout_s);
    CHECK(auto_shutdown_grace_s({}) == 0);
    Config a = parse_config(R"({"shutdown_grace_s": "auto", )" + providers + "}", "a.json");
    CHECK(!a.shutdown_grace_s);
    Config n = parse_config(R"({"shutdown_grace_s": 0})", "n.json");
    REQUIRE(n.shutdown_grace_s);
    CHECK(*n.shutdown_grace_s == 0);
    CHECK(error_of(R"({"shutdown_grace_s": "soon"})") ==
          R"(cfg.json: 'shutdown_grace_s' must be a number >= 0 or "auto", got "soon")");
    CHECK(error_of(R"({"shutdown_grace_s": -1})") ==
          R"(cfg.json: 'shutdown_grace_s' must be a number >= 0, got -1)");
}

TEST_CASE("api gemini: x-goog-api-key by default, bearer for relays and Vertex AI") {
    Config g = parse_config(
        R"({"providers": [{"name": "g", "api": "gemini", "base_url": "https://x/v1beta",
            "models": ["gemini-2.5-flash-image"]},
            {"name": "v", "api": "gemini", "auth": "bearer",
             "base_url": "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google",
             "models": ["gemini-3-pro-image-preview"]}]})",
        "g.json");
    CHECK(g.providers.at(0).api == "gemini");
    CHECK(g.providers.at(0).auth == "x-goog-api-key");
    CHECK(g.providers.at(1).auth == "bearer");
    CHECK(error_of(provider_json(R"(, "auth": "x-goog-api-key")"))
              .find("only for api \"google\" or \"gemini\"") != std::string::npos);
    CHECK(error_of(R"({"providers": [{"name": "p", "api": "gemeni", "base_url": "http://h/v1",
                       "models": ["gpt-image-1"]}]})")
              .find("one of openai, google, openai-chat, gemini") != std::string::npos);
}
