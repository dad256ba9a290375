// The engine's budget gate: worst case of a claimed request at its provider's price, the
// budget series for Prometheus, and the lanes `status` shows as `budget`.
#include <doctest/doctest.h>

#include "daemon/cli/progress.hpp"
#include "daemon/engine/budget_gate.hpp"

using namespace imgbatch;
using namespace imgbatch::daemon;

namespace {

Config relay_config(const std::string& prices) {
    return parse_config(R"({"providers": [{"name": "relay", "api": "openai",
        "base_url": "http://127.0.0.1:1/v1", "models": ["gpt-image-2"])" +
                            prices + "}]}",
                        "cfg.json");
}

jobs::ClaimedRequest request(int n, const std::string& params = "{}") {
    jobs::ClaimedRequest r;
    r.request_id = 1;
    r.model = "gpt-image-2";
    r.prompt = "a lighthouse";
    r.params_json = params;
    r.n = n;
    r.batch = "b";
    return r;
}

}  // namespace

TEST_CASE("budget gate: the worst case of a claimed request at its provider's price") {
    Config per_call = relay_config(R"(, "prices": {"per_call": 0.04})");
    CHECK(*worst_case_of(per_call, per_call.providers[0], request(3)) == doctest::Approx(0.04));
    Config per_image = relay_config(R"(, "prices": {"per_image": 0.03})");
    CHECK(*worst_case_of(per_image, per_image.providers[0], request(3)) == doctest::Approx(0.09));
    // Images already done are not asked for again.
    auto topup = request(3);
    topup.images_done = 2;
    CHECK(*worst_case_of(per_image, per_image.providers[0], topup) == doctest::Approx(0.03));
    // The catalog's token price: the highest quality costs most.
    Config catalog = relay_config("");
    const auto high = worst_case_of(catalog, catalog.providers[0],
                                    request(1, R"({"quality": "high", "size": "1024x1024"})"));
    const auto low = worst_case_of(catalog, catalog.providers[0],
                                   request(1, R"({"quality": "low", "size": "1024x1024"})"));
    REQUIRE(high);
    REQUIRE(low);
    CHECK(*high > *low);
    // No price (a relay model the catalog does not price): no worst case.
    Config none = parse_config(R"({"providers": [{"name": "relay", "api": "openai-chat",
        "base_url": "http://127.0.0.1:1/v1", "models": ["sora_image"]}]})",
                               "cfg.json");
    auto sora = request(1);
    sora.model = "sora_image";
    CHECK_FALSE(worst_case_of(none, none.providers[0], sora));
}

TEST_CASE("budget gate: metrics say which budget holds, its limit and spend") {
    BudgetGate g;
    jobs::BudgetConfig c;
    c.max_usd_per_day = 2;
    c.max_usd_per_batch = 1;
    g.ledger.configure(c);
    const double now = 1795435200;
    g.ledger.snapshot(jobs::budget_day_start(c, now), 1.5, 0.25, {{"a", 0.75}, {"b", 0.5}});
    g.batches = {"a", "b"};
    BudgetGate::Held h;
    h.hold.kind = jobs::BudgetKind::day;
    g.holds["day"] = h;
    const std::string m = render_budget_metrics(g, now);
    CHECK(m.find("imgbatch_budget_held{budget=\"day\"} 1\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_held{budget=\"batch\"} 0\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_spent_usd{budget=\"day\"} 1.5\n") != std::string::npos);
    // No aggregate over batches: a series per batch (below).
    CHECK(m.find("imgbatch_budget_spent_usd{budget=\"batch\"}") == std::string::npos);
    CHECK(m.find("imgbatch_budget_spent_usd{budget=\"run\"} 0.25\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"day\"} 2\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"run\"}") == std::string::npos);
    CHECK(m.find("# TYPE imgbatch_budget_held gauge") != std::string::npos);
    CHECK(g.global_hold() != nullptr);
    CHECK(g.held_batches().empty());
}

TEST_CASE("budget gate: per-batch series for batches under a budget, open or held, escaped") {
    BudgetGate g;
    jobs::BudgetConfig c;
    c.max_usd_per_batch = 1;
    g.ledger.configure(c);
    const double now = 1795435200;
    const std::string odd = "a \"q\"\\b\nc";
    g.ledger.snapshot(jobs::budget_day_start(c, now), 0, 0,
                      {{"open", 0.75}, {"own", 0.5}, {"done", 0.25}, {"held", 2}, {odd, 0}},
                      {{"own", 3}, {"held", 1.5}});
    g.batches = {"open", "own", "done", "held", odd};
    g.open_batches = {"open", "own", odd};  // "held" has no open work but is held
    BudgetGate::Held h;
    h.hold.kind = jobs::BudgetKind::batch;
    h.hold.batch = "held";
    g.holds["batch:held"] = h;
    const std::string m = render_budget_metrics(g, now);
    INFO(m);
    CHECK(m.find("imgbatch_budget_held{budget=\"batch\"} 1\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_held{budget=\"batch\",batch=\"held\"} 1\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_held{budget=\"batch\",batch=\"open\"} 0\n") != std::string::npos);
    CHECK(m.find("imgbatch_budget_spent_usd{budget=\"batch\",batch=\"open\"} 0.75\n") !=
          std::string::npos);
    CHECK(m.find("imgbatch_budget_spent_usd{budget=\"batch\",batch=\"own\"} 0.5\n") !=
          std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"batch\",batch=\"open\"} 1\n") !=
          std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"batch\",batch=\"own\"} 3\n") !=
          std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"batch\",batch=\"held\"} 1.5\n") !=
          std::string::npos);
    CHECK(m.find("imgbatch_budget_limit_usd{budget=\"batch\"} 1\n") != std::string::npos);
    // Done and not held: no series.
    CHECK(m.find("batch=\"done\"") == std::string::npos);
    // Label values escaped as the exposition format wants.
    CHECK(
        m.find("imgbatch_budget_spent_usd{budget=\"batch\",batch=\"a \\\"q\\\"\\\\b\\nc\"} 0\n") !=
        std::string::npos);
    // Without a per-batch budget in the config, only batches with their own have series.
    jobs::BudgetConfig none;
    g.ledger.configure(none);
    const std::string m2 = render_budget_metrics(g, now);
    CHECK(m2.find("batch=\"open\"") == std::string::npos);
    CHECK(m2.find("imgbatch_budget_limit_usd{budget=\"batch\",batch=\"own\"} 3\n") !=
          std::string::npos);
}

TEST_CASE("budget gate: a live daemon's hold shows the lane as budget, unless paused") {
    std::vector<cli::LaneView> lanes(3);
    lanes[0].load.provider = "p";
    lanes[0].state = "holding";
    lanes[1].load.provider = "q";
    lanes[1].state = "paused";
    lanes[2].load.provider = "r";
    lanes[2].state = "holding";
    jobs::BudgetHoldRow day;
    day.owner = "live";
    day.provider = "p";
    day.budget = "day";
    day.limit_usd = 10;
    day.spent_usd = 9.95;
    day.need_usd = 0.2;
    jobs::BudgetHoldRow paused = day;
    paused.provider = "q";
    jobs::BudgetHoldRow gone = day;
    gone.owner = "dead";
    gone.provider = "r";
    std::vector<cli::DaemonView> daemons(2);
    daemons[0].row.owner = "live";
    daemons[0].alive = true;
    daemons[1].row.owner = "dead";
    daemons[1].alive = false;
    cli::apply_budget_holds(lanes, {day, paused, gone}, daemons);
    CHECK(lanes[0].state == "budget");
    CHECK(lanes[0].detail == "day budget 10.00 USD: 9.95 spent or in flight");
    CHECK(lanes[1].state == "paused");
    CHECK(lanes[2].state == "holding");
    jobs::BudgetHoldRow batch = day;
    batch.budget = "batch";
    batch.batch = "night";
    batch.need_usd.reset();
    CHECK(cli::budget_hold_text(batch) ==
          "batch night budget 10.00 USD: 9.95 spent or in flight, next call has no price");
}

TEST_CASE("budget gate: a batch-mode provider's lines are reserved at the batch price") {
    Config direct = relay_config(R"(, "prices": {"per_call": 0.10})");
    Config half = relay_config(R"(, "mode": "batch", "prices": {"per_call": 0.10})");
    Config quarter =
        relay_config(R"(, "mode": "batch", "prices": {"per_call": 0.10, "batch_discount": 0.25})");
    CHECK(*worst_case_of(direct, direct.providers[0], request(1)) == doctest::Approx(0.10));
    CHECK(*worst_case_of(half, half.providers[0], request(1)) == doctest::Approx(0.05));
    CHECK(*worst_case_of(quarter, quarter.providers[0], request(1)) == doctest::Approx(0.075));
}
