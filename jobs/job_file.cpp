#include "jobs/job_file.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

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

namespace {
constexpr std::size_t kReadSize = std::size_t{64} << 10;
}  // namespace

bool Input::more() {
    if (eof_) return false;
    const std::size_t have = buf_.size() - start_;
    if (have > kMaxLineBytes) return false;
    if (start_ > 0) {  // drop what was consumed
        buf_.erase(0, start_);
        start_ = 0;
    }
    if (buf_.capacity() > 4 * kReadSize && have < buf_.capacity() / 4) buf_.shrink_to_fit();
    const std::size_t want = std::min(std::max(kReadSize, have), kMaxLineBytes + 1 - have);
    buf_.resize(have + want);
    std::size_t got = 0;
    try {
        got = read_(buf_.data() + have, want);
    } catch (...) {
        buf_.resize(have);
        throw;
    }
    buf_.resize(have + std::min(got, want));
    if (got == 0) eof_ = true;
    return got > 0;
}

bool Input::next_line(int& no, std::string_view& line, bool& too_long) {
    too_long = false;
    for (;;) {
        const std::string_view w = window();
        if (auto nl = w.find('\n', scanned_); nl != std::string_view::npos) {
            line = w.substr(0, nl);
            consume(nl + 1);
            break;
        }
        scanned_ = w.size();
        if (w.size() > kMaxLineBytes) {
            // Too long to hold: drop it as it comes, up to its newline.
            too_long = true;
            line = {};
            for (;;) {
                consume(window().size());
                if (!more()) break;
                if (auto nl = window().find('\n'); nl != std::string_view::npos) {
                    consume(nl + 1);
                    break;
                }
            }
            break;
        }
        if (!more()) {
            if (window().empty()) return false;
            line = window();  // the last line, without a newline
            consume(line.size());
            break;
        }
    }
    scanned_ = 0;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    no = ++line_no_;
    return true;
}

std::string too_long_message(std::string_view what) {
    return std::string(what) + " longer than " + std::to_string(kMaxLineBytes >> 20) + " MiB";
}

void read_txt(Input& in, ReadContext& ctx) {
    for_each_line(in, ctx, [&](int no, std::string_view line) {
        if (!is_clean_utf8(line)) return ctx.error(no, std::string(kNotUtf8));
        auto prompt = trim(line);
        if (prompt.empty() || prompt.front() == '#') return;
        JobDraft d;
        d.spec.prompt = prompt;
        d.has_prompt = true;
        if (auto err = finish_job(d, ctx.defaults); !err.empty()) return ctx.error(no, err);
        d.spec.source = ctx.file;
        d.spec.line = no;
        ctx.job(std::move(d.spec));
    });
}

void read_job_file(const ReadFn& read, std::string_view filename, FileFormat format,
                   const JobDefaults& defaults, JobSink& sink) {
    ReadContext ctx{std::string(filename), defaults, sink};
    Input in(read);
    constexpr std::string_view bom = "\xEF\xBB\xBF";
    while (in.window().size() < bom.size() && in.more()) {
    }
    if (in.window().substr(0, bom.size()) == bom) in.consume(bom.size());
    switch (format) {
        case FileFormat::jsonl:
            read_jsonl(in, ctx);
            break;
        case FileFormat::csv:
            read_csv(in, ctx);
            break;
        case FileFormat::txt:
            read_txt(in, ctx);
            break;
    }
    if (ctx.jobs == 0 && ctx.errors == 0) ctx.error(0, "empty file: no jobs");
}

ParsedFile parse_job_file(std::string_view content, std::string_view filename, FileFormat format,
                          const JobDefaults& defaults) {
    struct Collect : JobSink {
        explicit Collect(ParsedFile& o) : out(o) {}
        void job(JobSpec&& spec) override { out.jobs.push_back(std::move(spec)); }
        void error(LineError&& error) override { out.errors.push_back(std::move(error)); }
        ParsedFile& out;
    };
    ParsedFile out;
    // One job per line at most: reserving spares the copies of a growing vector.
    out.jobs.reserve(static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')) +
                     1);
    Collect collect(out);
    ReadFn read = [&content](char* buf, std::size_t size) {
        const std::size_t n = std::min(size, content.size());
        std::memcpy(buf, content.data(), n);
        content.remove_prefix(n);
        return n;
    };
    read_job_file(read, filename, format, defaults, collect);
    return out;
}

}  // namespace imgbatch::jobs
