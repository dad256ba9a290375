#include "daemon/net/http.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

using namespace imgbatch::daemon;

namespace {
// parse_url's result as "scheme|host|port|target", or "(invalid)".
std::string parsed(std::string_view text) {
    Url u;
    if (!parse_url(text, u)) return "(invalid)";
    return u.scheme + "|" + u.host + "|" + u.port + "|" + u.target;
}
}  // namespace

TEST_CASE("parse_url: the parts of http(s) URLs") {
    CHECK(parsed("https://api.openai.com/v1/images") == "https|api.openai.com|443|/v1/images");
    CHECK(parsed("HTTP://relay.test") == "http|relay.test|80|/");
    CHECK(parsed("http://relay.test?x=1") == "http|relay.test|80|/?x=1");
    CHECK(parsed("http://127.0.0.1:8089/v1") == "http|127.0.0.1|8089|/v1");
    CHECK(parsed("http://[::1]:8080/a") == "http|::1|8080|/a");
    CHECK(parsed("http://[fe80::1%25eth0]/") == "http|fe80::1%25eth0|80|/");
    CHECK(parsed("http://user:p%40ss@proxy.test:3128") == "http|proxy.test|3128|/");
    CHECK(parsed("http://relay.test:/x") == "http|relay.test|80|/x");
    CHECK(parsed("https://cdn.test/a.png#frag") == "https|cdn.test|443|/a.png");
    CHECK(parsed("https://cdn.test/a.png?sig=a%2Fb&x=[1]") ==
          "https|cdn.test|443|/a.png?sig=a%2Fb&x=[1]");
    CHECK(parsed("http://host_1.example-2.test:65535/") == "http|host_1.example-2.test|65535|/");
    // Non-ASCII bytes in the path are percent-encoded, as browsers send them.
    CHECK(parsed("https://cdn.test/\xe7\x8c\xab.png") == "https|cdn.test|443|/%E7%8C%AB.png");
}

TEST_CASE("parse_url refuses what would corrupt a request line or a Host header") {
    for (std::string bad : {"ftp://x.test/",
                            "x.test/a",
                            "http://",
                            "http:///a",
                            "http://:80/",
                            "http://a b.test/",
                            "http://a.test/a b.png",
                            "http://a.test/a\r\nX-Injected: 1",
                            "http://a.test\r\nX-Injected: 1/",
                            "http://a.test/\x01",
                            "http://a.test/\x7f",
                            "http://a.test/a\tb",
                            "http://a.test\n/",
                            " http://a.test/",
                            "http://a.test/ ",
                            "http://a.test:0/",
                            "http://a.test:65536/",
                            "http://a.test:70000/",
                            "http://a.test:99999999999999999999/",
                            "http://a.test:8o/",
                            "http://a.test:-1/",
                            "http://[::1/",
                            "http://[::1]x/",
                            "http://[]/",
                            "http://[g::1]/",
                            "http://\xe7\x8c\xab.test/",
                            "http://a\"b.test/",
                            "http://a<b.test/",
                            "http://a\\b.test/",
                            "http://a{b}.test/"}) {
        CAPTURE(bad);
        CHECK(parsed(bad) == "(invalid)");
    }
    CHECK(parsed(std::string("http://a.test/\0x", 16)) == "(invalid)");
}

TEST_CASE("parse_http_date: the three forms, any year, no overflow") {
    const auto now = std::chrono::system_clock::from_time_t(1735689600);  // 2025-01-01
    CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now) == 784111777);
    CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now) == 784111777);
    CHECK(parse_http_date("Sun Nov  6 08:49:37 1994", now) == 784111777);
    CHECK(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", now) == 0);
    CHECK(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT", now) == 253402300799);
    CHECK(parse_http_date("Sat, 01 Jan 0000 00:00:00 GMT", now) == -62167219200);
    CHECK(parse_http_date("Wednesday, 01-Jan-75 00:00:00 GMT", now) == 3313526400);  // 2075
    CHECK(parse_http_date("Thursday, 01-Jan-76 00:00:00 GMT", now) == 189302400);    // 1976
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT ", now));
    CHECK_FALSE(parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT", now));
    CHECK_FALSE(parse_http_date("", now));
}
