#include "daemon/json_text.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <system_error>

namespace imgbatch::daemon {

namespace {

bool number_char(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// A number token outside strings, in plain form when it has a fraction or an exponent.
void append_number(std::string& out, std::string_view token) {
    if (token.find_first_of(".eE") == std::string_view::npos) {
        out += token;  // an integer: as it is
        return;
    }
    double v = 0;
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
    const double a = std::fabs(v);
    if (ec != std::errc() || end != token.data() + token.size() || !std::isfinite(v) ||
        (a != 0 && (a < 1e-12 || a >= 1e17))) {
        out += token;
        return;
    }
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
    if (r.ec != std::errc()) {
        out += token;
        return;
    }
    std::string_view plain(buf, static_cast<std::size_t>(r.ptr - buf));
    if (plain == "-0") plain = "0";
    out += plain;
}

}  // namespace

std::string plain_json_numbers(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '"') {
            // A string, copied as it is up to its closing quote (escapes skipped).
            std::size_t j = i + 1;
            while (j < text.size() && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
            j = std::min(j + 1, text.size());
            out.append(text.substr(i, j - i));
            i = j;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            std::size_t j = i + 1;
            while (j < text.size() && number_char(text[j])) ++j;
            append_number(out, text.substr(i, j - i));
            i = j;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

std::string json_text(const boost::json::value& v) {
    return plain_json_numbers(boost::json::serialize(v));
}

}  // namespace imgbatch::daemon
