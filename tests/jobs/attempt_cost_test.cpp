// The cost recorded with an attempt: billed or not, usage, cost, worst case for silent ones.
#include <doctest/doctest.h>

#include "jobs/attempt_cost.hpp"
#include "jobs/catalog.hpp"

using namespace imgbatch::jobs;

namespace {

Error err(ErrorClass cls, int status, std::string message = "m", std::string code = "") {
    Error e;
    e.cls = cls;
    e.http_status = status;
    e.message = std::move(message);
    e.code = std::move(code);
    return e;
}

Completion with_images(int n) {
    Completion c;
    for (int i = 0; i < n; ++i) {
        OutputRecord o;
        o.idx = i;
        c.outputs.push_back(o);
    }
    return c;
}

const Price& gpt_image_2() {
    static const Catalog c = Catalog::builtin();
    return *c.find("gpt-image-2")->price;
}

}  // namespace

TEST_CASE("billed: answers and work cut off are billed, refusals before work are not") {
    CHECK(billed_by(std::nullopt, 1) == true);
    CHECK(billed_by(err(ErrorClass::partial, 200), 1) == true);
    CHECK(billed_by(err(ErrorClass::moderation, 200), 0) == true);  // Gemini filtered output
    CHECK(billed_by(err(ErrorClass::bad_response, 200), 0) == true);
    CHECK(billed_by(err(ErrorClass::timeout, 0, "response deadline of 300 s passed"), 0) == true);
    CHECK(billed_by(err(ErrorClass::timeout, 504), 0) == true);
    CHECK(billed_by(err(ErrorClass::timeout, 0, "connect deadline of 30 s passed"), 0) == false);
    CHECK(billed_by(err(ErrorClass::timeout, 408), 0) == false);
    CHECK(billed_by(err(ErrorClass::network, 0,
                        "connection to x closed before the end of the "
                        "answer"),
                    0) == true);
    CHECK(billed_by(err(ErrorClass::network, 0, "connect to x: Connection refused"), 0) == false);
    // A request written whole, then the connection reset: it may have been generated.
    CHECK(billed_by(
              err(ErrorClass::network, 0, "x: Connection reset by peer", std::string(kAfterSend)),
              0) == true);
    CHECK(billed_by(err(ErrorClass::rate_limited, 429), 0) == false);
    CHECK(billed_by(err(ErrorClass::moderation, 400), 0) == false);
    CHECK(billed_by(err(ErrorClass::invalid_request, 400), 0) == false);
    CHECK(billed_by(err(ErrorClass::server, 500), 0) == false);
    CHECK(billed_by(err(ErrorClass::auth, 401), 0) == false);
    CHECK(billed_by(err(ErrorClass::quota, 429), 0) == false);
    // Images kept: billed whatever came after.
    CHECK(billed_by(err(ErrorClass::server, 500), 1) == true);
}

TEST_CASE("price_completion: tokens, worst case for a silent billed attempt, 0 when not billed") {
    AttemptAsk ask;
    ask.params = {"1024x1024", "high"};
    ask.n = 1;
    ask.prompt_bytes = 100;

    auto c = with_images(1);
    c.usage_json = R"({"input_tokens": 20, "output_tokens": 7024,
                       "input_tokens_details": {"text_tokens": 20, "image_tokens": 0}})";
    price_completion(c, &gpt_image_2(), ask);
    CHECK(c.billed == true);
    CHECK(c.usage.output_image_tokens == 7024);
    CHECK(c.cost_basis == CostBasis::tokens);
    CHECK_FALSE(c.cost_estimated);
    CHECK(*c.cost_usd == doctest::Approx(20 * 5e-6 + 7024 * 30e-6));
    // In batch mode: half.
    ask.batch = true;
    price_completion(c, &gpt_image_2(), ask);
    CHECK(*c.cost_usd == doctest::Approx((20 * 5e-6 + 7024 * 30e-6) / 2));
    ask.batch = false;

    // A timeout after sending: billed, its worst case stands in.
    c = with_images(0);
    c.error = err(ErrorClass::timeout, 0, "response deadline of 300 s passed");
    price_completion(c, &gpt_image_2(), ask);
    CHECK(c.billed == true);
    CHECK(c.cost_estimated);
    CHECK(*c.cost_usd == doctest::Approx(116 * 5e-6 + 7024 * 30e-6));
    CHECK_FALSE(c.usage.reported);

    // A 429: not billed, costs nothing.
    c = with_images(0);
    c.error = err(ErrorClass::rate_limited, 429);
    price_completion(c, &gpt_image_2(), ask);
    CHECK(c.billed == false);
    CHECK(*c.cost_usd == 0);
    CHECK(c.cost_basis == CostBasis::not_billed);

    // No price: unknown (billed all the same).
    c = with_images(1);
    price_completion(c, nullptr, ask);
    CHECK(c.billed == true);
    CHECK_FALSE(c.cost_usd);

    // A success without usage under a token price: the worst case, marked estimated.
    c = with_images(1);
    price_completion(c, &gpt_image_2(), ask);
    CHECK(c.cost_estimated);
    CHECK(*c.cost_usd == doctest::Approx(116 * 5e-6 + 7024 * 30e-6));

    // Per call: the relay's price, usage or not.
    Price relay;
    relay.per_call = 0.05;
    c = with_images(0);
    c.error = err(ErrorClass::bad_response, 200);
    price_completion(c, &relay, ask);
    CHECK(*c.cost_usd == doctest::Approx(0.05));
    CHECK(c.cost_basis == CostBasis::per_call);
    CHECK_FALSE(c.cost_estimated);
}
