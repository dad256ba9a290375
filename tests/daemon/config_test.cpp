#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "daemon/config.hpp"
#include "tests/daemon/config_error.hpp"

using imgbatch::daemon::Config;
using imgbatch::daemon::ConfigError;
using imgbatch::daemon::load_config;
using imgbatch::daemon::parse_config;
using imgbatch::daemon::ProviderConfig;
using imgbatch::daemon::resolve_api_key;
using imgbatch::daemon::testing::config_error_of;

namespace {

std::string provider_json(const std::string& extra) {
    return R"({"providers": [{"name": "p", "api": "openai", "base_url": "http://127.0.0.1:1/v1",
               "models": ["gpt-image-2"])" +
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
                  "moderation_retries": 1, "max_rate_limited": 7, "auth_probe_s": 60,
                  "max_timeouts": 1, "max_provider_failures": 9},
        "shutdown_grace_s": 10, "metrics_listen": "127.0.0.1:9464", "poll_interval_s": 0.2,
        /* a model of a relay, like dall-e-3 */
        "models": {"my-model": {"like": "dall-e-3"}},
        "providers": [
          {"name": "a", "api": "openai", "base_url": "https://api.example.com/v1",
           "api_key_env": "A_KEY", "models": ["gpt-image-2", "my-model"],
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
    CHECK(c.retry.max_timeouts == 1);
    CHECK(c.retry.max_provider_failures == 9);
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
    CHECK(a.models == std::vector<std::string>{"gpt-image-2", "my-model"});
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
    CHECK(c.retry.max_timeouts == 2);
    CHECK(c.retry.max_provider_failures == 30);
    Config g = parse_config(
        R"({"providers": [{"name": "g", "api": "google", "base_url": "https://x/v1beta",
            "models": ["imagen-3.0-generate-002"]}]})",
        "g.json");
    CHECK(g.providers.at(0).auth == "x-goog-api-key");
    CHECK(g.providers.at(0).image_size_key == "sampleImageSize");
}

TEST_CASE("unknown keys are named with their path and the known keys") {
    CHECK(config_error_of(R"({"databse": "x"})").find("cfg.json: unknown key 'databse' (known: ") ==
          0);
    std::string e = config_error_of(provider_json(R"(, "max_conc": 3)"));
    CHECK(e.find("cfg.json: unknown key 'providers[0].max_conc' (known: ") == 0);
    CHECK(e.find("max_concurrency") != std::string::npos);
    CHECK(config_error_of(R"({"retry": {"attempts": 3}})").find("unknown key 'retry.attempts'") !=
          std::string::npos);
}

TEST_CASE("bad types and ranges name the field and the value") {
    CHECK(
        config_error_of(provider_json(R"(, "max_concurrency": "x")")) ==
        R"(cfg.json: 'providers[0].max_concurrency' must be an integer >= 1 and <= 10000, got "x")");
    CHECK(config_error_of(provider_json(R"(, "max_concurrency": 0)")) ==
          "cfg.json: 'providers[0].max_concurrency' must be an integer >= 1 and <= 10000, got 0");
    CHECK(config_error_of(provider_json(R"(, "max_concurrency": 2.5)")).find("got 2.5") !=
          std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "requests_per_minute": -1)"))
              .find("'providers[0].requests_per_minute' must be a number >= 0") !=
          std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "timeout_s": 0)")).find("'providers[0].timeout_s'") !=
          std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "auth": "basic")")).find("'providers[0].auth'") !=
          std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "headers": {"X": 1})"))
              .find("'providers[0].headers.X' must be a string") != std::string::npos);
    CHECK(config_error_of(R"({"retry": {"max_timeouts": 0}})")
              .find("'retry.max_timeouts' must be an integer >= 1") != std::string::npos);
    CHECK(config_error_of(R"({"retry": {"max_provider_failures": 0}})")
              .find("'retry.max_provider_failures' must be an integer >= 1") != std::string::npos);
    CHECK(config_error_of(R"({"retry": {"max_attempts": 0}})")
              .find("'retry.max_attempts' must be an integer >= 1") != std::string::npos);
    CHECK(config_error_of(R"({"database": 5})").find("'database' must be a non-empty string") !=
          std::string::npos);
    CHECK(config_error_of(R"({"providers": {}})").find("'providers' must be an array") !=
          std::string::npos);
    CHECK(config_error_of(R"({"providers": [{"name": "p", "api": "azure", "base_url": "http://h/v1",
          "models": ["dall-e-3"]}]})")
              .find("'providers[0].api' must be one of openai, google, openai-chat") !=
          std::string::npos);
    CHECK(config_error_of(R"({"providers": [{"name": "p", "api": "openai", "base_url": "ftp://h/v1",
          "models": ["dall-e-3"]}]})")
              .find("'providers[0].base_url' must be an http:// or https:// URL") !=
          std::string::npos);
}

TEST_CASE("required provider fields") {
    CHECK(config_error_of(R"({"providers": [{"api": "openai", "base_url": "http://h/v1",
          "models": ["dall-e-3"]}]})") == "cfg.json: 'providers[0].name' is required");
    CHECK(
        config_error_of(R"({"providers": [{"name": "p", "api": "openai", "base_url": "http://h/v1",
          "models": []}]})")
            .find("'providers[0].models' must be a non-empty array") != std::string::npos);
    CHECK(config_error_of(R"({"providers": [{"name": "p", "api": "openai",
          "models": ["dall-e-3"]}]})") == "cfg.json: 'providers[0].base_url' is required");
}

TEST_CASE("unknown models and bad model overrides") {
    std::string e = config_error_of(R"({"providers": [{"name": "p", "api": "openai",
        "base_url": "http://h/v1", "models": ["dall-e-9"]}]})");
    CHECK(e.find("cfg.json: 'providers[0].models' names unknown model 'dall-e-9' (known: ") == 0);
    CHECK(e.find("gpt-image-2") != std::string::npos);
    // A catalog error (std::invalid_argument) becomes a ConfigError naming the file.
    e = config_error_of(R"({"models": {"m": {"like": "nope"}}})");
    CHECK(e.find("cfg.json: ") == 0);
    CHECK(e.find("nope") != std::string::npos);
}

TEST_CASE("duplicate provider names") {
    std::string p = R"({"name": "p", "api": "openai", "base_url": "http://h/v1",
                        "models": ["dall-e-3"]})";
    CHECK(config_error_of("{\"providers\": [" + p + "," + p + "]}") ==
          "cfg.json: 'providers[1].name' repeats provider name 'p' (names must be unique)");
}

TEST_CASE("malformed JSON reports line and column") {
    std::string e = config_error_of("{\n  \"database\": \"x\",\n  oops\n}");
    CHECK(e.find("cfg.json: malformed JSON at line 3 column 3: ") == 0);
    CHECK(config_error_of("{\"database\": ").find("cfg.json: malformed JSON at line 1") == 0);
    CHECK(config_error_of("[1]").find("must be a JSON object") != std::string::npos);
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
    // Relative paths resolve against the file's directory.
    const auto dir = std::filesystem::path(f.path).parent_path();
    CHECK(c.database == (dir / "from-file.db").string());
    CHECK(c.output_dir == (dir / "out").string());
    CHECK(c.source == f.path);
}

TEST_CASE("load_config: relative paths follow the file; absolute ones and :memory: stay") {
    TempFile sub("");
    std::filesystem::remove(sub.path);
    std::filesystem::create_directories(sub.path + "/etc");
    std::ofstream(sub.path + "/etc/a.json")
        << R"({"database": "../var/j.db", "output_dir": "img"})";
    std::ofstream(sub.path + "/etc/b.json")
        << R"({"database": "/srv/j.db", "output_dir": "/srv/o"})";
    std::ofstream(sub.path + "/etc/c.json") << R"({"database": ":memory:"})";
    Config a = load_config(sub.path + "/etc/a.json");
    CHECK(a.database == sub.path + "/var/j.db");
    CHECK(a.output_dir == sub.path + "/etc/img");
    Config b = load_config(sub.path + "/etc/b.json");
    CHECK(b.database == "/srv/j.db");
    CHECK(b.output_dir == "/srv/o");
    CHECK(load_config(sub.path + "/etc/c.json").database == ":memory:");
    // parse_config has no file: it keeps what it is given.
    CHECK(parse_config(R"({"database": "rel.db"})", "x").database == "rel.db");
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
    // The shipped unit's directory form: LoadCredential=imgbatch:/etc/imgbatch/credentials
    // gives imgbatch_<file name>; a credential of the provider's own name comes first.
    std::ofstream(dir.path + "/imgbatch_other") << "sk-dir\n";
    CHECK(resolve_api_key(p) == "sk-dir");
    std::ofstream(dir.path + "/other") << "sk-own\n";
    CHECK(resolve_api_key(p) == "sk-own");
}

TEST_CASE("shutdown_grace_s: \"auto\" by default covers the slowest provider's call") {
    using imgbatch::daemon::auto_shutdown_grace_s;
    using imgbatch::daemon::kShutdownGraceMargin_s;
    const std::string providers =
        R"("providers": [
          {"name": "a", "api": "openai", "base_url": "https://a/v1", "models": ["gpt-image-2"],
           "timeout_s": 120, "connect_timeout_s": 5},
          {"name": "b", "api": "openai", "base_url": "https://b/v1", "models": ["gpt-image-2"]}])";
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
    CHECK(config_error_of(R"({"shutdown_grace_s": "soon"})") ==
          R"(cfg.json: 'shutdown_grace_s' must be a number >= 0 or "auto", got "soon")");
    CHECK(config_error_of(R"({"shutdown_grace_s": -1})") ==
          R"(cfg.json: 'shutdown_grace_s' must be a number >= 0 and <= 86400, got -1)");
}

TEST_CASE("every number has a sane range: times, rates, counts, sizes") {
    // Values that overflowed a clock or a counter: each is refused, naming the field.
    struct Case {
        std::string json;
        std::string field;
    };
    const std::vector<Case> cases{
        {provider_json(R"(, "timeout_s": 1e16)"), "'providers[0].timeout_s' must be a number"},
        {provider_json(R"(, "timeout_s": 1e-300)"), "'providers[0].timeout_s' must be a number"},
        {provider_json(R"(, "connect_timeout_s": 1e300)"),
         "'providers[0].connect_timeout_s' must be a number"},
        {provider_json(R"(, "requests_per_minute": 1e300)"),
         "'providers[0].requests_per_minute' must be a number"},
        {provider_json(R"(, "images_per_minute": 1e20)"),
         "'providers[0].images_per_minute' must be a number"},
        {provider_json(R"(, "max_concurrency": 1000000)"),
         "'providers[0].max_concurrency' must be an integer"},
        {provider_json(R"(, "max_images_per_request": 1000000)"),
         "'providers[0].max_images_per_request' must be an integer"},
        {provider_json(R"(, "max_response_bytes": 9000000000000000000)"),
         "'providers[0].max_response_bytes' must be an integer"},
        {R"({"poll_interval_s": 1e300})", "'poll_interval_s' must be a number"},
        {R"({"poll_interval_s": 1e-9})", "'poll_interval_s' must be a number"},
        {R"({"shutdown_grace_s": 1e16})", "'shutdown_grace_s' must be a number"},
        {R"({"retry": {"base_delay_s": 1e300, "max_delay_s": 1e300}})",
         "'retry.base_delay_s' must be a number"},
        {R"({"retry": {"max_delay_s": 1e19}})", "'retry.max_delay_s' must be a number"},
        {R"({"retry": {"auth_probe_s": 1e19}})", "'retry.auth_probe_s' must be a number"},
        {R"({"retry": {"max_attempts": 999999999}})", "'retry.max_attempts' must be an integer"},
        {R"({"retry": {"moderation_retries": 999999999}})",
         "'retry.moderation_retries' must be an integer"},
        {R"({"retry": {"max_rate_limited": 999999999}})",
         "'retry.max_rate_limited' must be an integer"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.json);
        auto err = config_error_of(c.json);
        CHECK(err.starts_with("cfg.json: " + c.field));
        CHECK(err.find(" and <= ") != std::string::npos);  // says the upper bound too
    }
    CHECK(config_error_of(provider_json(R"(, "timeout_s": 1e16)")) ==
          "cfg.json: 'providers[0].timeout_s' must be a number >= 0.001 and <= 86400, got 1E16");
    // The bounds themselves are accepted.
    auto c = parse_config(
        R"({"poll_interval_s": 3600, "shutdown_grace_s": 86400,
            "retry": {"max_delay_s": 86400, "auth_probe_s": 86400, "max_attempts": 1000},
            "providers": [{"name": "p", "api": "openai", "base_url": "http://127.0.0.1:1/v1",
              "models": ["gpt-image-2"], "timeout_s": 86400, "connect_timeout_s": 0.001,
              "max_concurrency": 10000, "requests_per_minute": 1000000}]})",
        "cfg.json");
    CHECK(c.poll_interval_s == 3600);
    CHECK(c.providers[0].timeout_s == 86400);
    CHECK(c.providers[0].max_concurrency == 10000);
}

TEST_CASE("metrics_listen: an IP address and a port from 1 to 65535") {
    CHECK(parse_config(R"({"metrics_listen": "0.0.0.0:1"})", "c").metrics_listen == "0.0.0.0:1");
    CHECK(parse_config(R"({"metrics_listen": "[::1]:65535"})", "c").metrics_listen ==
          "[::1]:65535");
    for (const char* bad : {"127.0.0.1:70000", "127.0.0.1:65536", "127.0.0.1:0",
                            "127.0.0.1:99999999999999999999", "127.0.0.1:", ":9464", "127.0.0.1",
                            "localhost:9464", "127.0.0.1:+1", "[::1:9464", "not an address:9464"}) {
        CAPTURE(bad);
        CHECK(config_error_of(std::string(R"({"metrics_listen": ")") + bad + "\"}")
                  .starts_with("cfg.json: 'metrics_listen' must be \"IP:PORT\""));
    }
}

TEST_CASE("extra headers and API keys cannot carry a line break into a request") {
    CHECK(config_error_of(provider_json(R"(, "headers": {"X-A": "b\r\nX-Injected: 1"})")) ==
          "cfg.json: 'providers[0].headers.X-A' must be a header value without control "
          "characters, got \"b\\r\\nX-Injected: 1\"");
    CHECK(config_error_of(provider_json(R"(, "headers": {"X A": "b"})"))
              .starts_with("cfg.json: 'providers[0].headers' names a header 'X A' that is not "
                           "a valid header name"));
    CHECK(config_error_of(provider_json(R"(, "headers": {"": "b"})"))
              .find("not a valid header name") != std::string::npos);
    CHECK(parse_config(provider_json(R"(, "headers": {"X-Tag_1": "a b\tc ü"})"), "c")
              .providers[0]
              .headers.at("X-Tag_1") == "a b\tc ü");

    ProviderConfig p;
    p.name = "prov";
    TempFile key("sk-one\nsk-two\n");
    p.api_key_file = key.path;
    try {
        resolve_api_key(p);
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).find("control characters") != std::string::npos);
        CHECK(std::string(e.what()).find("sk-") == std::string::npos);  // never shown
    }
    p.api_key_file.clear();
    p.api_key_env = "IMGBATCH_TEST_KEY_VAR";
    EnvVar v("IMGBATCH_TEST_KEY_VAR", "sk-a\rb");
    CHECK_THROWS_AS(resolve_api_key(p), ConfigError);
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
    CHECK(config_error_of(provider_json(R"(, "auth": "x-goog-api-key")"))
              .find("only for api \"google\" or \"gemini\"") != std::string::npos);
    CHECK(
        config_error_of(R"({"providers": [{"name": "p", "api": "gemeni", "base_url": "http://h/v1",
                       "models": ["gpt-image-2"]}]})")
            .find("one of openai, google, openai-chat, gemini") != std::string::npos);
}

TEST_CASE("catalog_file replaces the built-in catalog, relative to the config's directory") {
    TempFile catalog(R"({"format": 1, "models": {
        "house-model": {"api": "openai", "family": "gpt-image", "max_per_request": 3}}})");
    const auto name = std::filesystem::path(catalog.path).filename().string();
    TempFile cfg(R"({"catalog_file": ")" + name + R"(",
        "models": {"house-model": {"status": "deprecated", "replacement": "house-model-2"},
                   "house-model-2": {"like": "house-model"}},
        "providers": [{"name": "p", "api": "openai", "base_url": "https://api.openai.com/v1",
                       "models": ["house-model"]}]})");
    Config c = load_config(cfg.path);
    CHECK(c.catalog_file == catalog.path);
    CHECK(c.catalog.names() == std::vector<std::string>{"house-model", "house-model-2"});
    CHECK(c.catalog.find("house-model")->status == imgbatch::jobs::ModelStatus::deprecated);
    CHECK(c.catalog.find("gpt-image-2") == nullptr);  // replaced, not merged
    REQUIRE(c.provider_infos().size() == 1);
    CHECK(c.provider_infos()[0].vendor);

    // A provider may only name the file's models.
    TempFile other(R"({"catalog_file": ")" + name + R"(", "providers": [{"name": "p",
        "api": "openai", "base_url": "http://127.0.0.1:1/v1", "models": ["gpt-image-2"]}]})");
    CHECK_THROWS_WITH_AS(load_config(other.path),
                         doctest::Contains("names unknown model 'gpt-image-2'"), ConfigError);
    CHECK(config_error_of(R"({"catalog_file": ""})").find("'catalog_file'") != std::string::npos);
    CHECK(config_error_of(R"({"catalog_file": "/nonexistent/models.json"})") ==
          "cfg.json: 'catalog_file': cannot read '/nonexistent/models.json': No such file or "
          "directory");
}

TEST_CASE("is_vendor_api: the vendors' own hosts, anything else is a relay") {
    using imgbatch::daemon::is_vendor_api;
    CHECK(is_vendor_api("https://api.openai.com/v1"));
    CHECK(is_vendor_api("https://API.OpenAI.com/v1/"));
    CHECK(is_vendor_api("https://generativelanguage.googleapis.com/v1beta"));
    CHECK(is_vendor_api("https://aiplatform.googleapis.com/v1/projects/p/locations/global"));
    CHECK(is_vendor_api(
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4"));
    CHECK_FALSE(is_vendor_api("https://relay.example.com/v1"));
    CHECK_FALSE(is_vendor_api("https://api.openai.com.evil.example/v1"));
    CHECK_FALSE(is_vendor_api("https://myaiplatform.googleapis.com.example/v1"));
    CHECK_FALSE(is_vendor_api("http://127.0.0.1:8080/v1"));
    CHECK_FALSE(is_vendor_api("not a url"));
}

TEST_CASE("api_key_command: a string runs with /bin/sh -c, an array as argv; exclusive") {
    Config c = parse_config(provider_json(R"(, "api_key_command": "gcloud auth print-access-token",
                                           "api_key_refresh_s": 3000)"),
                            "cfg.json");
    const auto& p = c.providers.at(0);
    CHECK(p.api_key_command ==
          std::vector<std::string>{"/bin/sh", "-c", "gcloud auth print-access-token"});
    CHECK(p.api_key_refresh_s == 3000);
    CHECK(p.api_key_command_timeout_s == 30);
    // The command is not run by resolve_api_key (it runs once at the daemon's start).
    CHECK(resolve_api_key(p) == "");

    c = parse_config(provider_json(R"(, "api_key_command": ["/usr/bin/vault", "read", "-field=key"],
                                      "api_key_command_timeout_s": 5)"),
                     "cfg.json");
    CHECK(c.providers.at(0).api_key_command ==
          std::vector<std::string>{"/usr/bin/vault", "read", "-field=key"});
    CHECK(c.providers.at(0).api_key_refresh_s == 0);  // only after a 401
    CHECK(c.providers.at(0).api_key_command_timeout_s == 5);

    CHECK(config_error_of(provider_json(R"(, "api_key_command": "x", "api_key_env": "K")")) ==
          "cfg.json: 'providers[0].api_key_command' cannot be combined with api_key_env (choose "
          "one)");
    CHECK(config_error_of(provider_json(R"(, "api_key_command": "x", "api_key_file": "/k")"))
              .find("cannot be combined with api_key_file") != std::string::npos);
    for (const char* bad : {R"("")", "[]", R"([""])", "[1]", "3", R"({"a": 1})"})
        CHECK(config_error_of(provider_json(std::string(R"(, "api_key_command": )") + bad))
                  .find("'providers[0].api_key_command' must be a non-empty string") !=
              std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "api_key_refresh_s": 60)")) ==
          "cfg.json: 'providers[0].api_key_refresh_s' needs api_key_command");
    CHECK(config_error_of(provider_json(R"(, "api_key_command": "x", "api_key_refresh_s": 0.5)"))
              .find("must be 0 (refresh only after a 401) or >= 1") != std::string::npos);
    CHECK(config_error_of(provider_json(R"(, "api_key_command": "x", "api_key_refresh_s": 0)")) ==
          "");
}

TEST_CASE("Vertex AI hosts default to Bearer auth; the Gemini API to x-goog-api-key") {
    auto auth_of = [](const std::string& url, const std::string& extra = "") {
        Config c =
            parse_config(R"({"providers": [{"name": "g", "api": "gemini", "base_url": ")" + url +
                             R"(", "models": ["gemini-2.5-flash-image"])" + extra + "}]}",
                         "cfg.json");
        return c.providers.at(0).auth;
    };
    CHECK(auth_of("https://generativelanguage.googleapis.com/v1beta") == "x-goog-api-key");
    CHECK(auth_of("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/"
                  "us-central1/publishers/google") == "bearer");
    CHECK(auth_of("https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/"
                  "google") == "bearer");
    CHECK(auth_of("https://relay.example/v1beta") == "x-goog-api-key");
    CHECK(auth_of("https://notaiplatform.googleapis.com/v1") == "x-goog-api-key");
    // An explicit auth wins.
    CHECK(auth_of("https://us-central1-aiplatform.googleapis.com/v1",
                  R"(, "auth": "x-goog-api-key")") == "x-goog-api-key");
}
