#pragma once
// The `output_name` template of the config: a relative path without extension whose parts
// are literal text and tokens ({batch} {key} {job} {index} {model} {date} {prompt_slug}).
// Parsed and checked here (at config load); rendered by the output writer
// (daemon/engine/output_names.cpp), which keeps file names unique.
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imgbatch::daemon {

struct NameTemplate {
    struct Part {
        bool token = false;
        std::string text;  // a token's name (without braces), or literal text
    };
    std::string source;                         // as written; "" = the default naming
    std::vector<std::vector<Part>> components;  // one per '/'-separated path component
    // The last component ends with "{job}-{index}" (at its start or after a '-'): the
    // unique tail the writer appends anyway is already written there.
    bool ends_with_job_index = false;

    bool empty() const { return source.empty(); }

    // The tokens a template may use.
    static const std::vector<std::string>& tokens();
    // Parses a template; throws std::invalid_argument saying what is wrong (an unknown or
    // unclosed token, an absolute path, an empty, "." or ".." component, a component starting
    // with a dot, control characters, a backslash or a '~').
    static NameTemplate parse(std::string_view text);
};

}  // namespace imgbatch::daemon
