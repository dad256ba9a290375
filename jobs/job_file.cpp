#include "jobs/job_file.hpp"

#include <algorithm>
#include <cctype>

#include "jobs/job_line.hpp"
#include "jobs/job_readers.hpp"
#include "jobs/text.hpp"

namespace imgbatch::jobs {

std::optional<FileFormat> format_from_name(std::string_view filename) {
    if (filename == "-") return FileFormat::jsonl;
    auto dot = filename.rfind('.');
    if (dot == std::string_view::npos || filename.find('/', dot) != std::string_view::npos)
        return std::nullopt;
    std::string ext(filename.substr(dot + 1));
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == "jsonl" || ext == "json" || ext == "ndjson") return FileFormat::jsonl;
    if (ext == "csv") return FileFormat::csv;
    if (ext == "txt") return FileFormat::txt;
    return std::nullopt;
}

void read_txt(std::string_view content, ReadContext& ctx) {
    for_each_line(content, [&](int no, std::string_view line) {
        if (!is_clean_utf8(line)) return ctx.error(no, std::string(kNotUtf8));
        auto prompt = trim(line);
        if (prompt.empty() || prompt.front() == '#') return;
        JobDraft d;
        d.spec.prompt = prompt;
        d.has_prompt = true;
        if (auto err = finish_job(d, ctx.defaults); !err.empty()) return ctx.error(no, err);
        d.spec.source = ctx.file;
        d.spec.line = no;
        ctx.out.jobs.push_back(std::move(d.spec));
    });
}

ParsedFile parse_job_file(std::string_view content, std::string_view filename, FileFormat format,
                          const JobDefaults& defaults) {
    ParsedFile out;
    ReadContext ctx{std::string(filename), defaults, out};
    constexpr std::string_view bom = "\xEF\xBB\xBF";
    if (content.substr(0, bom.size()) == bom) content.remove_prefix(bom.size());
    // One job per line at most: reserving spares the copies of a growing vector.
    out.jobs.reserve(static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')) +
                     1);
    switch (format) {
        case FileFormat::jsonl:
            read_jsonl(content, ctx);
            break;
        case FileFormat::csv:
            read_csv(content, ctx);
            break;
        case FileFormat::txt:
            read_txt(content, ctx);
            break;
    }
    if (out.jobs.empty() && out.errors.empty()) ctx.error(0, "empty file: no jobs");
    return out;
}

}  // namespace imgbatch::jobs
