#include "daemon/cli/format.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

std::string format_time(double unix_s) {
    if (unix_s <= 0) return {};
    std::time_t t = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string iso_time(double unix_s) {
    if (unix_s <= 0) return {};
    auto ms = static_cast<long long>(std::llround(unix_s * 1000));
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03lldZ", ms % 1000);
    return buf;
}

std::string format_duration(double seconds) {
    if (!(seconds >= 0)) return "?";
    auto s = static_cast<long long>(std::llround(seconds));
    char buf[48];
    if (s < 60)
        std::snprintf(buf, sizeof buf, "%llds", s);
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    return buf;
}

std::string excerpt(std::string_view text, std::size_t max_chars) {
    std::string out;
    std::size_t chars = 0, i = 0;
    while (i < text.size() && chars < max_chars) {
        auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        len = std::min(len, text.size() - i);
        if (len == 1 && (c < 0x20 || c == 0x7f))
            out += ' ';
        else
            out.append(text.substr(i, len));
        i += len;
        ++chars;
    }
    if (i < text.size()) out += "...";
    return out;
}

std::string csv_field(std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

namespace {
std::size_t display_width(std::string_view s) {
    std::size_t w = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++w;
    return w;
}
}  // namespace

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        if (widths.size() < row.size()) widths.resize(row.size(), 0);
        for (std::size_t i = 0; i < row.size(); ++i)
            widths[i] = std::max(widths[i], display_width(row[i]));
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line.append(widths[i] - display_width(row[i]) + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line;
        out += '\n';
    }
    return out;
}

boost::json::value json_or_null(std::string_view text) {
    if (text.empty()) return nullptr;
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec) return nullptr;
    return v;
}

boost::json::value json_number(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15)
        return static_cast<std::int64_t>(v);
    return v;
}

boost::json::value string_or_null(std::string_view s) {
    if (s.empty()) return nullptr;
    return boost::json::string(s);
}

std::string rfc3339(double unix_s) {
    auto ms = static_cast<long long>(std::llround(unix_s * 1000.0));
    long long secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        --secs;
    }
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::size_t len = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + len, sizeof buf - len, ".%03lldZ", frac);
    return buf;
}

boost::json::value json_time(double unix_s) {
    if (!(unix_s > 0)) return nullptr;
    return boost::json::string(rfc3339(unix_s));
}

boost::json::value json_error(std::string_view cls, std::string_view code, int http_status,
                              std::string_view message) {
    return boost::json::object{
        {"class", cls},
        {"code", string_or_null(code)},
        {"http_status", http_status > 0 ? boost::json::value(http_status) : nullptr},
        {"message", message}};
}

boost::json::value json_error(const jobs::Error& e) {
    return json_error(jobs::to_string(e.cls), e.code, e.http_status, e.message);
}

boost::json::value json_error(const std::optional<jobs::Error>& e) {
    return e ? json_error(*e) : boost::json::value(nullptr);
}

boost::json::object json_job_head(const jobs::JobRow& j) {
    return boost::json::object{{"id", j.id},
                               {"key", string_or_null(j.key)},
                               {"batch", string_or_null(j.batch)},
                               {"state", j.state},
                               {"prompt", j.prompt},
                               {"model", j.model},
                               {"provider", string_or_null(j.provider)},
                               {"n", j.n}};
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid());
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) throw std::runtime_error("cannot write '" + tmp_ + "': " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        out_.close();
        std::remove(tmp_.c_str());
    }
}

void AtomicFile::commit() {
    out_.flush();
    if (!out_) throw std::runtime_error("cannot write '" + tmp_ + "'");
    out_.close();
    // fsync before rename: after a crash the file is either old or complete.
    int fd = ::open(tmp_.c_str(), O_RDONLY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
        throw std::runtime_error("cannot rename '" + tmp_ + "' to '" + path_ +
                                 "': " + std::strerror(errno));
    committed_ = true;
}

}  // namespace imgbatch::daemon::cli
