// `imgbatch export`: one record per job (or, with --per-image, per image) as JSON lines or
// CSV, to stdout or a file written atomically. Both can be fed back to `enqueue`.
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

#include "jobs/catalog.hpp"

#include "daemon/cli/commands.hpp"
#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/json_text.hpp"

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;

struct ExportOptions {
    std::string batch, format = "jsonl", output, relative_to;
    bool per_image = false;
};

// Image paths as exported: absolute (a relative stored path is taken from the current
// directory), or relative to base when one is given.
class PathStyle {
  public:
    explicit PathStyle(const std::string& relative_to) {
        if (!relative_to.empty()) base_ = std::filesystem::absolute(relative_to).lexically_normal();
    }
    std::string operator()(const std::string& stored) const {
        auto abs = std::filesystem::absolute(stored).lexically_normal();
        if (base_.empty()) return abs.string();
        return abs.lexically_proximate(base_).string();
    }

  private:
    std::filesystem::path base_;
};

// The job's generation parameters (jobs.params) as an object; empty when none.
json::object params_of(const jobs::JobRow& j) {
    auto v = json_or_null(j.params_json);
    return v.is_object() ? v.get_object() : json::object{};
}

// A parameter as one CSV cell: strings as they are, other values as JSON.
std::string param_cell(const json::object& params, std::string_view name) {
    const auto* v = params.if_contains(name);
    if (!v || v->is_null()) return {};
    if (v->is_string()) return std::string(v->get_string());
    return json_text(*v);
}

json::object record_json(const jobs::ExportRecord& r, const PathStyle& path) {
    const auto& j = r.job;
    json::array images;
    for (const auto& img : r.images)
        images.push_back(json::object{{"path", path(img.path)},
                                      {"sha256", img.sha256},
                                      {"bytes", img.bytes},
                                      {"mime", img.mime}});
    json::object o = json_job_head(j);
    o["params"] = params_of(j);
    o["priority"] = j.priority;
    o["created_at"] = string_or_null(iso_time(j.created_at));
    o["finished_at"] = string_or_null(iso_time(j.finished_at));
    o["images_done"] = j.images_done;
    o["images"] = std::move(images);
    o["attempts"] = r.attempts;
    o["last_error"] = json_error(r.last_error);
    o["metadata"] = json_or_null(j.metadata_json);
    o["usage"] = r.usage.empty() ? json::value(nullptr) : json::value(r.usage);
    o["cost_usd"] = usd_json(r.cost_usd);
    return o;
}

// Generation parameters get a column each (the catalog's fields), and all of them together
// (unknown ones included) are the params column.
std::string csv_header(std::initializer_list<std::string_view> before,
                       std::initializer_list<std::string_view> after) {
    std::string h;
    for (auto c : before) h.append(h.empty() ? "" : ",").append(c);
    for (const auto& g : jobs::generation_fields()) h.append(",").append(g);
    h += ",params";
    for (auto c : after) h.append(",").append(c);
    return h + "\r\n";
}

std::string csv_line(const std::vector<std::string>& f) {
    std::string line;
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (i) line += ',';
        line += csv_field(f[i]);
    }
    return line + "\r\n";
}

void add_param_cells(std::vector<std::string>& f, const jobs::JobRow& j) {
    auto params = params_of(j);
    for (const auto& g : jobs::generation_fields()) f.push_back(param_cell(params, g));
    f.push_back(params.empty() ? "" : json_text(params));
}

std::string job_csv_header() {
    return csv_header({"id", "key", "batch", "state", "prompt", "model", "provider", "n"},
                      {"priority", "created_at", "finished_at", "images_done", "images", "attempts",
                       "last_error_class", "last_error_code", "last_error_http_status",
                       "last_error_message", "metadata", "usage", "cost_usd"});
}

std::string record_csv(const jobs::ExportRecord& r, const PathStyle& path) {
    const auto& j = r.job;
    std::string paths;
    for (const auto& img : r.images) paths += (paths.empty() ? "" : ";") + path(img.path);
    std::vector<std::string> f{
        std::to_string(j.id), j.key, j.batch, j.state, j.prompt, j.model, j.provider,
        std::to_string(j.n)};
    add_param_cells(f, j);
    f.insert(f.end(), {std::to_string(j.priority), iso_time(j.created_at), iso_time(j.finished_at),
                       std::to_string(j.images_done), paths, std::to_string(r.attempts),
                       r.last_error ? std::string(jobs::to_string(r.last_error->cls)) : "",
                       r.last_error ? r.last_error->code : "",
                       r.last_error && r.last_error->http_status > 0
                           ? std::to_string(r.last_error->http_status)
                           : "",
                       r.last_error ? r.last_error->message : "", j.metadata_json,
                       r.usage.empty() ? "" : json_text(r.usage), usd_cell(r.cost_usd)});
    return csv_line(f);
}

// ---- per image ----

json::object image_json(const jobs::ImageRecord& r, const PathStyle& path) {
    const auto& j = r.job;
    const auto& o = r.image;
    return json::object{
        {"job", j.id},
        {"key", string_or_null(j.key)},
        {"batch", string_or_null(j.batch)},
        {"state", j.state},
        {"idx", o.idx},
        {"path", path(o.path)},
        {"prompt", j.prompt},
        {"model", j.model},
        {"provider", string_or_null(r.provider)},
        {"params", params_of(j)},
        {"width", o.width > 0 ? json::value(o.width) : json::value(nullptr)},
        {"height", o.height > 0 ? json::value(o.height) : json::value(nullptr)},
        {"bytes", o.bytes},
        {"sha256", o.sha256},
        {"mime", o.mime},
        {"revised_prompt", string_or_null(o.revised_prompt)},
        {"created_at", string_or_null(iso_time(j.created_at))},
        {"started_at", string_or_null(iso_time(r.started_at))},
        {"finished_at", string_or_null(iso_time(r.recorded_at))},
        {"duration_ms", r.started_at > 0 ? json::value(r.duration_ms) : json::value(nullptr)},
        {"metadata", json_or_null(j.metadata_json)},
        {"cost_usd", usd_json(r.cost_usd)}};
}

std::string image_csv_header() {
    return csv_header(
        {"job", "key", "batch", "state", "idx", "path", "prompt", "model", "provider"},
        {"width", "height", "bytes", "sha256", "mime", "revised_prompt", "created_at", "started_at",
         "finished_at", "duration_ms", "metadata", "cost_usd"});
}

std::string image_csv(const jobs::ImageRecord& r, const PathStyle& path) {
    const auto& j = r.job;
    const auto& o = r.image;
    std::vector<std::string> f{
        std::to_string(j.id), j.key,    j.batch, j.state,   std::to_string(o.idx),
        path(o.path),         j.prompt, j.model, r.provider};
    add_param_cells(f, j);
    auto num = [](std::int64_t v) { return v > 0 ? std::to_string(v) : std::string(); };
    f.insert(f.end(),
             {num(o.width), num(o.height), std::to_string(o.bytes), o.sha256, o.mime,
              o.revised_prompt, iso_time(j.created_at), iso_time(r.started_at),
              iso_time(r.recorded_at), r.started_at > 0 ? std::to_string(r.duration_ms) : "",
              j.metadata_json, usd_cell(r.cost_usd)});
    return csv_line(f);
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
    const PathStyle path(o.relative_to);
    std::size_t count = 0;
    if (o.per_image) {
        if (csv) out << image_csv_header();
        store.export_images(batch, [&](const jobs::ImageRecord& r) {
            if (csv)
                out << image_csv(r, path);
            else
                out << json_text(image_json(r, path)) << '\n';
            ++count;
        });
    } else {
        if (csv) out << job_csv_header();
        store.export_jobs(batch, [&](const jobs::ExportRecord& r) {
            if (csv)
                out << record_csv(r, path);
            else
                out << json_text(record_json(r, path)) << '\n';
            ++count;
        });
    }
    if (file) {
        file->commit();
        std::cerr << "exported " << count << (o.per_image ? " images" : " jobs") << " to "
                  << o.output << '\n';
    } else {
        out.flush();
    }
    return 0;
}

}  // namespace

void add_export(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<ExportOptions>();
    auto* cmd = app.add_subcommand(
        "export", "one record per job (images, attempts, last error) or, --per-image, per image");
    cmd->add_option("--batch", o->batch, "only this batch");
    cmd->add_option("--format", o->format, "jsonl (default) or csv")
        ->check(CLI::IsMember({"jsonl", "csv"}));
    cmd->add_option("-o,--output", o->output, "write to FILE (atomically) instead of stdout");
    cmd->add_flag("--per-image", o->per_image, "one record per recorded image");
    cmd->add_option("--relative-to", o->relative_to,
                    "image paths relative to DIR (default: absolute paths)");
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_export(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
