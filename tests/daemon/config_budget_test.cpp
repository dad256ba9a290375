// Config: the "budget" object (README "Budgets").
#include <doctest/doctest.h>

#include <string>

#include "daemon/config.hpp"
#include "tests/daemon/config_error.hpp"

using imgbatch::daemon::Config;
using imgbatch::daemon::ConfigError;
using imgbatch::daemon::parse_config;
using imgbatch::daemon::testing::config_error_of;

namespace {

std::string error_of(const std::string& budget) {
    return config_error_of(R"({"budget": )" + budget + "}");
}

}  // namespace

TEST_CASE("budget: none by default; each limit optional") {
    Config none = parse_config("{}", "cfg.json");
    CHECK_FALSE(none.budget.any());
    Config c = parse_config(
        R"({"budget": {"max_usd_per_day": 25, "max_usd_per_batch": 2.5, "day_starts": "06:30",
                       "timezone": "local"}})",
        "cfg.json");
    CHECK(c.budget.any());
    CHECK(*c.budget.max_usd_per_day == 25);
    CHECK(*c.budget.max_usd_per_batch == 2.5);
    CHECK_FALSE(c.budget.max_usd_per_run);
    CHECK(c.budget.day_starts_min == 6 * 60 + 30);
    CHECK_FALSE(c.budget.day_utc);
    Config run = parse_config(R"({"budget": {"max_usd_per_run": 1}})", "cfg.json");
    CHECK(*run.budget.max_usd_per_run == 1);
    CHECK(run.budget.day_utc);
    CHECK(run.budget.day_starts_min == 0);
}

TEST_CASE("budget: errors name the field") {
    CHECK(error_of(R"({"max_usd_per_day": 0})")
              .find("'budget.max_usd_per_day' must be a number > 0") != std::string::npos);
    CHECK(error_of(R"({"max_usd_per_batch": "10"})").find("'budget.max_usd_per_batch'") !=
          std::string::npos);
    CHECK(error_of(R"({"max_usd_per_run": -1})").find("'budget.max_usd_per_run'") !=
          std::string::npos);
    CHECK(error_of(R"({"day_starts": "25:00"})").find("'budget.day_starts' must be a time") !=
          std::string::npos);
    CHECK(error_of(R"({"day_starts": "6:30"})").find("'budget.day_starts'") != std::string::npos);
    CHECK(error_of(R"({"timezone": "Europe/Paris"})").find("'budget.timezone' must be") !=
          std::string::npos);
    CHECK(error_of(R"({"max_usd": 5})").find("unknown key 'budget.max_usd'") != std::string::npos);
    CHECK(error_of("5").find("'budget' must be an object") != std::string::npos);
}
