// What the vendor batch adapters share (batch_lines.hpp), without a socket.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include <boost/json/parse.hpp>

#include "daemon/providers/batch_lines.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::Error;
namespace bl = imgbatch::daemon::batch_lines;
namespace json = boost::json;

namespace {

batch_types::Batch read_id(const json::object& o) {
    batch_types::Batch b;
    b.id = bl::str(o, "id");
    b.status = bl::str(o, "status");
    return b;
}

HttpResponse answer(int status, std::string body) {
    return {status, {{"Content-Type", "application/json"}}, std::move(body)};
}

}  // namespace

TEST_CASE("a GET carries no Content-Type; a download accepts any type") {
    Headers h{{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    auto get = bl::request("GET", "http://h/x", h);
    CHECK(get.method == "GET");
    CHECK(get.url == "http://h/x");
    CHECK(find_header(get.headers, "Content-Type").empty());
    bl::accept_any(get);
    CHECK(find_header(get.headers, "Accept") == "*/*");
    auto post = bl::request("POST", "http://h/x", h);
    CHECK(find_header(post.headers, "Content-Type") == "application/json");
}

TEST_CASE("numbers and strings are read leniently; digits only when asked") {
    auto o = json::parse(R"({"i":5,"u":18446744073709551615,"d":2.9,"s":"42","x":"4x","t":"a",
                             "o":{"k":1}})")
                 .as_object();
    CHECK(bl::num(o, "i") == 5);
    CHECK(bl::num(o, "d") == 2);
    CHECK(bl::num(o, "s") == 0);
    CHECK(bl::num(o, "s", bl::Digits::accept) == 42);
    CHECK(bl::num(o, "x", bl::Digits::accept) == 0);
    CHECK(bl::num(o, "missing") == 0);
    CHECK(bl::str(o, "t") == "a");
    CHECK(bl::str(o, "i").empty());
    REQUIRE(bl::object_at(o, "o") != nullptr);
    CHECK(bl::object_at(o, "t") == nullptr);
}

TEST_CASE("a number out of the int64 range reads as 0, never as a wrapped value") {
    auto o = json::parse(R"({"big":"99999999999999999999","max":"9223372036854775807",
                             "over":"9223372036854775808","huge":1e300,"neg":-1e300,
                             "u":18446744073709551615,"empty":""})")
                 .as_object();
    CHECK(bl::num(o, "big", bl::Digits::accept) == 0);
    CHECK(bl::num(o, "max", bl::Digits::accept) == std::numeric_limits<std::int64_t>::max());
    CHECK(bl::num(o, "over", bl::Digits::accept) == 0);
    CHECK(bl::num(o, "huge") == 0);
    CHECK(bl::num(o, "neg") == 0);
    CHECK(bl::num(o, "u") == 0);
    CHECK(bl::num(o, "empty", bl::Digits::accept) == 0);
}

TEST_CASE("a batch answer: an error status, a body that is no object, a batch without id") {
    std::optional<Error> error;
    auto b =
        bl::parse_batch(answer(200, R"({"id":"b1","status":"done"})"), read_id, "no id", error);
    REQUIRE(b);
    CHECK(b->id == "b1");
    CHECK_FALSE(error);

    CHECK_FALSE(bl::parse_batch(answer(200, "[1]"), read_id, "no id", error));
    REQUIRE(error);
    CHECK(error->code == "not_json");

    error.reset();
    CHECK_FALSE(bl::parse_batch(answer(200, R"({"id":"b1"})"), read_id, "no id", error));
    REQUIRE(error);
    CHECK(error->code == "no_id");
    CHECK(error->message == "no id");

    error.reset();
    CHECK_FALSE(
        bl::parse_batch(answer(503, R"({"error":{"message":"busy"}})"), read_id, "", error));
    REQUIRE(error);
    CHECK(error->http_status == 503);
}

TEST_CASE("a page: has_more from its key, or from a cursor being given") {
    std::optional<Error> error;
    auto p = bl::parse_page(answer(200, R"({"data":[{"id":"a"},3,{"id":"b"}],"has_more":true,
                                           "last_id":"b"})"),
                            "data", "last_id", "has_more", read_id, error);
    REQUIRE(p);
    REQUIRE(p->batches.size() == 2);
    CHECK(p->batches[1].id == "b");
    CHECK(p->has_more);
    CHECK(p->last_id == "b");

    p = bl::parse_page(answer(200, R"({"operations":[]})"), "operations", "next", "", read_id,
                       error);
    REQUIRE(p);
    CHECK_FALSE(p->has_more);
    p = bl::parse_page(answer(200, R"({"operations":[],"next":"2"})"), "operations", "next", "",
                       read_id, error);
    REQUIRE(p);
    CHECK(p->has_more);
    CHECK(p->last_id == "2");
}

TEST_CASE("a result line is a JSON object, else why says so") {
    std::string why;
    CHECK_FALSE(bl::line_object("not json", &why));
    CHECK(why == "not a JSON object");
    auto o = bl::line_object(R"({"k":"v"})", &why);
    REQUIRE(o);
    CHECK(bl::str(*o, "k") == "v");
    auto r = bl::json_response(429, "{}");
    CHECK(r.status == 429);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.body == "{}");
}
