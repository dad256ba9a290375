// `imgbatch init`, `cancel` and `retry`.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "daemon/cli/commands.hpp"
#include "jobs/state.hpp"

namespace imgbatch::daemon::cli {
namespace {

struct SelectOptions {
    std::vector<std::int64_t> ids;
    std::string batch, state;
    bool all = false;
};

int run_init(Context& ctx) {
    const std::string path = ctx.database();
    auto& store = ctx.store();
    const std::string out_dir = ctx.config().output_dir;
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec)
        throw OperationError("cannot create output directory '" + out_dir + "': " + ec.message());
    std::cout << "database " << path << " (schema version " << store.schema_version() << ")\n"
              << "output directory " << out_dir << '\n';
    return 0;
}

jobs::JobFilter filter_of(const SelectOptions& o) {
    jobs::JobFilter f;
    f.ids = o.ids;
    if (!o.batch.empty()) f.batch = o.batch;
    if (!o.state.empty()) f.state = jobs::job_state_from(o.state);
    return f;
}

int run_cancel(const SelectOptions& o, Context& ctx) {
    if (o.ids.empty() && o.batch.empty() && !o.all)
        throw UsageError("cancel: name JOB ids or --batch B (or --all to cancel every job)");
    int n = ctx.existing_store().cancel(filter_of(o));
    if (n == 0) throw OperationError("nothing to cancel: no matching job that is not finished");
    std::cout << n << (n == 1 ? " job" : " jobs") << " cancelled\n";
    return 0;
}

int run_retry(const SelectOptions& o, Context& ctx) {
    int n = ctx.existing_store().retry(filter_of(o));
    if (n == 0)
        throw OperationError(
            "nothing to retry: no matching " +
            (o.state.empty() ? std::string("failed, blocked or cancelled") : o.state) + " job");
    std::cout << n << (n == 1 ? " job" : " jobs") << " queued again\n";
    return 0;
}

}  // namespace

void add_ops(CLI::App& app, Context& ctx) {
    auto* init = app.add_subcommand("init", "create or migrate the database and output directory");
    init->callback([&ctx] { ctx.action = [&ctx] { return run_init(ctx); }; });

    auto co = std::make_shared<SelectOptions>();
    auto* cancel = app.add_subcommand("cancel", "cancel jobs that are not finished");
    cancel->add_option("jobs", co->ids, "job ids");
    cancel->add_option("--batch", co->batch, "every job of this batch");
    cancel->add_flag("--all", co->all, "every job");
    cancel->callback([co, &ctx] { ctx.action = [co, &ctx] { return run_cancel(*co, ctx); }; });

    auto ro = std::make_shared<SelectOptions>();
    auto* retry = app.add_subcommand("retry", "queue failed, blocked or cancelled jobs again");
    retry->add_option("jobs", ro->ids, "job ids (default: every matching job)");
    retry->add_option("--batch", ro->batch, "only this batch");
    retry->add_option("--state", ro->state, "only jobs in this state")
        ->check(CLI::IsMember({"failed", "blocked", "cancelled"}));
    retry->callback([ro, &ctx] { ctx.action = [ro, &ctx] { return run_retry(*ro, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
