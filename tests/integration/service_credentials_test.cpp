// Keys as the shipped unit passes them (README "Running under systemd"): the unit loads the
// directory /etc/imgbatch/credentials with LoadCredential=imgbatch:..., so a provider's key
// reaches the daemon as $CREDENTIALS_DIRECTORY/imgbatch_<provider>; the service's example
// configuration names no key source and reads it from there.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;

TEST_CASE("credentials: the unit's directory form reaches the provider; none is no key") {
    Sim sim({"--api-key", "sk-from-credstore"});
    DaemonEnv env({openai_provider(sim, "openai")});  // no api_key_env, no api_key_file
    env.enqueue(job_line("fox", "a fox", "gpt-image-2", 2));
    TempDir creds;
    write_file(creds.file("imgbatch_openai"), "sk-from-credstore\n");

    RunResult r = run({"--config", env.config, "run", "--until-idle"}, "",
                      {"CREDENTIALS_DIRECTORY=" + creds.path()}, env.dir.path());
    INFO("run stderr: " << DaemonEnv::tail(r.err));
    REQUIRE(r.code == 0);
    CHECK(env.job_state("fox") == "succeeded");
    // Money path: what the sim served is what was kept.
    CHECK(sim.stat("images") == 2);
    CHECK(env.number("SELECT count(*) FROM outputs") == 2);
    int files = 0;
    for (const auto& f : fs::recursive_directory_iterator(env.out)) files += f.is_regular_file();
    CHECK(files == 2);
    CHECK(r.err.find("sk-from-credstore") == std::string::npos);  // never logged

    // Without the credential no key is sent: the provider answers 401 and is paused, nothing
    // is paid for.
    sim.reset();
    env.enqueue(job_line("owl", "an owl", "gpt-image-2", 1), "b2");
    TempDir empty;
    RunResult none = run({"--config", env.config, "run", "--until-idle"}, "",
                         {"CREDENTIALS_DIRECTORY=" + empty.path()}, env.dir.path());
    INFO("run stderr: " << DaemonEnv::tail(none.err));
    CHECK(none.code == 0);
    CHECK(env.job_state("owl") == "queued");
    CHECK(env.value("SELECT paused FROM provider_state WHERE name = 'openai'") == "1");
    CHECK(sim.stat("images") == 0);
}
