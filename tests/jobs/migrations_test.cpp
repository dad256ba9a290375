// The embedded schema migrations (schema/NNN_*.sql): the number in a file's name is the
// PRAGMA user_version it brings, and migrations apply by position, so the two must agree.
#include <doctest/doctest.h>

#include <cctype>
#include <string>

#include "jobs/migrations.hpp"
#include "jobs/store.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::jobs;
using namespace imgbatch::jobs::testing;

namespace {

// "007" for position 6 (user_version 7).
std::string three_digits(std::size_t version) {
    std::string s = std::to_string(version);
    return std::string(s.size() < 3 ? 3 - s.size() : 0, '0') + s;
}

}  // namespace

TEST_CASE("migrations: each file is numbered by the user_version it brings, without gaps") {
    const auto& all = migrations();
    REQUIRE(!all.empty());
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& name = all[i].name;
        CAPTURE(name);
        REQUIRE(name.size() > 4);
        CHECK(std::isdigit(static_cast<unsigned char>(name[0])));
        CHECK(std::isdigit(static_cast<unsigned char>(name[1])));
        CHECK(std::isdigit(static_cast<unsigned char>(name[2])));
        CHECK(name[3] == '_');
        CHECK(name.substr(0, 3) == three_digits(i + 1));
        CHECK(name.size() > 8);
        CHECK(name.substr(name.size() - 4) == ".sql");
        CHECK(!all[i].sql.empty());
    }
}

TEST_CASE("migrations: a new database reports the number of the last migration file") {
    TempDir dir;
    Store s(dir.file("m.db"));
    const auto& last = migrations().back().name;
    CHECK(three_digits(static_cast<std::size_t>(s.schema_version())) == last.substr(0, 3));
}
