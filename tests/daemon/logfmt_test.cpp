#include "daemon/logfmt.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

using imgbatch::daemon::logfmt_value;
using imgbatch::daemon::q;

TEST_CASE("logfmt: plain tokens stay bare, anything else is quoted and escaped") {
    CHECK(logfmt_value("gpt-image-1") == "gpt-image-1");
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
