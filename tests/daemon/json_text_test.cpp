// JSON text with plain decimal numbers (status --json, show --json, export, sidecars): money
// and other doubles as 0.02454, not Boost's 2.454E-2, still JSON numbers.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/json_text.hpp"

using namespace imgbatch::daemon;
namespace json = boost::json;

TEST_CASE("json_text: doubles print as plain decimals, the rest as Boost prints it") {
    const json::object o{{"cost_usd", 0.02454},
                         {"one", 1.0},
                         {"neg", -0.5},
                         {"tiny", 0.000000001},
                         {"time", 1795435200.125},
                         {"count", 42},
                         {"zero", 0.0},
                         {"null", nullptr},
                         {"text", "2.454E-2 \"1E0\" \\ -3.5e1"},
                         {"list", json::array{0.1, 2.5E-3, -7}}};
    // Boost's own form, which this replaces.
    CHECK(json::serialize(json::value(0.02454)) == "2.454E-2");
    CHECK(json_text(o) ==
          R"({"cost_usd":0.02454,"one":1,"neg":-0.5,"tiny":0.000000001,"time":1795435200.125,)"
          R"("count":42,"zero":0,"null":null,"text":"2.454E-2 \"1E0\" \\ -3.5e1",)"
          R"("list":[0.1,0.0025,-7]})");
}

TEST_CASE("json_text: the text reads back as the same values") {
    const json::array a{0.1 + 0.2, 1.0 / 3, 123456.789, 5e-12, 1e20, -0.0};
    const auto back = json::parse(json_text(a)).as_array();
    REQUIRE(back.size() == a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double want = a[i].as_double();
        const double got = back[i].is_double()  ? back[i].as_double()
                           : back[i].is_int64() ? static_cast<double>(back[i].as_int64())
                                                : static_cast<double>(back[i].as_uint64());
        CHECK(got == want);
    }
    // Outside 1e-12 .. 1e17 Boost's exponent form stays (no 300-digit numbers).
    CHECK(json_text(json::value(1e300)) == json::serialize(json::value(1e300)));
    CHECK(json_text(json::value(0.30000000000000004)) == "0.30000000000000004");
}
