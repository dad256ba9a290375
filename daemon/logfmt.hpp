#pragma once
// Log values from outside (a prompt, a model, a key, a provider's message, a path) in logfmt:
// `field={}` with q(value) always yields one field, quoted when needed ("..." with \" \\ \n
// \r \t and \xHH for other control bytes), so that data can neither forge a log line nor
// break out of its field. install_log_escaping() adds a last line of defence to a logger: a
// line break left in any message is written as \n.
#include <fmt/format.h>

#include <memory>
#include <streambuf>
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

// Where log lines go and how they look.
// - journal: stderr is connected to the systemd journal (JOURNAL_STREAM names stderr's
//   device and inode, as sd-daemon(3) and systemd.exec(5) describe): each line starts with
//   its syslog priority ("<3>" error and critical, "<4>" warning, "<6>" info, "<7>" debug
//   and trace) and carries no time stamp (the journal adds its own), so that
//   `journalctl -p err` selects by level.
// - otherwise: "2026-11-21T21:09:49.123+00:00 info event=...": RFC 3339 time with the
//   local zone offset, the level, the message; the level is coloured only on a terminal and
//   never when NO_COLOR is set (non-empty, https://no-color.org).
struct LogStyle {
    bool journal = false;
    bool color = false;
};

// The style for a process whose stderr is stderr_fd, from JOURNAL_STREAM and NO_COLOR
// (nullptr: unset) and whether stderr is a terminal.
LogStyle log_style(const char* journal_stream, const char* no_color, int stderr_fd);

// The pattern of a style (spdlog syntax).
std::string log_pattern(const LogStyle& style);

// unix_s as an RFC 3339 time in the local zone, to the millisecond:
// "2026-11-21T21:09:49.123+01:00".
std::string log_time(double unix_s);

// A stream buffer that writes prefix at the start of every line it passes on to dest. Under
// the journal, std::cerr gets one with "<3>": the command line's error messages
// ("imgbatch: ...", a configuration error) are then errors for `journalctl -p err` too.
std::unique_ptr<std::streambuf> prefix_lines(std::streambuf* dest, std::string prefix);

// The syslog priority prefix of an spdlog level ("<3>" ...).
const char* journal_priority(int spdlog_level);

}  // namespace imgbatch::daemon

template <>
struct fmt::formatter<imgbatch::daemon::Quoted> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const imgbatch::daemon::Quoted& v, FormatContext& ctx) const {
        std::string s = imgbatch::daemon::logfmt_value(v.text);
        return fmt::formatter<std::string_view>::format(std::string_view(s), ctx);
    }
};
