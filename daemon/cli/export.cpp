// `imgbatch export`: one record per job as JSON lines or CSV, to stdout or a file written
// atomically.
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <iostream>
#include <memory>

#include "daemon/cli/commands.hpp"
#include "daemon/cli/format.hpp"

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;

struct ExportOptions {
    std::string batch, format = "jsonl", output;
};

json::object record_json(const jobs::ExportRecord& r) {
    const auto& j = r.job;
    json::array images;
    for (const auto& img : r.images)
        images.push_back(json::object{
            {"path", img.path}, {"sha256", img.sha256}, {"bytes", img.bytes}, {"mime", img.mime}});
    return json::object{{"id", j.id},
                        {"key", string_or_null(j.key)},
                        {"batch", string_or_null(j.batch)},
                        {"state", j.state},
                        {"prompt", j.prompt},
                        {"model", j.model},
                        {"provider", string_or_null(j.provider)},
                        {"n", j.n},
                        {"images_done", j.images_done},
                        {"images", std::move(images)},
                        {"attempts", r.attempts},
                        {"last_error", json_error(r.last_error)},
                        {"metadata", json_or_null(j.metadata_json)},
                        {"usage", r.usage.empty() ? json::value(nullptr) : json::value(r.usage)}};
}

constexpr const char* kCsvHeader =
    "id,key,batch,state,prompt,model,provider,n,images_done,images,attempts,last_error_class,"
    "last_error_code,last_error_http_status,last_error_message,metadata,usage\r\n";

std::string record_csv(const jobs::ExportRecord& r) {
    const auto& j = r.job;
    std::string paths;
    for (const auto& img : r.images) paths += (paths.empty() ? "" : ";") + img.path;
    std::vector<std::string> f{std::to_string(j.id),
                               j.key,
                               j.batch,
                               j.state,
                               j.prompt,
                               j.model,
                               j.provider,
                               std::to_string(j.n),
                               std::to_string(j.images_done),
                               paths,
                               std::to_string(r.attempts),
                               r.last_error ? std::string(jobs::to_string(r.last_error->cls)) : "",
                               r.last_error ? r.last_error->code : "",
                               r.last_error && r.last_error->http_status > 0
                                   ? std::to_string(r.last_error->http_status)
                                   : "",
                               r.last_error ? r.last_error->message : "",
                               j.metadata_json,
                               r.usage.empty() ? "" : json::serialize(r.usage)};
    std::string line;
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (i) line += ',';
        line += csv_field(f[i]);
    }
    return line + "\r\n";
}

int run_export(const ExportOptions& o, Context& ctx) {
    auto& store = ctx.existing_store();
    std::optional<std::string> batch;
    if (!o.batch.empty()) {
        auto names = store.batch_names();
        if (std::find(names.begin(), names.end(), o.batch) == names.end())
            throw OperationError("no batch '" + o.batch + "'");
        batch = o.batch;
    }
    std::unique_ptr<AtomicFile> file;
    if (!o.output.empty() && o.output != "-") file = std::make_unique<AtomicFile>(o.output);
    std::ostream& out = file ? file->stream() : std::cout;
    const bool csv = o.format == "csv";
    if (csv) out << kCsvHeader;
    std::size_t count = 0;
    store.export_jobs(batch, [&](const jobs::ExportRecord& r) {
        if (csv)
            out << record_csv(r);
        else
            out << json::serialize(record_json(r)) << '\n';
        ++count;
    });
    if (file) {
        file->commit();
        std::cerr << "exported " << count << " jobs to " << o.output << '\n';
    } else {
        out.flush();
    }
    return 0;
}

}  // namespace

void add_export(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<ExportOptions>();
    auto* cmd = app.add_subcommand("export", "one record per job: images, attempts, last error");
    cmd->add_option("--batch", o->batch, "only this batch");
    cmd->add_option("--format", o->format, "jsonl (default) or csv")
        ->check(CLI::IsMember({"jsonl", "csv"}));
    cmd->add_option("-o,--output", o->output, "write to FILE (atomically) instead of stdout");
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_export(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
