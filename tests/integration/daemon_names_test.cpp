// output_name templates and sidecars through the daemon: every image kept under its
// templated name with its sidecar, every image the sim served kept exactly once.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <set>
#include <string>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;

TEST_CASE("output_name and sidecar: templated names, one sidecar per image, nothing lost") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)}, fast_retry(), 10,
                  R"("sidecar": true, "output_name": "{batch}/{date}/{prompt_slug}")");
    // The same prompt for several jobs, with and without keys, and a retried call.
    env.enqueue(job_line("a", "A red fox", "gpt-image-2", 3, R"("size": "1024x1024")") +
                    job_line("b", "A red fox", "gpt-image-2", 2) +
                    R"({"prompt": "A red fox", "model": "gpt-image-2", "n": 2})" + "\n" +
                    job_line("c", "a flaky fox #fail=503*1", "gpt-image-2", 1),
                "night");
    env.run_until_idle();
    CHECK(env.value("SELECT group_concat(state) FROM jobs") ==
          "succeeded,succeeded,succeeded,succeeded");

    auto rows = env.rows("SELECT o.job_id, o.idx, o.path, o.sha256 FROM outputs o ORDER BY o.id");
    REQUIRE(rows.size() == 8);
    CHECK(sim.stat("images") == 8);  // served = kept
    std::set<std::string> paths;
    std::size_t files = 0;
    for (const auto& row : rows) {
        auto f = DaemonEnv::split(row);
        INFO(row);
        const std::string& path = f[2];
        paths.insert(path);
        fs::path p(path);
        CHECK(p.parent_path().parent_path() == fs::path(env.out) / "night");
        CHECK(p.parent_path().filename().string().size() == 10);  // YYYY-MM-DD
        std::string tail = "-" + f[0] + "-" + f[1] + ".png";
        CHECK(p.filename().string().ends_with(tail));
        REQUIRE(fs::exists(path));
        CHECK(sha256_file(path) == f[3]);
        REQUIRE(fs::exists(path + ".json"));
        auto side = boost::json::parse(read_file(path + ".json")).as_object();
        CHECK(side.at("sha256") == f[3].c_str());
        CHECK(side.at("job").to_number<long long>() == std::stoll(f[0]));
        CHECK(side.at("index").to_number<long long>() == std::stoll(f[1]));
        CHECK(side.at("model") == "gpt-image-2");
        CHECK(side.at("batch") == "night");
    }
    CHECK(paths.size() == 8);
    for (const auto& e : fs::recursive_directory_iterator(env.out))
        if (e.is_regular_file() && e.path().string().find(".imgbatch-tmp") == std::string::npos)
            ++files;
    CHECK(files == 16);  // 8 images + 8 sidecars, nothing else
    auto a0 = env.value("SELECT path FROM outputs WHERE idx = 0 AND job_id = " + env.job_id("a"));
    CHECK(fs::path(a0).filename().string() == "a-red-fox-" + env.job_id("a") + "-0.png");
    auto side = boost::json::parse(read_file(a0 + ".json")).as_object();
    CHECK(side.at("prompt") == "A red fox");
    CHECK(side.at("key") == "a");
    CHECK(side.at("params").at("size") == "1024x1024");
}

TEST_CASE("output_name: a template that could leave output_dir is a configuration error") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)}, fast_retry(), 10, R"("output_name": "../{key}")");
    auto r = env.cli({"run", "--until-idle"});
    CHECK(r.code == 78);
    CHECK(r.err.find("output_name") != std::string::npos);
}
