#pragma once
// Helpers shared by the fuzz targets: the input as text, an HTTP answer read from the input,
// and checks of what a parser promises (a broken promise aborts: libFuzzer reports a crash).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/net/http.hpp"
#include "jobs/catalog.hpp"
#include "jobs/job_file.hpp"
#include "jobs/text.hpp"
#include "jobs/validate.hpp"

namespace imgbatch::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Aborts with a message when a promise does not hold.
inline void require(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz: broken promise: %s\n", what);
    std::abort();
}

// An answer written as "STATUS\nName: value\n...\n\nBODY" (the corpus files' shape). A first
// line that is no status gives 200 and is read as a header; no blank line: everything after
// the headers is the body.
inline daemon::HttpResponse response_from(std::string_view in) {
    daemon::HttpResponse r;
    r.status = 200;
    auto next_line = [&in]() {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
        return line;
    };
    std::string_view first = in.substr(0, in.find('\n'));
    if (!first.empty() && first.size() <= 3 &&
        first.find_first_not_of("0123456789") == std::string_view::npos) {
        r.status = std::stoi(std::string(first));
        next_line();
    }
    while (!in.empty()) {
        auto line = next_line();
        if (line.empty()) break;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            r.body = std::string(line) + "\n" + std::string(in);  // not a header: the body
            return r;
        }
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    r.body = std::string(in);
    return r;
}

// The built-in catalog with one provider per API style that serves every model: validation
// reaches every model's rules.
inline const jobs::Catalog& catalog() {
    static const jobs::Catalog c = jobs::Catalog::builtin();
    return c;
}
inline const std::vector<jobs::ProviderInfo>& providers() {
    static const std::vector<jobs::ProviderInfo> p = [] {
        auto names = catalog().names();
        return std::vector<jobs::ProviderInfo>{{"openai", "openai", names, 0},
                                               {"google", "google", names, 4},
                                               {"relay", "openai-chat", names, 1}};
    }();
    return p;
}

// What every job-file reader promises: each job read is validated without a crash, each
// error names a line of the file.
inline void check_jobs(std::string_view text, const jobs::ParsedFile& parsed) {
    const auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
    for (const auto& e : parsed.errors) {
        require(e.line >= 0 && e.line <= lines, "an error's line is in the file");
        require(!e.reason.empty(), "an error has a reason");
    }
    for (const auto& job : parsed.jobs) {
        require(job.line >= 1 && job.line <= lines, "a job's line is in the file");
        require(jobs::is_clean_utf8(job.prompt), "a prompt is valid UTF-8");
        auto v = jobs::validate_job(job, catalog(), providers());
        require(v.ok.has_value() != !v.error.empty(), "validation says ok or why not");
    }
}

}  // namespace imgbatch::fuzz
