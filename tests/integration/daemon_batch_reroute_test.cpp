// A vendor-batch line retried as a direct call (batch_retry_direct) through the real binary
// against `imgbatch sim`: the job then belongs to the direct provider in the database,
// `jobs`, `show`, `export` and the report, and every image is attributed to the provider that
// made it. The images the sim served are counted against the images kept.
#include <string>
#include <vector>

#include "tests/integration/batch_checks.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// An OpenAI provider in batch mode whose retries go to "direct", and that direct provider.
std::vector<std::string> rerouting_providers(const Sim& sim) {
    return {openai_provider(sim, "vb",
                            R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2, )"
                            R"("batch_retry_direct": "direct")"),
            openai_provider(sim, "direct")};
}

// The value of member name in the first JSON object of text that has "key":"KEY" (compact
// JSON, as the CLI writes it), up to the next comma or brace.
std::string member_of(const std::string& text, const std::string& key, const std::string& name) {
    auto at = text.find("\"key\":\"" + key + "\"");
    if (at == std::string::npos) return "<no " + key + ">";
    auto obj = text.rfind('{', at);
    auto end = text.find('\n', at);
    const std::string object = text.substr(obj, end == std::string::npos ? end : end - obj);
    auto m = object.find("\"" + name + "\":");
    if (m == std::string::npos) return "<no " + name + ">";
    m += name.size() + 3;
    return object.substr(m, object.find_first_of(",}", m) - m);
}

// Lines of text that contain every one of parts.
int lines_with(const std::string& text, const std::vector<std::string>& parts) {
    int n = 0;
    std::size_t at = 0;
    while (at < text.size()) {
        auto end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(at, end - at);
        bool all = true;
        for (const auto& p : parts) all = all && has(line, p);
        n += all ? 1 : 0;
        at = end + 1;
    }
    return n;
}

}  // namespace

TEST_CASE("batch reroute: a job retried as a direct call belongs to the direct provider") {
    Sim sim({"--batch-ms", "100"});
    DaemonEnv env(rerouting_providers(sim), fast_retry(2, 2));
    // ok: made in the vendor batch. moved: its line fails, the retry is a direct call.
    // dead: fails in the batch and again as a direct call. half: the batch line answers one
    // image of two, the top-up is a direct call.
    env.enqueue(job_line("ok", "fine", "gpt-image-2", 1) +
                job_line("moved", "flaky #fail=500*1", "gpt-image-2", 1) +
                job_line("dead", "broken #fail=500", "gpt-image-2", 1) +
                job_line("half", "two of them #fail=partial*1", "gpt-image-2", 2));
    auto r = env.run_until_idle();
    INFO(DaemonEnv::tail(r.err));
    REQUIRE(env.job_state("ok") == "succeeded");
    REQUIRE(env.job_state("moved") == "succeeded");
    REQUIRE(env.job_state("dead") == "failed");
    REQUIRE(env.job_state("half") == "succeeded");
    env.check_outputs("half", 2);
    CHECK(env.rows("SELECT provider FROM attempts WHERE job_id = " + env.job_id("moved") +
                   " ORDER BY id") == std::vector<std::string>{"vb", "direct"});
    CHECK(env.rows("SELECT provider FROM attempts WHERE job_id = " + env.job_id("half") +
                   " AND images > 0 ORDER BY id") == std::vector<std::string>{"vb", "direct"});

    // The database: the job's provider is the one that serves it now, like its request's.
    CHECK(env.rows("SELECT key || '|' || provider FROM jobs ORDER BY id") ==
          std::vector<std::string>{"ok|vb", "moved|direct", "dead|direct", "half|direct"});
    CHECK(env.number("SELECT count(*) FROM requests r JOIN jobs j ON j.id = r.job_id "
                     "WHERE r.provider <> j.provider") == 0);

    // jobs and show.
    RunResult jobs = env.cli({"jobs", "--json"});
    REQUIRE(jobs.code == 0);
    CHECK(member_of(jobs.out, "ok", "provider") == "\"vb\"");
    CHECK(member_of(jobs.out, "moved", "provider") == "\"direct\"");
    CHECK(member_of(jobs.out, "dead", "provider") == "\"direct\"");
    RunResult show = env.cli({"show", env.job_id("moved")});
    REQUIRE(show.code == 0);
    CHECK(lines_with(show.out, {"provider:", "direct"}) == 1);

    // export: the job rows name the direct provider; each image row the provider of the
    // attempt that made it.
    RunResult ex = env.cli({"export", "--format", "jsonl"});
    REQUIRE(ex.code == 0);
    CHECK(member_of(ex.out, "ok", "provider") == "\"vb\"");
    CHECK(member_of(ex.out, "moved", "provider") == "\"direct\"");
    CHECK(member_of(ex.out, "dead", "provider") == "\"direct\"");
    RunResult images = env.cli({"export", "--per-image", "--format", "jsonl"});
    REQUIRE(images.code == 0);
    CHECK(lines_with(images.out, {R"("key":"moved")", R"("provider":"direct")"}) == 1);
    CHECK(lines_with(images.out, {R"("key":"ok")", R"("provider":"vb")"}) == 1);
    CHECK(lines_with(images.out, {R"("key":"half")", R"("idx":0)", R"("provider":"vb")"}) == 1);
    CHECK(lines_with(images.out, {R"("key":"half")", R"("idx":1)", R"("provider":"direct")"}) == 1);

    // The report: the failure names the direct provider; images per provider.
    const std::string report = env.dir.file("report");
    RunResult rep = env.cli({"report", "-o", report});
    INFO(rep.err);
    REQUIRE(rep.code == 0);
    const std::string page = read_file(report + "/index.html");
    auto failure = page.find(R"("failures":[)");
    REQUIRE(failure != std::string::npos);
    CHECK(member_of(page.substr(failure), "dead", "provider") == "\"direct\"");
    CHECK(has(page, R"("providers":{"direct":2,"vb":2})"));

    check_batch_kept(env, sim);
}
