// Config: a provider's "prices" (per model, "*" for all) over the catalog's.
#include <doctest/doctest.h>

#include <string>

#include "daemon/config.hpp"
#include "daemon/cost.hpp"
#include "tests/daemon/config_error.hpp"

using imgbatch::daemon::Config;
using imgbatch::daemon::ConfigError;
using imgbatch::daemon::parse_config;
using imgbatch::daemon::price_of;
using imgbatch::daemon::testing::config_error_of;

namespace {

std::string config(const std::string& prices, const std::string& models = "\"gpt-image-2\"") {
    return R"({"providers": [
        {"name": "vendor", "api": "openai", "base_url": "https://api.openai.com/v1",
         "models": [)" +
           models + R"(]},
        {"name": "relay", "api": "openai-chat", "base_url": "http://127.0.0.1:1/v1",
         "models": [)" +
           models + R"(], "prices": )" + prices + "}]}";
}

}  // namespace

TEST_CASE("provider prices replace the catalog's for that provider only") {
    Config c = parse_config(config(R"({"gpt-image-2": {"per_call": 0.05}})"), "cfg.json");
    REQUIRE(c.providers.size() == 2);
    const auto* vendor = price_of(c, c.providers[0], "gpt-image-2");
    REQUIRE(vendor);
    CHECK(vendor->image_output == 30);  // the catalog's
    const auto* relay = price_of(c, c.providers[1], "gpt-image-2");
    REQUIRE(relay);
    CHECK(relay->per_call == 0.05);
    CHECK_FALSE(relay->image_output);

    // One price object: every model of the provider; "*" the same.
    c = parse_config(config(R"({"per_image": 0.02})", R"("gpt-image-2", "gpt-image-2-all")"),
                     "cfg.json");
    CHECK(price_of(c, c.providers[1], "gpt-image-2-all")->per_image.at("*|*") == 0.02);
    CHECK(price_of(c, c.providers[1], "gpt-image-2")->per_image.at("*|*") == 0.02);
    // A relay model without a price anywhere: unknown.
    CHECK(price_of(c, c.providers[0], "gpt-image-2-all") == nullptr);
    c = parse_config(config(R"({"*": {"per_call": 0.01}, "gpt-image-2": {"per_call": 0.03}})",
                            R"("gpt-image-2", "gpt-image-2-all")"),
                     "cfg.json");
    CHECK(price_of(c, c.providers[1], "gpt-image-2")->per_call == 0.03);
    CHECK(price_of(c, c.providers[1], "gpt-image-2-all")->per_call == 0.01);

    // The config's "models" may set a catalog price too (every provider of the model).
    c = parse_config(R"({"models": {"gpt-image-2-all": {"prices": {"per_call": 0.04}}},
        "providers": [{"name": "r", "api": "openai-chat", "base_url": "http://127.0.0.1:1/v1",
                       "models": ["gpt-image-2-all"]}]})",
                     "cfg.json");
    CHECK(price_of(c, c.providers[0], "gpt-image-2-all")->per_call == 0.04);
}

TEST_CASE("provider prices: errors name the field") {
    CHECK(config_error_of(config(R"({"gpt-image-2": {"per_call": -1}})")) ==
          "cfg.json: 'providers[1].prices.gpt-image-2.per_call' must be a number >= 0, got -1");
    CHECK(config_error_of(config(R"({"per_cal": 1})")) ==
          "cfg.json: 'providers[1].prices.per_cal' must be an object of prices, got 1");
    CHECK(config_error_of(config(R"({"dall-e-3": {"per_call": 1}})")) ==
          "cfg.json: 'providers[1].prices.dall-e-3' prices a model the provider does not serve "
          "(its models: gpt-image-2)");
    CHECK(config_error_of(config("[1]")).find("'providers[1].prices' must be an object") !=
          std::string::npos);
    CHECK(config_error_of(config(R"({"per_1m": {"image_out": 1}})"))
              .find("'providers[1].prices.per_1m.image_out' unknown rate") != std::string::npos);
}

TEST_CASE("project_request: the provider's price, batch mode at half; format_usd") {
    using imgbatch::daemon::format_usd;
    using imgbatch::daemon::project_request;
    Config c = parse_config(R"({"providers": [
        {"name": "direct", "api": "openai", "base_url": "http://127.0.0.1:1/v1",
         "models": ["gpt-image-2"]},
        {"name": "batch", "api": "openai", "base_url": "http://127.0.0.1:1/v1",
         "models": ["gpt-image-2"], "mode": "batch"}]})",
                            "cfg.json");
    boost::json::object params{{"size", "1024x1024"}, {"quality", "high"}};
    auto d = project_request(c, "direct", "gpt-image-2", params, 2, 100);
    REQUIRE(d.worst);
    CHECK(*d.worst == doctest::Approx(2 * (116 * 5e-6 + 7024 * 30e-6)));
    auto b = project_request(c, "batch", "gpt-image-2", params, 2, 100);
    CHECK(*b.worst == doctest::Approx(*d.worst / 2));
    CHECK_FALSE(project_request(c, "nobody", "gpt-image-2", params, 1, 1).worst);

    CHECK(format_usd(0) == "$0.00");
    CHECK(format_usd(0.0421) == "$0.0421");
    CHECK(format_usd(12.3) == "$12.30");
    CHECK(format_usd(1234.5) == "$1,234.50");
    CHECK(format_usd(1234567.891) == "$1,234,567.89");
}
