// What the simulator's two batch APIs share (sim/batch_book.hpp).
#include <doctest/doctest.h>

#include "daemon/sim/batch_book.hpp"

using namespace imgbatch::daemon;
namespace sb = imgbatch::daemon::sim_batch;

TEST_CASE("a batch is queued, then running, then due; a cancel makes it due at once") {
    const std::int64_t now = sb::steady_ms();
    CHECK(sb::phase(now, 3'600'000, false) == sb::Phase::queued);
    CHECK(sb::phase(now - 1'000'000, 3'600'000, false) == sb::Phase::running);
    CHECK(sb::phase(now - 3'600'000, 3'600'000, false) == sb::Phase::due);
    CHECK(sb::phase(now, 3'600'000, true) == sb::Phase::due);
    CHECK(sb::phase(now, 0, false) == sb::Phase::due);
}

TEST_CASE("a cancel keeps the lines of its share of the batch's time") {
    CHECK(sb::lines_to_run(10, false, 0, -1, 1000) == 10);
    CHECK(sb::lines_to_run(10, true, 0, 500, 1000) == 5);
    CHECK(sb::lines_to_run(10, true, 0, 5000, 1000) == 10);
    CHECK(sb::lines_to_run(10, true, 100, 50, 1000) == 0);
    CHECK(sb::lines_to_run(10, true, 0, 500, 0) == 10);
}

TEST_CASE("JSONL lines skip empty lines; tokens stand alone or at a quote") {
    auto lines = sb::jsonl_lines("a\n\nb\nc");
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "a");
    CHECK(lines[2] == "c");
    CHECK(sb::jsonl_lines("").empty());
    CHECK(sb::has_token(R"({"prompt":"a fox #expire"})", "#expire"));
    CHECK(sb::has_token("#expire now", "#expire"));
    CHECK_FALSE(sb::has_token("#expired", "#expire"));
    CHECK_FALSE(sb::has_token("x#expire", "#expire"));
}

TEST_CASE("a create's answer is lost once per input; an expiring line expires once") {
    sb::BatchBook book;
    CHECK_FALSE(book.create(false, "file-1"));
    CHECK(book.create(true, "file-1"));
    CHECK_FALSE(book.create(true, "file-1"));
    CHECK(book.expires("line"));
    CHECK_FALSE(book.expires("line"));
    ++book.lines;
    auto s = book.stats();
    CHECK(s.at("created").as_uint64() == 3);
    CHECK(s.at("creates_lost").as_uint64() == 1);
    CHECK(s.at("lines").as_uint64() == 1);
    CHECK(sb::held().action == SimAnswer::Action::hold);
    auto f = sb::file_answer("bytes");
    CHECK(f.status == 200);
    CHECK(f.body == "bytes");
    CHECK(find_header(f.headers, "Content-Type") == "application/octet-stream");
}
