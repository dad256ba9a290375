// `imgbatch jobs` (one line per job) and `imgbatch show JOB` (a job with its requests,
// attempts and outputs).
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <iostream>

#include "daemon/cli/batch_view.hpp"
#include "daemon/cli/commands.hpp"
#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/json_text.hpp"
#include "jobs/state.hpp"

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;

struct JobsOptions {
    std::string batch, state;
    int limit = 0;
    bool json = false;
};

struct ShowOptions {
    std::int64_t id = 0;
    bool json = false;
};

json::object job_json(const jobs::JobRow& j) {
    json::object o = json_job_head(j);
    o["images_done"] = j.images_done;
    o["priority"] = j.priority;
    o["params"] = json_or_null(j.params_json);
    o["metadata"] = json_or_null(j.metadata_json);
    o["attempts"] = j.attempts;
    o["last_error"] = json_error(j.last_error);
    o["created_at"] = json_time(j.created_at);
    o["updated_at"] = json_time(j.updated_at);
    o["finished_at"] = json_time(j.finished_at);
    return o;
}

int run_jobs(const JobsOptions& o, Context& ctx) {
    jobs::JobFilter filter;
    if (!o.batch.empty()) filter.batch = o.batch;
    if (!o.state.empty()) filter.state = jobs::job_state_from(o.state);
    filter.limit = o.limit;
    auto rows = ctx.existing_store().list_jobs(filter);
    if (o.json) {
        json::array arr;
        for (const auto& j : rows) arr.push_back(job_json(j));
        std::cout << json_text(arr) << '\n';
        return 0;
    }
    std::vector<std::vector<std::string>> table{
        {"ID", "STATE", "DONE/N", "MODEL", "PROVIDER", "KEY", "PROMPT"}};
    for (const auto& j : rows)
        table.push_back({std::to_string(j.id), j.state,
                         std::to_string(j.images_done) + "/" + std::to_string(j.n), j.model,
                         j.provider.empty() ? "-" : j.provider, j.key.empty() ? "-" : j.key,
                         excerpt(j.prompt, 50)});
    std::cout << render_table(table);
    return 0;
}

json::object detail_json(const jobs::JobDetail& d) {
    json::array requests, attempts, outputs;
    for (const auto& r : d.requests)
        requests.push_back(json::object{{"id", r.id},
                                        {"seq", r.seq},
                                        {"state", r.state},
                                        {"provider", r.provider},
                                        {"first_index", r.first_index},
                                        {"n", r.n},
                                        {"images_done", r.images_done},
                                        {"attempts", r.attempts},
                                        {"rate_limited", r.rate_limited},
                                        {"moderation", r.moderation},
                                        {"not_before", json_time(r.not_before)}});
    for (const auto& a : d.attempts)
        attempts.push_back(json::object{
            {"id", a.id},
            {"request_id", a.request_id},
            {"attempt_no", a.attempt_no},
            {"provider", a.provider},
            {"started_at", json_time(a.started_at)},
            {"finished_at", json_time(a.finished_at)},
            {"duration_ms", a.duration_ms},
            {"outcome", a.outcome},
            {"images", a.images},
            {"error", a.error_class.empty()
                          ? json::value(nullptr)
                          : json_error(a.error_class, a.error_code, a.http_status, a.message)},
            {"usage", json_or_null(a.usage_json)},
            {"billed", a.billed ? json::value(*a.billed) : json::value(nullptr)},
            {"cost_usd", usd_json(a.cost_usd)},
            {"cost_basis", string_or_null(a.cost_basis)}});
    for (const auto& out : d.outputs)
        outputs.push_back(json::object{{"idx", out.idx},
                                       {"path", out.path},
                                       {"bytes", out.bytes},
                                       {"sha256", out.sha256},
                                       {"mime", out.mime},
                                       {"width", out.width},
                                       {"height", out.height},
                                       {"revised_prompt", string_or_null(out.revised_prompt)}});
    auto o = job_json(d.job);
    o["requests"] = std::move(requests);
    o["attempt_log"] = std::move(attempts);
    o["outputs"] = std::move(outputs);
    return o;
}

std::string detail_text(const jobs::JobDetail& d) {
    const auto& j = d.job;
    auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    std::string out;
    out += "job " + std::to_string(j.id) + ": " + j.state + "\n";
    std::vector<std::vector<std::string>> head{
        {"batch", or_dash(j.batch)},
        {"key", or_dash(j.key)},
        {"model", j.model},
        {"provider", or_dash(j.provider)},
        {"images", std::to_string(j.images_done) + "/" + std::to_string(j.n)},
        {"priority", std::to_string(j.priority)},
        {"params", or_dash(j.params_json)},
        {"metadata", or_dash(j.metadata_json)},
        {"created", format_time(j.created_at)},
        {"updated", format_time(j.updated_at)},
        {"finished", or_dash(format_time(j.finished_at))},
        {"error", or_dash(j.error)},
        {"prompt", excerpt(j.prompt, 200)}};
    for (auto& row : head) row[0] += ":";
    out += render_table(head);

    out += "\nrequests:\n";
    std::vector<std::vector<std::string>> req{
        {"SEQ", "STATE", "PROVIDER", "IMAGES", "ATTEMPTS", "RATE_LIMITED", "MODERATION"}};
    for (const auto& r : d.requests)
        req.push_back({std::to_string(r.seq), r.state, r.provider,
                       std::to_string(r.images_done) + "/" + std::to_string(r.n),
                       std::to_string(r.attempts), std::to_string(r.rate_limited),
                       std::to_string(r.moderation)});
    out += render_table(req);

    out += "\nattempts:\n";
    std::vector<std::vector<std::string>> att{
        {"TIME", "REQ", "NO", "OUTCOME", "CLASS", "CODE", "HTTP", "MS", "MESSAGE"}};
    for (const auto& a : d.attempts)
        att.push_back({format_time(a.started_at), std::to_string(a.request_id),
                       std::to_string(a.attempt_no), a.outcome, or_dash(a.error_class),
                       or_dash(a.error_code), a.http_status ? std::to_string(a.http_status) : "-",
                       std::to_string(a.duration_ms), excerpt(a.message, 100)});
    out += render_table(att);

    out += "\noutputs:\n";
    std::vector<std::vector<std::string>> outs{{"IDX", "PATH", "BYTES", "SHA256", "SIZE"}};
    for (const auto& o : d.outputs)
        outs.push_back(
            {std::to_string(o.idx), o.path, std::to_string(o.bytes), o.sha256,
             o.width > 0 ? std::to_string(o.width) + "x" + std::to_string(o.height) : "-"});
    out += render_table(outs);
    return out;
}

int run_show(const ShowOptions& o, Context& ctx) {
    auto detail = ctx.existing_store().job_detail(o.id);
    if (!detail) throw OperationError("no job " + std::to_string(o.id));
    auto vendor = ctx.existing_store().job_vendor_batches(o.id);
    if (o.json) {
        auto obj = detail_json(*detail);
        obj["vendor_batches"] = attempt_batches_json(vendor);
        std::cout << json_text(obj) + "\n";
    } else {
        std::cout << detail_text(*detail) << attempt_batches_text(vendor);
    }
    return 0;
}

}  // namespace

void add_jobs(CLI::App& app, Context& ctx) {
    auto jo = std::make_shared<JobsOptions>();
    auto* jobs_cmd = app.add_subcommand("jobs", "list jobs, one line each");
    jobs_cmd->add_option("--batch", jo->batch, "only this batch");
    jobs_cmd->add_option("--state", jo->state, "only jobs in this state")
        ->check(CLI::IsMember(jobs::job_state_names()));
    jobs_cmd->add_option("--limit", jo->limit, "at most N jobs (default: all)")
        ->check(CLI::NonNegativeNumber);
    jobs_cmd->add_flag("--json", jo->json, "a JSON array of job objects");
    jobs_cmd->callback([jo, &ctx] { ctx.action = [jo, &ctx] { return run_jobs(*jo, ctx); }; });

    auto so = std::make_shared<ShowOptions>();
    auto* show = app.add_subcommand("show", "one job with its requests, attempts and outputs");
    show->add_option("job", so->id, "job id")->required();
    show->add_flag("--json", so->json, "one JSON object");
    show->callback([so, &ctx] { ctx.action = [so, &ctx] { return run_show(*so, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
