#include "daemon/net/http.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

namespace imgbatch::daemon {

std::string_view find_header(const Headers& headers, std::string_view name) {
    auto same = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    };
    for (const auto& [k, v] : headers)
        if (same(k, name)) return v;
    return {};
}

namespace {

bool is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 3986 reg-name: unreserved, sub-delims and pct-encoded characters.
bool is_reg_name_char(unsigned char c) {
    return is_alnum(c) || std::string_view("-._~!$&'()*+,;=%").find(static_cast<char>(c)) !=
                              std::string_view::npos;
}

// The inside of an IP literal: an IPv6 address (hex digits, ':' and a dotted IPv4 tail), with
// an optional zone ("%25eth0").
bool is_ip_literal(std::string_view s) {
    auto zone = s.find('%');
    std::string_view address = s.substr(0, zone);
    if (address.find(':') == std::string_view::npos) return false;
    if (!std::all_of(address.begin(), address.end(),
                     [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; }))
        return false;
    if (zone == std::string_view::npos) return true;
    std::string_view id = s.substr(zone);
    return id.size() > 3 && id.starts_with("%25") &&
           std::all_of(id.begin() + 3, id.end(), [](unsigned char c) {
               return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
           });
}

// A port: 1 to 5 digits, 1..65535.
bool is_port(std::string_view s) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v >= 1 && v <= 65535;
}

// Control characters and spaces would end or split a request line or a header.
bool has_control_or_space(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

// Reads an HTTP-date field by field. No time_t, tm or clock arithmetic: any year 0000-9999
// is representable as seconds since 1970 in an int64 without overflow.
class DateReader {
  public:
    explicit DateReader(std::string_view s) : s_(s) {}

    bool literal(std::string_view x) {
        if (!s_.starts_with(x)) return false;
        s_.remove_prefix(x.size());
        return true;
    }
    // Exactly n digits.
    bool digits(std::size_t n, int& out) {
        if (s_.size() < n) return false;
        out = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (s_[i] < '0' || s_[i] > '9') return false;
            out = out * 10 + (s_[i] - '0');
        }
        s_.remove_prefix(n);
        return true;
    }
    // One of names; out is its index.
    template <std::size_t N>
    bool one_of(const std::array<std::string_view, N>& names, int& out) {
        for (std::size_t i = 0; i < N; ++i) {
            if (literal(names[i])) {
                out = static_cast<int>(i);
                return true;
            }
        }
        return false;
    }
    // "HH:MM:SS" (a leap second 60 is allowed).
    bool time_of_day(std::int64_t& out) {
        int h = 0, m = 0, sec = 0;
        if (!digits(2, h) || !literal(":") || !digits(2, m) || !literal(":") || !digits(2, sec))
            return false;
        if (h > 23 || m > 59 || sec > 60) return false;
        out = h * 3600 + m * 60 + sec;
        return true;
    }
    bool done() const { return s_.empty(); }

  private:
    std::string_view s_;
};

constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};

bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int month0) {
    static constexpr std::array<int, 12> kLength{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return kLength[static_cast<std::size_t>(month0)] + (month0 == 1 && is_leap(y) ? 1 : 0);
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil); month0 is 0-based.
std::int64_t days_from_civil(std::int64_t y, int month0, int day) {
    const int m = month0 + 1;
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

// Seconds since 1970 of a valid date and time; nullopt when the day does not exist.
std::optional<std::int64_t> to_unix(int year, int month0, int day, std::int64_t seconds) {
    if (day < 1 || day > days_in_month(year, month0)) return std::nullopt;
    return days_from_civil(year, month0, day) * 86400 + seconds;
}

// The date of parse_http_date, with the current year for RFC 850's two-digit years.
std::optional<std::int64_t> read_http_date(std::string_view text, int now_year) {
    int wd = 0, day = 0, month = 0, year = 0;
    std::int64_t tod = 0;
    {
        DateReader r(text);
        if (r.one_of(kDays, wd) && r.literal(", ") && r.digits(2, day) && r.literal(" ") &&
            r.one_of(kMonths, month) && r.literal(" ") && r.digits(4, year) && r.literal(" ") &&
            r.time_of_day(tod) && r.literal(" GMT") && r.done())
            return to_unix(year, month, day, tod);
    }
    {
        DateReader r(text);
        if (r.one_of(kLongDays, wd) && r.literal(", ") && r.digits(2, day) && r.literal("-") &&
            r.one_of(kMonths, month) && r.literal("-") && r.digits(2, year) && r.literal(" ") &&
            r.time_of_day(tod) && r.literal(" GMT") && r.done()) {
            year += now_year / 100 * 100;
            if (year > now_year + 50) year -= 100;
            return to_unix(year, month, day, tod);
        }
    }
    {
        DateReader r(text);
        if (r.one_of(kDays, wd) && r.literal(" ") && r.one_of(kMonths, month) && r.literal(" ") &&
            (r.literal(" ") ? r.digits(1, day) : r.digits(2, day)) && r.literal(" ") &&
            r.time_of_day(tod) && r.literal(" ") && r.digits(4, year) && r.done())
            return to_unix(year, month, day, tod);
    }
    return std::nullopt;
}

// The calendar year of a Unix time (for RFC 850's two-digit years).
int year_of(std::int64_t unix_s) {
    std::int64_t days = unix_s / 86400 - (unix_s % 86400 < 0 ? 1 : 0);
    int year = 1970;
    // Whole 400-year eras (146097 days) first, then years one by one (at most 400 steps).
    year += static_cast<int>(days / 146097 * 400);
    days %= 146097;
    if (days < 0) {
        days += 146097;
        year -= 400;
    }
    while (days >= (is_leap(year) ? 366 : 365)) days -= is_leap(year++) ? 366 : 365;
    return year;
}

}  // namespace

bool parse_url(std::string_view text, Url& out) {
    if (has_control_or_space(text)) return false;
    auto sep = text.find("://");
    if (sep == std::string_view::npos) return false;
    std::string scheme(text.substr(0, sep));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "http" && scheme != "https") return false;
    std::string_view rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find('#'));  // the fragment is not sent
    auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "/" : rest.substr(slash);
    std::string target;
    if (path.front() == '?') target = "/";
    // Bytes beyond ASCII are sent percent-encoded.
    static constexpr std::string_view kHex = "0123456789ABCDEF";
    for (unsigned char c : path) {
        if (c < 0x80) {
            target += static_cast<char>(c);
        } else {
            target += '%';
            target += kHex[c >> 4];
            target += kHex[c & 15];
        }
    }
    if (auto at = authority.rfind('@'); at != std::string_view::npos)
        authority = authority.substr(at + 1);  // userinfo is not used
    std::string_view host, port;
    if (!authority.empty() && authority[0] == '[') {  // [v6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = authority.substr(1, close - 1);
        if (!is_ip_literal(host)) return false;
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return false;
            port = authority.substr(close + 2);
        }
    } else {
        auto colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
        if (!std::all_of(host.begin(), host.end(),
                         [](unsigned char c) { return is_reg_name_char(c); }))
            return false;
    }
    if (host.empty()) return false;
    std::string port_text = port.empty() ? (scheme == "https" ? "443" : "80") : std::string(port);
    if (!is_port(port_text)) return false;
    out = Url{scheme, std::string(host), std::move(port_text), std::move(target)};
    return true;
}

std::optional<std::int64_t> parse_http_date(std::string_view text,
                                            std::chrono::system_clock::time_point now) {
    const auto now_s =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    return read_http_date(text, year_of(now_s));
}

}  // namespace imgbatch::daemon
