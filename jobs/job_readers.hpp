#pragma once
// The readers behind parse_job_file, one per format. Each appends to out.jobs / out.errors.
#include <string>
#include <string_view>

#include "jobs/job_file.hpp"

namespace imgbatch::jobs {

struct ReadContext {
    std::string file;
    const JobDefaults& defaults;
    ParsedFile& out;

    void error(int line, std::string reason) {
        out.errors.push_back({file, line, std::move(reason)});
    }
};

inline constexpr std::string_view kNotUtf8 = "line is not valid UTF-8 text";

// Calls fn(line_no, line) for every physical line (1-based, without "\n" or "\r\n").
template <class F>
void for_each_line(std::string_view content, F&& fn) {
    int no = 0;
    while (!content.empty()) {
        auto nl = content.find('\n');
        auto line = content.substr(0, nl);
        content = nl == std::string_view::npos ? std::string_view{} : content.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        fn(++no, line);
    }
}

void read_jsonl(std::string_view content, ReadContext& ctx);
void read_csv(std::string_view content, ReadContext& ctx);
void read_txt(std::string_view content, ReadContext& ctx);

}  // namespace imgbatch::jobs
