#pragma once
// For the config tests: the ConfigError message parse_config throws for a config text.
#include <string>

#include "daemon/config.hpp"

namespace imgbatch::daemon::testing {

// The ConfigError message parse_config throws for text, or "" when it parses.
inline std::string config_error_of(const std::string& text) {
    try {
        parse_config(text, "cfg.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace imgbatch::daemon::testing
