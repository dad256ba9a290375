#pragma once
// `imgbatch run`: the dispatch engine.
#include <string>

#include "daemon/config.hpp"

namespace imgbatch::daemon {

struct RunOptions {
    bool until_idle = false;  // exit 0 when nothing is pending, queued or running
    double max_seconds = 0;   // > 0: stop gracefully (as on SIGTERM) after this long
    std::string config_path;  // re-read on SIGHUP for provider limits ("" : no reload)
    // Run beside other daemons on the same database (each must ask for it); the providers'
    // limits are then shared between them.
    bool allow_multiple = false;
};

// Runs the daemon on config (config.database is the database path to use). Returns the
// process exit code: 0 after a clean stop, kExitConfig (78) for configuration errors found
// at start (a provider's key, an unwritable output directory), 2 for other start errors (the
// database cannot be opened, another daemon runs on it).
int run_daemon(const Config& config, const RunOptions& options);

}  // namespace imgbatch::daemon
