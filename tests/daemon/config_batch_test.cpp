// Batch mode settings of a provider.
#include <doctest/doctest.h>

#include <string>

#include "daemon/config.hpp"
#include "tests/daemon/config_error.hpp"

using imgbatch::daemon::ConfigError;
using imgbatch::daemon::parse_config;
using imgbatch::daemon::testing::config_error_of;

namespace {

std::string provider(const std::string& api, const std::string& extra) {
    std::string models = api == "openai" ? R"(["gpt-image-2"])" : R"(["imagen-4.0-generate-001"])";
    return R"({"providers": [{"name": "p", "api": ")" + api +
           R"(", "base_url": "http://127.0.0.1:1/v1", "models": )" + models + ", " + extra + "}]}";
}

}  // namespace

TEST_CASE("batch mode settings are read, defaulted and bounded by the vendor's limits") {
    auto c = parse_config(provider("openai", R"("mode": "batch", "batch_max_requests": 1000,
        "batch_poll_s": 5, "batch_poll_max_s": 60, "batch_max_open": 2)"),
                          "cfg.json");
    const auto& p = c.providers.at(0);
    CHECK(p.mode == "batch");
    CHECK(p.batch_max_requests == 1000);
    CHECK(p.batch_max_bytes == 200u << 20);
    CHECK(p.batch_poll_s == 5);
    CHECK(p.batch_poll_max_s == 60);
    CHECK(p.batch_max_open == 2);
    CHECK(parse_config(provider("openai", R"("max_concurrency": 2)"), "c").providers[0].mode ==
          "direct");

    CHECK(config_error_of(provider("openai", R"("mode": "bulk")")).find("mode") !=
          std::string::npos);
    CHECK(config_error_of(provider("google", R"("mode": "batch")")).find("openai") !=
          std::string::npos);
    CHECK(config_error_of(provider("openai", R"("batch_max_requests": 50001)"))
              .find("batch_max_requests") != std::string::npos);
    CHECK(config_error_of(provider("openai", R"("batch_max_bytes": 300000000)"))
              .find("batch_max_bytes") != std::string::npos);
    CHECK(config_error_of(provider("openai", R"("batch_poll_s": 10, "batch_poll_max_s": 5)"))
              .find("batch_poll_max_s") != std::string::npos);
}

TEST_CASE("gemini batch mode: batch_input, Vertex AI refused, batch_retry_direct checked") {
    const std::string gem = R"({"name": "g", "api": "gemini", "models": ["gemini-2.5-flash-image"],
        "base_url": "http://127.0.0.1:1/v1beta", "mode": "batch")";
    const std::string direct = R"({"name": "d", "api": "gemini",
        "models": ["gemini-2.5-flash-image"], "base_url": "http://127.0.0.1:1/v1beta"})";
    auto c = parse_config(R"({"providers": [)" + gem + R"(, "batch_input": "file",
        "batch_retry_direct": "d"}, )" +
                              direct + "]}",
                          "cfg.json");
    CHECK(c.providers[0].mode == "batch");
    CHECK(c.providers[0].batch_input == "file");
    CHECK(c.providers[0].batch_retry_direct == "d");
    CHECK(parse_config(R"({"providers": [)" + gem + "}]}", "cfg.json").providers[0].batch_input ==
          "auto");

    CHECK(config_error_of(R"({"providers": [)" + gem + R"(, "batch_input": "both"}]})")
              .find("batch_input") != std::string::npos);
    CHECK(config_error_of(R"({"providers": [)" + gem + R"(, "batch_retry_direct": "nope"}]})")
              .find("batch_retry_direct") != std::string::npos);
    // A batch provider cannot take the retries of another.
    CHECK(config_error_of(R"({"providers": [)" + gem + R"(, "batch_retry_direct": "g"}]})")
              .find("not a provider in \"mode\": \"direct\"") != std::string::npos);
    CHECK(config_error_of(R"({"providers": [{"name": "v", "api": "gemini",
        "models": ["gemini-2.5-flash-image"], "mode": "batch", "base_url":
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/publishers/google"}]})")
              .find("Vertex AI") != std::string::npos);
}
