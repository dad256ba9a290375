#pragma once
// The schema migrations embedded from schema/*.sql (generated at build time).
#include <string>
#include <vector>

namespace imgbatch::jobs {

struct Migration {
    std::string name;  // e.g. "001_init.sql"; its number is the PRAGMA user_version it brings
    std::string sql;
};

// Every migration, in order. migrations()[i] brings the database to user_version i + 1.
const std::vector<Migration>& migrations();

}  // namespace imgbatch::jobs
