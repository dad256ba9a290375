#pragma once
// Each group of commands adds its subcommands to the app. A subcommand's parse callback
// sets ctx.action, which app.cpp runs after parsing.
#include <CLI/App.hpp>

#include "daemon/cli/context.hpp"

namespace imgbatch::daemon::cli {

void add_enqueue(CLI::App& app, Context& ctx);    // enqueue.cpp
void add_status(CLI::App& app, Context& ctx);     // status.cpp
void add_jobs(CLI::App& app, Context& ctx);       // jobs.cpp: jobs, show
void add_export(CLI::App& app, Context& ctx);     // export.cpp
void add_report(CLI::App& app, Context& ctx);     // report.cpp
void add_ops(CLI::App& app, Context& ctx);        // ops.cpp: init, cancel, retry
void add_providers(CLI::App& app, Context& ctx);  // providers.cpp: providers, pause, resume
void add_run(CLI::App& app, Context& ctx);        // run.cpp: run, sim
void add_wait(CLI::App& app, Context& ctx);       // wait.cpp

}  // namespace imgbatch::daemon::cli
