#pragma once
// What every command shares: the global options, the configuration and the database, both
// loaded on first use, and the errors that map to exit codes.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "daemon/config.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

// Exit code 2: bad usage (beyond what CLI11 checks) or an unusable setup.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// Exit code 1: the operation ran but did not do what was asked.
struct OperationError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct GlobalOptions {
    std::string config;  // --config / IMGBATCH_CONFIG
    std::string db;      // --db / IMGBATCH_DB
    bool verbose = false;
    std::string log_level;
};

class Context {
  public:
    GlobalOptions options;
    // The command chosen on the command line; set by its parse callback.
    std::function<int()> action;

    // --config, else IMGBATCH_CONFIG (CLI11 reads it into options.config), else
    // ./imgbatch.json when it exists, else the built-in defaults. Throws ConfigError.
    const Config& config();
    // The config file in use ("" for the defaults).
    std::string config_path();
    // --db, else IMGBATCH_DB, else the config's database.
    std::string database();
    // Opens (creating and migrating) the database.
    jobs::Store& store();
    // Opens the database, which must exist already (for read-only commands).
    jobs::Store& existing_store();

  private:
    std::optional<Config> config_;
    std::unique_ptr<jobs::Store> store_;
};

// Sends spdlog output to stderr at the level the options ask for (info by default).
void setup_logging(const GlobalOptions& options);

}  // namespace imgbatch::daemon::cli
