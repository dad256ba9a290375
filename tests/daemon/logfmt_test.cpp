#include "daemon/logfmt.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>

using imgbatch::daemon::logfmt_value;
using imgbatch::daemon::q;

TEST_CASE("logfmt: plain tokens stay bare, anything else is quoted and escaped") {
    CHECK(logfmt_value("gpt-image-2") == "gpt-image-2");
    CHECK(logfmt_value("") == "\"\"");
    CHECK(logfmt_value("a b") == "\"a b\"");
    CHECK(logfmt_value("say \"hi\"") == "\"say \\\"hi\\\"\"");
    CHECK(logfmt_value("k=v") == "\"k=v\"");
    CHECK(logfmt_value("a\\b") == "\"a\\\\b\"");
    CHECK(logfmt_value("line\nerror event=x") == "\"line\\nerror event=x\"");
    CHECK(logfmt_value("cr\rtab\t") == "\"cr\\rtab\\t\"");
    CHECK(logfmt_value(std::string("nul\0bel\x07", 8)) == "\"nul\\x00bel\\x07\"");
    CHECK(logfmt_value("猫") == "猫");  // UTF-8 letters need no quotes
    CHECK(fmt::format("model={} n={}", q("x y"), 2) == "model=\"x y\" n=2");
}

namespace {

// Formats one message of level at the style's pattern.
std::string format_line(const imgbatch::daemon::LogStyle& style, spdlog::level::level_enum level,
                        const std::string& text) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
    spdlog::logger logger("t", sink);
    logger.set_level(spdlog::level::trace);
    imgbatch::daemon::install_log_pattern(logger, imgbatch::daemon::log_pattern(style));
    logger.log(level, text);
    return out.str();
}

}  // namespace

TEST_CASE("logfmt: under the journal each line carries its syslog priority and no time") {
    imgbatch::daemon::LogStyle journal{true, false};
    CHECK(format_line(journal, spdlog::level::err, "event=x") == "<3>event=x\n");
    CHECK(format_line(journal, spdlog::level::critical, "event=x") == "<3>event=x\n");
    CHECK(format_line(journal, spdlog::level::warn, "event=x") == "<4>event=x\n");
    CHECK(format_line(journal, spdlog::level::info, "event=x") == "<6>event=x\n");
    CHECK(format_line(journal, spdlog::level::debug, "event=x") == "<7>event=x\n");
    // A line break in a message still cannot start a line of its own priority.
    CHECK(format_line(journal, spdlog::level::info, "a\n<3>b") == "<6>a\\n<3>b\n");
}

TEST_CASE("logfmt: elsewhere lines start with an RFC 3339 time with its zone offset") {
    imgbatch::daemon::LogStyle plain{false, false};
    std::string line = format_line(plain, spdlog::level::warn, "event=x");
    CAPTURE(line);
    CHECK(std::regex_match(
        line, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}"
                         "[+-][0-9]{2}:[0-9]{2} warning event=x\n")));
    CHECK(line.find('\x1b') == std::string::npos);
}

TEST_CASE("logfmt: the journal is recognised by JOURNAL_STREAM naming stderr's own stream") {
    using imgbatch::daemon::log_style;
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    int fd = fileno(f);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
    CHECK(log_style(mine.c_str(), nullptr, fd).journal);
    CHECK_FALSE(log_style(mine.c_str(), nullptr, fd).color);
    // Inherited by a process whose stderr goes elsewhere: not the journal.
    CHECK_FALSE(log_style(other.c_str(), nullptr, fd).journal);
    CHECK_FALSE(log_style("garbage", nullptr, fd).journal);
    CHECK_FALSE(log_style(nullptr, nullptr, fd).journal);
    // A file is no terminal: no colour, whatever NO_COLOR says.
    CHECK_FALSE(log_style(nullptr, nullptr, fd).color);
    std::fclose(f);
}

TEST_CASE("logfmt: NO_COLOR turns colour off on a terminal") {
    using imgbatch::daemon::log_style;
    int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    int tty = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(tty >= 0);
    CHECK(log_style(nullptr, nullptr, tty).color);
    CHECK(log_style(nullptr, "", tty).color);  // set but empty: ignored, as no-color.org says
    CHECK_FALSE(log_style(nullptr, "1", tty).color);
    ::close(tty);
    ::close(master);
}

TEST_CASE("logfmt: log_time is RFC 3339 with the zone offset") {
    setenv("TZ", "UTC", 1);
    tzset();
    CHECK(imgbatch::daemon::log_time(1'800'000'000.25) == "2027-01-15T08:00:00.250+00:00");
    setenv("TZ", "America/New_York", 1);  // EST: -05:00 in January
    tzset();
    CHECK(imgbatch::daemon::log_time(1'800'000'000.25) == "2027-01-15T03:00:00.250-05:00");
    unsetenv("TZ");
    tzset();
}

TEST_CASE("logfmt: prefix_lines puts the priority before every line") {
    std::ostringstream out;
    auto buf = imgbatch::daemon::prefix_lines(out.rdbuf(), "<3>");
    std::ostream err(buf.get());
    err << "imgbatch: bad config\nsecond";
    err << " line\n" << std::flush;
    CHECK(out.str() == "<3>imgbatch: bad config\n<3>second line\n");
}
