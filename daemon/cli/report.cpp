// `imgbatch report`: a static HTML page (index.html, opened from disk, no server) with a
// summary per batch, the failed/blocked/rejected jobs and a grid of thumbnails (thumbs/,
// made with libvips, named by the image's SHA-256 and size, so reused by the next report).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "daemon/cli/commands.hpp"
#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/json_text.hpp"
#include "daemon/thumbnail.hpp"

namespace imgbatch {
std::string_view report_page();  // report/report.html, embedded at build time
}

namespace imgbatch::daemon::cli {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

struct ReportOptions {
    std::string batch, output = "imgbatch-report";
    int thumb_size = 256;
    int threads = 0;  // 0: the number of cores, at most 8
};

// A path as a URL path: each segment percent-encoded except unreserved characters.
std::string url_path(const fs::path& p) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : p.generic_string()) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// The link from the report directory to an image: relative when the image is on the same
// tree (so the report and the images can move together), else an absolute file:// URL.
std::string image_href(const fs::path& report_dir, const std::string& stored) {
    auto abs = fs::absolute(stored).lexically_normal();
    auto rel = abs.lexically_relative(report_dir);
    if (!rel.empty()) return url_path(rel);
    return "file://" + url_path(abs);
}

struct BatchSummary {
    std::map<std::string, std::int64_t> by_state;
    std::int64_t jobs = 0, images = 0, images_wanted = 0;
    double started = 0, finished = 0;
    std::map<std::string, std::int64_t> providers;  // images per provider
    std::map<std::string, std::int64_t> models;     // jobs per model
};

bool is_failure(const std::string& state) {
    return state == "failed" || state == "blocked" || state == "rejected";
}

int run_report(const ReportOptions& o, Context& ctx) {
    auto& store = ctx.existing_store();
    std::vector<std::string> batches = store.batch_names();
    if (!o.batch.empty()) {
        if (std::find(batches.begin(), batches.end(), o.batch) == batches.end())
            throw OperationError("no batch '" + o.batch + "'");
        batches = {o.batch};
    }
    const fs::path dir = fs::absolute(o.output).lexically_normal();
    std::error_code ec;
    fs::create_directories(dir / "thumbs", ec);
    if (ec) throw OperationError("create " + (dir / "thumbs").string() + ": " + ec.message());

    json::array batch_rows, failures, images;
    std::vector<ThumbnailJob> thumbs;
    for (const auto& name : batches) {
        BatchSummary s;
        for (auto st : {"pending", "queued", "running", "succeeded", "failed", "blocked",
                        "cancelled", "rejected"})
            s.by_state[st] = 0;
        store.export_jobs(name, [&](const jobs::ExportRecord& r) {
            const auto& j = r.job;
            ++s.by_state[j.state];
            ++s.jobs;
            ++s.models[j.model];
            if (j.state != "rejected" && j.state != "cancelled") s.images_wanted += j.n;
            if (j.created_at > 0 && (s.started == 0 || j.created_at < s.started))
                s.started = j.created_at;
            s.finished = std::max(s.finished, j.finished_at);
            if (!is_failure(j.state)) return;
            json::object f{{"job", j.id},
                           {"key", string_or_null(j.key)},
                           {"batch", j.batch},
                           {"state", j.state},
                           {"prompt", j.prompt},
                           {"model", j.model},
                           {"provider", j.provider},
                           {"attempts", r.attempts}};
            if (r.last_error) {
                f["class"] = jobs::to_string(r.last_error->cls);
                f["code"] = string_or_null(r.last_error->code);
                f["http_status"] = r.last_error->http_status;
                f["message"] = r.last_error->message;
            }
            failures.push_back(std::move(f));
        });
        store.export_images(name, [&](const jobs::ImageRecord& r) {
            const auto& j = r.job;
            const auto& img = r.image;
            ++s.images;
            ++s.providers[r.provider];
            std::string thumb;
            std::error_code exists_ec;
            if (img.sha256.size() == 64 && fs::exists(img.path, exists_ec)) {
                thumb = "thumbs/" + img.sha256 + "-" + std::to_string(o.thumb_size) + ".jpg";
                thumbs.push_back({img.path, (dir / thumb).string()});
            }
            images.push_back(json::object{{"job", j.id},
                                          {"key", string_or_null(j.key)},
                                          {"batch", j.batch},
                                          {"state", j.state},
                                          {"idx", img.idx},
                                          {"prompt", j.prompt},
                                          {"model", j.model},
                                          {"provider", r.provider},
                                          {"width", img.width},
                                          {"height", img.height},
                                          {"bytes", img.bytes},
                                          {"revised_prompt", string_or_null(img.revised_prompt)},
                                          {"thumb", thumb},
                                          {"href", image_href(dir, img.path)}});
        });
        json::object by_state, providers, models;
        for (const auto& [k, v] : s.by_state) by_state[k] = v;
        for (const auto& [k, v] : s.providers) providers[k] = v;
        for (const auto& [k, v] : s.models) models[k] = v;
        batch_rows.push_back(json::object{{"name", name},
                                          {"jobs", s.jobs},
                                          {"by_state", std::move(by_state)},
                                          {"images", s.images},
                                          {"images_wanted", s.images_wanted},
                                          {"started_at", string_or_null(iso_time(s.started))},
                                          {"finished_at", string_or_null(iso_time(s.finished))},
                                          {"duration_s", s.finished > s.started && s.started > 0
                                                             ? json_number(s.finished - s.started)
                                                             : json::value(nullptr)},
                                          {"providers", std::move(providers)},
                                          {"models", std::move(models)},
                                          {"spend", spend_json(store.spend(batch_filter(name)))},
                                          {"budget_usd", usd_json(store.batch_budget(name))}});
    }

    // The same image twice (same bytes) has one thumbnail.
    std::sort(thumbs.begin(), thumbs.end(),
              [](const auto& a, const auto& b) { return a.target < b.target; });
    thumbs.erase(std::unique(thumbs.begin(), thumbs.end(),
                             [](const auto& a, const auto& b) { return a.target == b.target; }),
                 thumbs.end());
    int threads = o.threads > 0
                      ? o.threads
                      : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
    auto made = make_thumbnails(thumbs, o.thumb_size, threads);
    for (const auto& f : made.failed) std::cerr << "thumbnail: " << f << '\n';
    if (!made.failed.empty())  // those images show as "no thumbnail", not as a broken image
        for (auto& v : images) {
            auto& thumb = v.as_object()["thumb"];
            std::error_code exists_ec;
            if (!thumb.as_string().empty() &&
                !fs::exists(dir / std::string(thumb.as_string()), exists_ec))
                thumb = "";
        }

    json::object page_data{{"generated_at", iso_time(jobs::unix_now())},
                           {"database", ctx.database()},
                           {"batches", std::move(batch_rows)},
                           {"failures", std::move(failures)},
                           {"images", std::move(images)}};
    // In a <script> element "</script>" must not appear: '<' only occurs inside JSON strings,
    // where \u003c means the same.
    std::string blob;
    for (char c : json_text(page_data)) {
        if (c == '<')
            blob += "\\u003c";
        else
            blob += c;
    }
    std::string page(report_page());
    auto at = page.find("{{DATA}}");
    if (at == std::string::npos) throw std::logic_error("report page without {{DATA}}");
    page.replace(at, 8, blob);
    AtomicFile file((dir / "index.html").string());
    file.stream() << page;
    file.commit();
    std::cerr << "report: " << (dir / "index.html").string() << " (" << made.made
              << " thumbnails made, " << made.reused << " reused";
    if (!made.failed.empty()) std::cerr << ", " << made.failed.size() << " failed";
    std::cerr << ")\n";
    return 0;
}

}  // namespace

void add_report(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<ReportOptions>();
    auto* cmd = app.add_subcommand(
        "report", "static HTML report: batch summaries, failures, thumbnails (open index.html)");
    cmd->add_option("--batch", o->batch, "only this batch (default: every batch)");
    cmd->add_option("-o,--output", o->output, "report directory (default: imgbatch-report)");
    cmd->add_option("--thumb-size", o->thumb_size, "thumbnail size in pixels (default 256)")
        ->check(CLI::Range(32, 1024));
    cmd->add_option("--threads", o->threads, "thumbnail threads (default: cores, at most 8)")
        ->check(CLI::Range(1, 64));
    cmd->callback([o, &ctx] { ctx.action = [o, &ctx] { return run_report(*o, ctx); }; });
}

}  // namespace imgbatch::daemon::cli
