#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cli/cli.hpp"
#include "daemon/cli/commands.hpp"

namespace imgbatch::daemon::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

// Edit distance with adjacent transpositions counting one ("stauts" is 1 from "status").
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// After a failed parse that chose no command: the first word of argv that is no option (nor
// a global option's value) and no command, if any.
std::optional<std::string> unknown_command(CLI::App& app, int argc, char** argv) {
    if (!app.get_subcommands().empty()) return std::nullopt;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") return std::nullopt;
        if (arg.size() > 1 && arg[0] == '-') {
            if ((arg == "--config" || arg == "--db" || arg == "--log-level") && i + 1 < argc) ++i;
            continue;
        }
        for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
            if (sub->check_name(std::string(arg))) return std::nullopt;
        return std::string(arg);
    }
    return std::nullopt;
}

// "unknown command 'stauts'; did you mean 'status'?" (or the list of commands).
std::string unknown_command_message(CLI::App& app, const std::string& word) {
    std::string best, all;
    std::size_t best_d = std::string::npos;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        const std::string& name = sub->get_name();
        all += (all.empty() ? "" : ", ") + name;
        const std::size_t d = edit_distance(word, name);
        if (d < best_d) {
            best_d = d;
            best = name;
        }
    }
    const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
    if (!best.empty() && best_d <= limit)
        return "unknown command '" + word + "'; did you mean '" + best + "'?";
    return "unknown command '" + word + "' (commands: " + all + ")";
}

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
    add_wait(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        if (auto word = unknown_command(app, argc, argv)) {
            std::cerr << "imgbatch: " << unknown_command_message(app, *word) << '\n';
            return 2;
        }
        app.exit(e);
        return 2;
    }

    setup_logging(ctx.options);
    if (!ctx.action) return 2;
    try {
        return ctx.action();
    } catch (const ConfigError& e) {
        std::cerr << "imgbatch: " << e.what() << '\n';
        return kExitConfig;
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
