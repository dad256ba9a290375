#include <doctest/doctest.h>

#include <string>

#include "jobs/error.hpp"
#include "jobs/state.hpp"

using namespace imgbatch::jobs;

TEST_CASE("every error class round-trips through its name") {
    const ErrorClass all[] = {
        ErrorClass::timeout,         ErrorClass::network,    ErrorClass::rate_limited,
        ErrorClass::server,          ErrorClass::moderation, ErrorClass::partial,
        ErrorClass::invalid_request, ErrorClass::auth,       ErrorClass::quota,
        ErrorClass::bad_response,    ErrorClass::local};
    for (auto c : all) {
        auto name = to_string(c);
        CHECK(name != "unknown");
        auto back = error_class_from(name);
        REQUIRE(back.has_value());
        CHECK(*back == c);
    }
    CHECK(to_string(ErrorClass::rate_limited) == "rate_limited");
    CHECK(to_string(ErrorClass::invalid_request) == "invalid_request");
    CHECK(to_string(ErrorClass::bad_response) == "bad_response");
    CHECK_FALSE(error_class_from("ratelimited").has_value());
    CHECK_FALSE(error_class_from("").has_value());
    CHECK_FALSE(error_class_from("Timeout").has_value());
}

TEST_CASE("every job state round-trips through its name, and finality is as documented") {
    struct Row {
        JobState s;
        const char* name;
        bool final;
    };
    const Row rows[] = {
        {JobState::pending, "pending", false},    {JobState::queued, "queued", false},
        {JobState::running, "running", false},    {JobState::succeeded, "succeeded", true},
        {JobState::failed, "failed", true},       {JobState::blocked, "blocked", true},
        {JobState::cancelled, "cancelled", true}, {JobState::rejected, "rejected", true},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        CHECK(to_string(r.s) == r.name);
        auto back = job_state_from(r.name);
        REQUIRE(back.has_value());
        CHECK(*back == r.s);
        CHECK(is_final(r.s) == r.final);
    }
    CHECK_FALSE(job_state_from("done").has_value());
    CHECK_FALSE(job_state_from("QUEUED").has_value());
}

TEST_CASE("job_state_names lists every state once, each parsing back") {
    auto names = job_state_names();
    CHECK(names == std::vector<std::string>{"pending", "queued", "running", "succeeded", "failed",
                                            "blocked", "cancelled", "rejected"});
    for (const auto& n : names) CHECK(job_state_from(n).has_value());
}
