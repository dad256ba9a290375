// `imgbatch run` (the daemon) and `imgbatch sim` (the simulated provider).
#include <CLI/CLI.hpp>

#include "daemon/cli/commands.hpp"
#include "daemon/engine/engine.hpp"
#include "daemon/sim/sim.hpp"

namespace imgbatch::daemon::cli {
namespace {

struct RunCmdOptions {
    bool until_idle = false;
    double max_seconds = 0;
    bool allow_multiple = false;
};

int run_run(const RunCmdOptions& o, Context& ctx) {
    Config cfg = ctx.config();
    cfg.database = ctx.database();
    // Providers' keys are checked now so that a missing one is a configuration error at start.
    for (const auto& p : cfg.providers) resolve_api_key(p);
    RunOptions ro;
    ro.until_idle = o.until_idle;
    ro.max_seconds = o.max_seconds;
    ro.allow_multiple = o.allow_multiple;
    ro.config_path = ctx.config_path();
    return run_daemon(cfg, ro);
}

}  // namespace

void add_run(CLI::App& app, Context& ctx) {
    auto ro = std::make_shared<RunCmdOptions>();
    auto* run = app.add_subcommand("run", "run the daemon: dispatch queued jobs to providers");
    run->add_flag("--until-idle", ro->until_idle, "exit when no job is left to do");
    run->add_option("--max-seconds", ro->max_seconds, "stop gracefully after S seconds")
        ->check(CLI::NonNegativeNumber);
    run->add_flag("--allow-multiple", ro->allow_multiple,
                  "run beside other daemons on the same database (each must ask for it; the "
                  "providers' limits are shared)");
    run->callback([ro, &ctx] { ctx.action = [ro, &ctx] { return run_run(*ro, ctx); }; });

    auto so = std::make_shared<SimOptions>();
    auto* sim =
        app.add_subcommand("sim", "simulated provider (openai, google, openai-chat, gemini)");
    sim->add_option("--listen", so->listen, "ADDR:PORT (port 0: any free port)");
    sim->add_option("--latency-ms", so->latency_ms, "added to every answer")
        ->check(CLI::NonNegativeNumber);
    sim->add_option("--jitter-ms", so->jitter_ms, "plus uniform [0, N) ms")
        ->check(CLI::NonNegativeNumber);
    sim->add_option("--rpm", so->requests_per_minute, "requests per minute before 429 (0: off)")
        ->check(CLI::NonNegativeNumber);
    sim->add_option("--image-size", so->image_size, "width and height of the PNGs")
        ->check(CLI::Range(1, 4096));
    sim->add_option("--fault-rate", so->fault_rate, "share of requests answered with a fault")
        ->check(CLI::Range(0.0, 1.0));
    sim->add_option("--seed", so->seed, "random seed");
    sim->add_option("--port-file", so->port_file, "write the bound port to this file");
    sim->add_option("--api-key", so->api_key, "answer 401 to calls without this key");
    sim->add_option("--token-uses", so->token_uses,
                    "accept each Bearer token / x-goog-api-key for N calls, then 401 (0: off)")
        ->check(CLI::NonNegativeNumber);
    sim->add_option("--max-files", so->max_files, "image URLs kept for download")
        ->check(CLI::PositiveNumber);
    sim->add_flag("--ratelimit-headers", so->ratelimit_headers,
                  "with --rpm: send x-ratelimit-*-requests headers");
    sim->add_option("--gateway-rpm", so->gateway_rpm,
                    "a gateway (nginx limit_req) refusing more than N requests/minute with 503 "
                    "(HTML, no Retry-After); 0: off")
        ->check(CLI::NonNegativeNumber);
    sim->add_option("--batch-ms", so->batch_ms, "time a vendor batch takes to complete")
        ->check(CLI::NonNegativeNumber);
    // The simulator needs neither config nor database.
    sim->callback([so, &ctx] { ctx.action = [so] { return run_sim(*so); }; });
}

}  // namespace imgbatch::daemon::cli
