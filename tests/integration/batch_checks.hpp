#pragma once
// Checks shared by the batch-mode integration tests (OpenAI and Gemini vendor batches).
#include <string>

#include "tests/integration/daemon_fixture.hpp"

namespace imgbatch::test {

// A counter of one section of the sim's /sim/stats ("batches", "gemini_batches"); 0 if absent.
inline long long sim_section_stat(const Sim& sim, const std::string& section,
                                  const std::string& name) {
    const std::string s = sim.stats_json();
    auto at = s.find("\"" + section + "\":");
    if (at == std::string::npos) return 0;
    auto k = s.find("\"" + name + "\":", at);
    if (k == std::string::npos) return 0;
    return std::stoll(s.substr(k + name.size() + 3));
}

// Every image the sim served is a file recorded once; no request was in two open vendor
// batches at once, and none is left running.
inline void check_batch_kept(const DaemonEnv& env, const Sim& sim) {
    CHECK(env.number("SELECT count(*) FROM outputs") == sim.stat("images"));
    CHECK(env.number("SELECT count(DISTINCT path) FROM outputs") ==
          env.number("SELECT count(*) FROM outputs"));
    CHECK(env.number("SELECT count(*) FROM requests WHERE state = 'running'") == 0);
    CHECK(env.number("SELECT count(*) FROM vendor_batches WHERE state NOT IN ('done', "
                     "'abandoned')") == 0);
    // One attempt row per (request, attempt): nothing recorded twice.
    CHECK(env.number("SELECT count(*) FROM (SELECT request_id, attempt_no FROM attempts "
                     "GROUP BY 1, 2 HAVING count(*) > 1)") == 0);
    // A request is in a vendor batch once per attempt.
    CHECK(env.number("SELECT count(*) FROM (SELECT request_id, attempt_no FROM "
                     "vendor_batch_requests GROUP BY 1, 2 HAVING count(*) > 1)") == 0);
}

}  // namespace imgbatch::test
