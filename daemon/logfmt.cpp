#include "daemon/logfmt.hpp"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>

namespace imgbatch::daemon {

namespace {

bool needs_quotes(std::string_view s) {
    if (s.empty()) return true;
    for (unsigned char c : s)
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
    return false;
}

void append_escaped(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += "\\x";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
}

// %P: the syslog priority prefix of the message's level (journal style).
class PriorityFlag final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        std::string_view p = journal_priority(static_cast<int>(msg.level));
        dest.append(p.data(), p.data() + p.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<PriorityFlag>();
    }
};

std::unique_ptr<spdlog::pattern_formatter> make_pattern_formatter(const std::string& pattern) {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<PriorityFlag>('P').set_pattern(pattern);
    return f;
}

// Writes each message with its line breaks escaped, then formats it with the pattern.
class EscapingFormatter final : public spdlog::formatter {
  public:
    explicit EscapingFormatter(std::string pattern)
        : pattern_(pattern), inner_(make_pattern_formatter(pattern)) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string_view payload(msg.payload.data(), msg.payload.size());
        if (payload.find_first_of("\r\n") == std::string_view::npos) {
            inner_->format(msg, dest);
            return;
        }
        std::string safe;
        safe.reserve(payload.size() + 16);
        for (char c : payload) {
            if (c == '\n')
                safe += "\\n";
            else if (c == '\r')
                safe += "\\r";
            else
                safe += c;
        }
        spdlog::details::log_msg copy = msg;
        copy.payload = spdlog::string_view_t(safe.data(), safe.size());
        inner_->format(copy, dest);
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<EscapingFormatter>(pattern_);
    }

  private:
    std::string pattern_;
    std::unique_ptr<spdlog::pattern_formatter> inner_;
};

class PrefixingBuf final : public std::streambuf {
  public:
    PrefixingBuf(std::streambuf* dest, std::string prefix)
        : dest_(dest), prefix_(std::move(prefix)) {}

  protected:
    int overflow(int c) override {
        if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
        if (at_line_start_)
            dest_->sputn(prefix_.data(), static_cast<std::streamsize>(prefix_.size()));
        at_line_start_ = c == '\n';
        return dest_->sputc(static_cast<char>(c));
    }
    int sync() override { return dest_->pubsync(); }

  private:
    std::streambuf* dest_;
    std::string prefix_;
    bool at_line_start_ = true;
};

}  // namespace

std::unique_ptr<std::streambuf> prefix_lines(std::streambuf* dest, std::string prefix) {
    return std::make_unique<PrefixingBuf>(dest, std::move(prefix));
}

std::string logfmt_value(std::string_view s) {
    if (!needs_quotes(s)) return std::string(s);
    std::string out = "\"";
    append_escaped(out, s);
    out += '"';
    return out;
}

void install_log_pattern(spdlog::logger& logger, const std::string& pattern) {
    logger.set_formatter(std::make_unique<EscapingFormatter>(pattern));
}

const char* journal_priority(int spdlog_level) {
    switch (static_cast<spdlog::level::level_enum>(spdlog_level)) {
        case spdlog::level::critical:
        case spdlog::level::err:
            return "<3>";
        case spdlog::level::warn:
            return "<4>";
        case spdlog::level::info:
            return "<6>";
        default:
            return "<7>";
    }
}

LogStyle log_style(const char* journal_stream, const char* no_color, int stderr_fd) {
    LogStyle style;
    if (journal_stream && *journal_stream) {
        // "DEVICE:INODE" of the journal's stream socket: a child whose stderr was redirected
        // elsewhere (a terminal, a file) inherits the variable but not the stream.
        unsigned long long dev = 0, ino = 0;
        struct stat st {};
        if (std::sscanf(journal_stream, "%llu:%llu", &dev, &ino) == 2 &&
            ::fstat(stderr_fd, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == dev &&
            static_cast<unsigned long long>(st.st_ino) == ino)
            style.journal = true;
    }
    bool no_color_set = no_color && *no_color;
    style.color = !style.journal && !no_color_set && ::isatty(stderr_fd) == 1;
    return style;
}

std::string log_time(double unix_s) {
    double whole = std::floor(unix_s);
    auto t = static_cast<std::time_t>(whole);
    int ms = static_cast<int>((unix_s - whole) * 1000);
    if (ms > 999) ms = 999;
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s.%03d%c%02ld:%02ld", date, ms, sign, off / 60, off % 60);
    return buf;
}

std::string log_pattern(const LogStyle& style) {
    if (style.journal) return "%P%v";
    return style.color ? "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v";
}

}  // namespace imgbatch::daemon
