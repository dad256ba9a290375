#pragma once
// Shared by the budget tests: job lines of one-image jobs and an edit of the config file (for
// a SIGHUP that changes a budget).
#include <string>

#include "tests/integration/daemon_fixture.hpp"

namespace imgbatch::test {

// count one-image jobs of gpt-image-2, keys prefix0, prefix1, ...
inline std::string lighthouse_jobs(const std::string& prefix, int count) {
    std::string out;
    for (int i = 0; i < count; ++i)
        out += job_line(prefix + std::to_string(i), "a lighthouse " + std::to_string(i),
                        "gpt-image-2", 1);
    return out;
}

// Replaces the first `from` in the file at path with `to` (which must be there).
inline void replace_in(const std::string& path, const std::string& from, const std::string& to) {
    std::string text = read_file(path);
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    write_file(path, text);
}

}  // namespace imgbatch::test
