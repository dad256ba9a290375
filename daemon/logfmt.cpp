#include "daemon/logfmt.hpp"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>

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

// Writes each message with its line breaks escaped, then formats it with the pattern.
class EscapingFormatter final : public spdlog::formatter {
  public:
    explicit EscapingFormatter(std::string pattern)
        : pattern_(pattern), inner_(std::make_unique<spdlog::pattern_formatter>(pattern)) {}

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

}  // namespace

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

}  // namespace imgbatch::daemon
