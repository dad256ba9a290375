#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/cli/cli.hpp"
#include "daemon/cli/commands.hpp"

namespace imgbatch::daemon::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

}  // namespace

int run(int argc, char** argv) {
    Context ctx;
    CLI::App app{"imgbatch: turns a SQLite table of image prompts into image files", "imgbatch"};
    app.set_version_flag("--version", std::string("imgbatch ") + kVersion);
    app.require_subcommand(1);
    app.fallthrough();  // global options may also follow the command
    app.option_defaults()->always_capture_default();
    app.add_option("--config", ctx.options.config,
                   "configuration file (default: ./imgbatch.json if present, else built-in "
                   "defaults)")
        ->envname("IMGBATCH_CONFIG");
    app.add_option("--db", ctx.options.db, "database file (default: the config's database)")
        ->envname("IMGBATCH_DB");
    app.add_flag("-v,--verbose", ctx.options.verbose, "debug logs");
    app.add_option("--log-level", ctx.options.log_level, "log level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

    add_ops(app, ctx);
    add_enqueue(app, ctx);
    add_status(app, ctx);
    add_jobs(app, ctx);
    add_export(app, ctx);
    add_report(app, ctx);
    add_providers(app, ctx);
    add_run(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }

    setup_logging(ctx.options);
    if (!ctx.action) return 2;
    try {
        return ctx.action();
    } catch (const ConfigError& e) {
        std::cerr << "imgbatch: " << e.what() << '\n';
        return 2;
    } catch (const UsageError& e) {
        std::cerr << "imgbatch: " << e.what() << '\n';
        return 2;
    } catch (const OperationError& e) {
        std::cerr << "imgbatch: " << e.what() << '\n';
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "imgbatch: " << e.what() << '\n';
        return 1;
    }
}

}  // namespace imgbatch::daemon::cli
