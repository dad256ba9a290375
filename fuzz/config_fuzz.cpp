// The configuration file: parse_config (with the catalog's "models" overrides). Bad input is a
// ConfigError naming the field; a configuration that loads holds values within their ranges.
#include <cmath>

#include "daemon/config.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    try {
        const auto c = daemon::parse_config(fuzz::as_text(data, size), "fuzz.json");
        fuzz::require(c.poll_interval_s > 0 && c.poll_interval_s <= 3600, "poll_interval_s");
        fuzz::require(
            !c.shutdown_grace_s || (*c.shutdown_grace_s >= 0 && *c.shutdown_grace_s <= 86400),
            "shutdown_grace_s");
        fuzz::require(c.retry.max_delay_s <= 86400 && c.retry.auth_probe_s > 0, "retry times");
        for (const auto& p : c.providers) {
            fuzz::require(p.timeout_s > 0 && p.timeout_s <= 86400, "timeout_s");
            fuzz::require(p.connect_timeout_s > 0 && p.connect_timeout_s <= 86400,
                          "connect_timeout_s");
            fuzz::require(p.max_concurrency >= 1 && p.max_concurrency <= 10000, "max_concurrency");
            fuzz::require(std::isfinite(p.requests_per_minute) && p.requests_per_minute >= 0,
                          "requests_per_minute");
            daemon::Url url;
            fuzz::require(daemon::parse_url(p.base_url, url), "base_url is a URL");
        }
    } catch (const daemon::ConfigError&) {
    }
    return 0;
}
