// Cost per attempt through the real binary against `imgbatch sim`, for each API style: the cost
// stored is the price times the usage the sim answered with (or per image, per call), at half
// price in batch mode; a billed timeout is priced at its worst case. Every test counts the
// images the sim served against the images kept.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// Each attempt's cost against the expected one computed in SQL from its usage.
void check_costs(const DaemonEnv& env, const std::string& expected_sql, int attempts) {
    auto rows =
        env.rows("SELECT cost_usd || '|' || (" + expected_sql + ") FROM attempts ORDER BY id");
    REQUIRE(rows.size() == static_cast<std::size_t>(attempts));
    for (const auto& r : rows) {
        INFO(r);
        auto parts = DaemonEnv::split(r);
        REQUIRE(parts.size() == 2);
        CHECK(num_or_nan(parts[0]) > 0);
        CHECK(num_or_nan(parts[0]) == doctest::Approx(num_or_nan(parts[1])).epsilon(1e-9));
    }
}

void check_kept(const DaemonEnv& env, const Sim& sim) {
    CHECK(env.number("SELECT count(*) FROM outputs") == sim.stat("images"));
    CHECK(env.number("SELECT count(*) FROM attempts WHERE billed IS NOT 1") == 0);
}

// Gemini usageMetadata: the tokens of one output modality.
std::string gemini_out(const std::string& modality) {
    return "(SELECT sum(json_extract(value, '$.tokenCount')) FROM "
           "json_each(usage, '$.candidatesTokensDetails') WHERE json_extract(value, '$.modality') "
           "= '" +
           modality + "')";
}

// One API style: jobs run against the sim, then every attempt's cost is checked against
// expected_sql computed from its usage.
struct CostCase {
    std::string name;
    std::vector<std::string> sim_args;
    std::function<std::string(const Sim&)> provider;
    std::string extra_top;  // more top-level config members
    std::string jobs;       // JSONL
    std::vector<std::string> succeeded;
    std::string expected_sql;
    int attempts = 0;
    std::string basis;  // every attempt's cost_basis
    // Attempts whose usage in one vocabulary matches the raw usage ("" none checked).
    std::string vocabulary_sql;
};

std::vector<CostCase> cost_cases() {
    const std::string image_out = gemini_out("IMAGE"), text_out = gemini_out("TEXT");
    return {
        // gpt-image-2: text in $5, image in $8, image out $30 per 1M tokens.
        {"OpenAI Images usage at the catalog's token rates",
         {},
         [](const Sim& sim) { return openai_provider(sim); },
         "",
         job_line("a", "a red fox", "gpt-image-2", 2) +
             job_line("b", "a blue owl in the snow", "gpt-image-2", 1),
         {"a", "b"},
         "json_extract(usage, '$.input_tokens_details.text_tokens') * 5e-6 + "
         "json_extract(usage, '$.input_tokens_details.image_tokens') * 8e-6 + "
         "json_extract(usage, '$.output_tokens') * 30e-6",
         2,
         "tokens",
         "SELECT count(*) FROM attempts WHERE output_image_tokens = "
         "json_extract(usage, '$.output_tokens') AND input_text_tokens = "
         "json_extract(usage, '$.input_tokens')"},
        {"a chat-completions relay at the provider's own prices",
         {},
         [](const Sim& sim) {
             return chat_provider(sim, "chat",
                                  R"("prices": {"sora_image": {"per_1m": {"text_input": 2, )"
                                  R"("text_output": 8, "image_output": 8}}})");
         },
         "",
         job_line("r", "a lighthouse at dusk", "sora_image", 1) +
             job_line("s", "a small boat", "sora_image", 1),
         {"r", "s"},
         "json_extract(usage, '$.prompt_tokens') * 2e-6 + "
         "json_extract(usage, '$.completion_tokens') * 8e-6",
         2,
         "tokens",
         "SELECT count(*) FROM attempts WHERE output_text_tokens = "
         "json_extract(usage, '$.completion_tokens')"},
        // One call an image (sora_image: one image a request).
        {"a relay billing per call",
         {},
         [](const Sim& sim) {
             return chat_provider(sim, "chat", R"("prices": {"per_call": 0.04})");
         },
         "",
         job_line("r", "a lighthouse", "sora_image", 2),
         {"r"},
         "0.04",
         2,
         "per_call",
         ""},
        // 2.5 Flash Image: text in $0.30, image out $30, text out $2.50; 3 Pro Image: text in
        // $2, image out $120, text out $12. The answer's text part is billed as text output.
        {"Gemini usageMetadata at the catalog's token rates",
         {},
         [](const Sim& sim) {
             return provider_json("gem", "gemini", sim.url() + "/v1beta",
                                  {"gemini-2.5-flash-image", "gemini-3-pro-image-preview"});
         },
         "",
         job_line("f", "a cat on a mat", "gemini-2.5-flash-image", 2) +
             job_line("p", "a dog at 4K", "gemini-3-pro-image-preview", 1, R"("image_size": "4K")"),
         {"f", "p"},
         "CASE (SELECT model FROM jobs WHERE id = job_id) "
         "WHEN 'gemini-2.5-flash-image' THEN "
         "json_extract(usage, '$.promptTokenCount') * 0.3e-6 + " +
             image_out + " * 30e-6 + " + text_out +
             " * 2.5e-6 "
             "ELSE json_extract(usage, '$.promptTokenCount') * 2e-6 + " +
             image_out + " * 120e-6 + " + text_out + " * 12e-6 END",
         3,
         "tokens",
         "SELECT count(*) FROM attempts WHERE output_image_tokens = " + image_out +
             " AND output_text_tokens = " + text_out + " AND output_text_tokens > 0 AND " +
             "output_image_tokens + output_text_tokens = "
             "json_extract(usage, '$.candidatesTokenCount')"},
        {"Imagen per image, and a config override of the catalog's price",
         {},
         [](const Sim& sim) { return google_provider(sim); },
         R"("models": {"imagen-4.0-ultra-generate-001": {"prices": {"per_image": 0.5}}})",
         job_line("i", "a mountain", "imagen-4.0-generate-001", 3) +
             job_line("u", "a valley", "imagen-4.0-ultra-generate-001", 1),
         {"i", "u"},
         "CASE (SELECT model FROM jobs WHERE id = job_id) "
         "WHEN 'imagen-4.0-generate-001' THEN images * 0.04 ELSE images * 0.5 END",
         2,
         "per_image",
         ""},
        {"batch mode lines at half the token rates",
         {"--batch-ms", "200"},
         [](const Sim& sim) {
             return openai_provider(
                 sim, "oa", R"("mode": "batch", "batch_poll_s": 0.05, "batch_poll_max_s": 0.2)");
         },
         "",
         job_line("a", "a fox", "gpt-image-2", 1) + job_line("b", "an owl", "gpt-image-2", 1),
         {"a", "b"},
         "(json_extract(usage, '$.input_tokens_details.text_tokens') * 5e-6 + "
         "json_extract(usage, '$.output_tokens') * 30e-6) / 2",
         2,
         "tokens",
         ""},
    };
}

}  // namespace

TEST_CASE("costs: each API style at its prices") {
    for (const auto& c : cost_cases()) {
        SUBCASE(c.name.c_str()) {
            Sim sim(c.sim_args);
            DaemonEnv env({c.provider(sim)}, fast_retry(), 10, c.extra_top);
            env.enqueue(c.jobs);
            env.run_until_idle();
            for (const auto& key : c.succeeded) {
                INFO("job " << key);
                CHECK(env.job_state(key) == "succeeded");
            }
            check_kept(env, sim);
            check_costs(env, c.expected_sql, c.attempts);
            CHECK(env.value("SELECT group_concat(DISTINCT cost_basis) FROM attempts") == c.basis);
            if (!c.vocabulary_sql.empty()) CHECK(env.number(c.vocabulary_sql) == c.attempts);
            CHECK(env.value("SELECT count(DISTINCT owner) FROM attempts") == "1");
        }
    }
}

TEST_CASE("costs: a billed timeout is priced at its worst case; a 429 is not billed") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "oa", R"("timeout_s": 0.5)")},
                  R"({"max_attempts": 4, "max_timeouts": 1, "base_delay_s": 0.05,
                      "max_delay_s": 0.5, "max_rate_limited": 3})");
    // gpt-image-2 high 1024x1536: 5488 output tokens at worst; the prompt's bytes as tokens.
    const std::string slow = "a slow picture #slow=3000";
    env.enqueue(job_line("t", slow, "gpt-image-2", 1, R"("size": "1024x1536", "quality": "high")") +
                job_line("r", "a busy picture #fail=429", "gpt-image-2", 1));
    env.run_until_idle();
    CHECK(env.job_state("t") == "failed");
    CHECK(env.value("SELECT billed || '|' || cost_basis FROM attempts WHERE job_id = " +
                    env.job_id("t")) == "1|worst_case");
    CHECK(
        num_or_nan(env.value("SELECT cost_usd FROM attempts WHERE job_id = " + env.job_id("t"))) ==
        doctest::Approx((slow.size() + 16) * 5e-6 + 5488 * 30e-6));
    // 429s: not billed, cost 0.
    CHECK(env.number("SELECT count(*) FROM attempts WHERE job_id = " + env.job_id("r") +
                     " AND error_class = 'rate_limited' AND billed = 0 AND cost_usd = 0") >= 1);
}
