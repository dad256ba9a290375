#include "daemon/cli/context.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/logfmt.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace imgbatch::daemon::cli {

std::string Context::config_path() {
    if (!options.config.empty()) return options.config;
    std::error_code ec;
    if (std::filesystem::is_regular_file("imgbatch.json", ec)) return "imgbatch.json";
    return {};
}

const Config& Context::config() {
    if (!config_) {
        const std::string path = config_path();
        config_ = path.empty() ? Config{} : load_config(path);
        spdlog::debug("config={} database={}", path.empty() ? "(defaults)" : path,
                      q(config_->database));
    }
    return *config_;
}

std::string Context::database() {
    if (!options.db.empty()) return options.db;
    return config().database;
}

jobs::Store& Context::store() {
    if (!store_) {
        const std::string path = database();
        try {
            store_ = std::make_unique<jobs::Store>(path);
        } catch (const std::exception& e) {
            throw UsageError(std::string("cannot open database: ") + e.what());
        }
    }
    return *store_;
}

jobs::Store& Context::existing_store() {
    if (!store_) {
        const std::string path = database();
        std::error_code ec;
        if (path != ":memory:" && !std::filesystem::exists(path, ec)) {
            // Name the file looked at and what chose it; never offer to create another one.
            std::string from;
            if (!options.db.empty()) {
                from = "--db or $IMGBATCH_DB";
            } else if (const std::string cfg = config_path(); !cfg.empty()) {
                from = "'database' of " + cfg;
            } else {
                from = "the default: no --db, no $IMGBATCH_DB, no --config, no ./imgbatch.json";
            }
            throw UsageError("no database at " + std::filesystem::absolute(path, ec).string() +
                             " (from " + from + ")");
        }
    }
    return store();
}

void setup_logging(const GlobalOptions& options) {
    LogStyle style = log_style(std::getenv("JOURNAL_STREAM"), std::getenv("NO_COLOR"), 2);
    auto logger = spdlog::stderr_color_mt(
        "imgbatch", style.color ? spdlog::color_mode::automatic : spdlog::color_mode::never);
    install_log_pattern(*logger, log_pattern(style));
    if (style.journal) {
        // Never freed: std::cerr writes through it until the very end of the process (its
        // final flush runs after static destructors).
        static std::streambuf* errors =
            prefix_lines(std::cerr.rdbuf(), journal_priority(spdlog::level::err)).release();
        std::cerr.rdbuf(errors);
    }
    spdlog::set_default_logger(logger);
    auto level = spdlog::level::info;
    if (options.verbose) level = spdlog::level::debug;
    if (!options.log_level.empty()) level = spdlog::level::from_str(options.log_level);
    spdlog::set_level(level);
}

}  // namespace imgbatch::daemon::cli
