#pragma once
// Log values from outside (a prompt, a model, a key, a provider's message, a path) in logfmt:
// `field={}` with q(value) always yields one field, quoted when needed ("..." with \" \\ \n
// \r \t and \xHH for other control bytes), so that data can neither forge a log line nor
// break out of its field. install_log_escaping() adds a last line of defence to a logger: a
// line break left in any message is written as \n.
#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace imgbatch::daemon {

struct Quoted {
    std::string_view text;
};
inline Quoted q(std::string_view s) {
    return Quoted{s};
}

// The logfmt form of s: as it is when it is a plain token (no space, quote, '=', control
// byte, and not empty), else quoted and escaped.
std::string logfmt_value(std::string_view s);

// Sets logger's pattern and escapes any line break in its messages.
void install_log_pattern(spdlog::logger& logger, const std::string& pattern);

}  // namespace imgbatch::daemon

template <>
struct fmt::formatter<imgbatch::daemon::Quoted> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const imgbatch::daemon::Quoted& v, FormatContext& ctx) const {
        std::string s = imgbatch::daemon::logfmt_value(v.text);
        return fmt::formatter<std::string_view>::format(std::string_view(s), ctx);
    }
};
