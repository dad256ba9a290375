// `enqueue --dry-run` and `--estimate`: the projected cost of a file by provider and model,
// with the assumptions made, as text and JSON; nothing is written. --estimate adds what the
// database already has queued.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace json = boost::json;

namespace {

// Providers on no server at all: estimates never call one.
DaemonEnv estimate_env() {
    return DaemonEnv(
        {provider_json("oa", "openai", "http://127.0.0.1:1/v1",
                       {"gpt-image-2", "gpt-image-2-2026-04-21"}),
         provider_json("relay", "openai-chat", "http://127.0.0.1:1/v1", {"sora_image"},
                       R"("prices": {"per_call": 0.04})"),
         provider_json("cheap", "openai", "http://127.0.0.1:1/v1", {"gpt-image-2-all"}),
         provider_json("oab", "openai", "http://127.0.0.1:1/v1", {"gpt-image-2"},
                       R"("mode": "batch")")});
}

const json::object& row(const json::object& estimate, const std::string& provider,
                        const std::string& model) {
    for (const auto& r : estimate.at("by_model").as_array())
        if (r.at("provider") == json::value(provider) && r.at("model") == json::value(model))
            return r.as_object();
    FAIL("no row " << provider << " " << model);
    throw std::logic_error("unreachable");
}

std::string assumptions(const json::object& r) {
    std::string s;
    for (const auto& a : r.at("assumptions").as_array()) s += std::string(a.as_string()) + "\n";
    return s;
}

}  // namespace

TEST_CASE("enqueue --dry-run prints the projected cost by provider and model, writes nothing") {
    auto env = estimate_env();
    const std::string high = "a fox in high quality";  // 21 bytes
    const std::string plain = "an owl";                // 6 bytes
    write_file(env.dir.file("jobs.jsonl"),
               job_line("h", high, "gpt-image-2", 2, R"("size": "1024x1024", "quality": "high")") +
                   job_line("p", plain, "gpt-image-2-2026-04-21", 1) +
                   job_line("r", "a boat", "sora_image", 3) +
                   job_line("u", "a cat", "gpt-image-2-all", 1) +
                   job_line("b", high, "gpt-image-2", 1,
                            R"("provider": "oab", "size": "1024x1024", "quality": "high")"));
    auto r = env.cli({"enqueue", env.dir.file("jobs.jsonl"), "--dry-run", "--json"});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto o = json::parse(r.out).as_object();
    CHECK(o.at("dry_run") == json::value(true));
    CHECK(o.at("enqueued") == json::value(false));
    const auto& e = o.at("estimate").as_object();
    CHECK(e.at("prices_as_of") == json::value("2026-11-21"));
    CHECK(e.at("by_model").as_array().size() == 5);

    // gpt-image-2 high 1024x1024: 7024 output tokens at $30/1M an image; the prompt's bytes
    // as tokens (+16) at worst, a quarter of them (+6) typically, at $5/1M; n = 2 in one call.
    const auto& h = row(e, "oa", "gpt-image-2");
    CHECK(h.at("jobs").as_int64() == 1);
    CHECK(h.at("images").as_int64() == 2);
    CHECK(h.at("requests").as_int64() == 1);
    CHECK(h.at("worst_usd").to_number<double>() ==
          doctest::Approx(2 * ((21 + 16) * 5e-6 + 7024 * 30e-6)));
    CHECK(h.at("typical_usd").to_number<double>() ==
          doctest::Approx(2 * ((21 / 4.0 + 6) * 5e-6 + 7024 * 30e-6)));
    CHECK(h.at("basis") == json::value("tokens"));
    CHECK(has(assumptions(h), "catalog prices as of 2026-11-21"));
    CHECK_FALSE(has(assumptions(h), "quality auto"));
    CHECK_FALSE(has(assumptions(h), "size not given"));

    // gpt-image-2 (a dated snapshot, priced as its model) with nothing given: size and quality
    // left to the vendor, so the worst is high 1024x1024's 7024 tokens.
    const auto& p = row(e, "oa", "gpt-image-2-2026-04-21");
    CHECK(p.at("worst_usd").to_number<double>() == doctest::Approx((6 + 16) * 5e-6 + 7024 * 30e-6));
    CHECK(p.at("typical_usd").to_number<double>() < p.at("worst_usd").to_number<double>());
    CHECK(has(assumptions(p), "size not given (auto)"));
    CHECK(has(assumptions(p), "quality auto"));

    // A relay billing per call: 3 images in 3 calls (sora_image takes one image a call).
    const auto& rr = row(e, "relay", "sora_image");
    CHECK(rr.at("worst_usd").to_number<double>() == doctest::Approx(0.12));
    CHECK(has(assumptions(rr), "provider 'relay' prices (config)"));
    // No price anywhere: counted, not estimated.
    const auto& u = row(e, "cheap", "gpt-image-2-all");
    CHECK(u.at("unpriced_requests").as_int64() == 1);
    CHECK(u.at("worst_usd").to_number<double>() == 0);
    // Batch mode: half.
    const auto& b = row(e, "oab", "gpt-image-2");
    CHECK(b.at("worst_usd").to_number<double>() ==
          doctest::Approx(((21 + 16) * 5e-6 + 7024 * 30e-6) / 2));
    CHECK(has(assumptions(b), "batch mode: 50% off"));

    CHECK(e.at("unpriced_requests").as_int64() == 1);
    CHECK(e.at("worst_usd").to_number<double>() ==
          doctest::Approx(h.at("worst_usd").to_number<double>() +
                          p.at("worst_usd").to_number<double>() + 0.12 +
                          b.at("worst_usd").to_number<double>()));
    CHECK_FALSE(e.contains("queued"));

    // Nothing was written.
    CHECK((!std::filesystem::exists(env.db) || env.value("SELECT count(*) FROM jobs") == "0"));

    // The same as text: a table, the totals, the assumptions.
    r = env.cli({"enqueue", env.dir.file("jobs.jsonl"), "--dry-run"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "5 jobs would be enqueued"));
    CHECK(has(r.out, "estimate (USD):"));
    CHECK(has(r.out, "sora_image"));
    CHECK(has(r.out, "$0.1200"));
    CHECK(has(r.out, "1 requests without a price are not in the totals"));
    CHECK(has(r.out, "assumptions:\n"));
    CHECK(has(r.out, "oa gpt-image-2-2026-04-21: "));
}

TEST_CASE("enqueue --estimate adds what the database already has queued") {
    auto env = estimate_env();
    write_file(env.dir.file("first.jsonl"),
               job_line("a", "first", "sora_image", 2) + job_line("b", "second", "sora_image", 1));
    REQUIRE(env.cli({"enqueue", env.dir.file("first.jsonl"), "--batch", "one"}).code == 0);
    write_file(env.dir.file("next.jsonl"),
               job_line("a", "first", "sora_image", 2) + job_line("c", "third", "sora_image", 1));
    auto r = env.cli({"enqueue", env.dir.file("next.jsonl"), "--estimate", "--json"});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto o = json::parse(r.out).as_object();
    CHECK(o.at("dry_run") == json::value(true));
    CHECK(o.at("duplicates").as_int64() == 1);  // key a is stored already: not estimated
    const auto& e = o.at("estimate").as_object();
    CHECK(e.at("worst_usd").to_number<double>() == doctest::Approx(0.04));
    const auto& q = e.at("queued").as_object();
    CHECK(q.at("requests").as_int64() == 3);
    CHECK(q.at("worst_usd").to_number<double>() == doctest::Approx(0.12));
    CHECK(e.at("total_worst_usd").to_number<double>() == doctest::Approx(0.16));
    CHECK(env.value("SELECT count(*) FROM jobs") == "2");

    r = env.cli({"enqueue", env.dir.file("next.jsonl"), "--estimate"});
    CHECK(r.code == 0);
    CHECK(has(r.out,
              "already queued or running in the database: $0.1200 typical, $0.1200 worst "
              "case (3 requests)"));
    CHECK(has(r.out, "with this file: $0.1600 typical, $0.1600 worst case"));

    // A file whose jobs are all stored already: nothing to estimate, the queue still shown.
    r = env.cli({"enqueue", env.dir.file("first.jsonl"), "--estimate"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "estimate: nothing to enqueue\n"));
    CHECK(has(r.out, "already queued or running in the database: $0.1200 typical"));
}
