// Pricing: price objects, usage of every API style in one vocabulary, costs and worst cases,
// checked against the vendors' published examples and the built-in catalog.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "jobs/catalog.hpp"
#include "jobs/pricing.hpp"

using namespace imgbatch::jobs;
namespace json = boost::json;

namespace {

const Price& catalog_price(const std::string& model) {
    static const Catalog c = Catalog::builtin();
    const auto* m = c.find(model);
    REQUIRE_MESSAGE(m, model);
    REQUIRE_MESSAGE(m->price, model);
    return *m->price;
}

Price price(std::string_view text) {
    return parse_price(json::parse(text), "p");
}

Usage usage(std::string_view text) {
    return normalize_usage_json(text);
}

std::string error_of(std::string_view text) {
    try {
        parse_price(json::parse(text), "models.m.prices");
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("usage: OpenAI Images usage, with and without details") {
    // The API reference's example.
    auto u = usage(
        R"({"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}})");
    CHECK(u.reported);
    CHECK(u.input_text_tokens == 10);
    CHECK(u.input_image_tokens == 40);
    CHECK(u.output_image_tokens == 50);
    CHECK(u.output_text_tokens == 0);

    // No details: every input token is text. Cached tokens counted apart; output split.
    u = usage(R"({"input_tokens": 30, "output_tokens": 4200,
                 "input_tokens_details": {"text_tokens": 30, "cached_tokens": 12},
                 "output_tokens_details": {"image_tokens": 4160, "text_tokens": 40}})");
    CHECK(u.input_text_tokens == 18);
    CHECK(u.cached_text_tokens == 12);
    CHECK(u.output_image_tokens == 4160);
    CHECK(u.output_text_tokens == 40);
    CHECK(usage(R"({"input_tokens": 7, "output_tokens": 9})").input_text_tokens == 7);
}

TEST_CASE("usage: chat completions (relays) and Gemini usageMetadata") {
    auto u = usage(R"({"prompt_tokens": 20, "completion_tokens": 300, "total_tokens": 320})");
    CHECK(u.reported);
    CHECK(u.input_text_tokens == 20);
    CHECK(u.output_text_tokens == 300);
    CHECK(u.output_image_tokens == 0);
    u = usage(R"({"prompt_tokens": 20, "completion_tokens": 300,
                 "completion_tokens_details": {"image_tokens": 256}})");
    CHECK(u.output_image_tokens == 256);
    CHECK(u.output_text_tokens == 44);

    // Gemini 2.5 Flash Image: an image is 1290 tokens.
    u = usage(R"({"promptTokenCount": 11, "candidatesTokenCount": 1290, "totalTokenCount": 1301,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
                 "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}]})");
    CHECK(u.input_text_tokens == 11);
    CHECK(u.output_image_tokens == 1290);
    CHECK(u.output_text_tokens == 0);
    // Text beside the image, thoughts, an input image, no details at all.
    u = usage(R"({"promptTokenCount": 270, "candidatesTokenCount": 1130, "thoughtsTokenCount": 90,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12},
                                         {"modality": "IMAGE", "tokenCount": 258}],
                 "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120},
                                             {"modality": "TEXT", "tokenCount": 10}]})");
    CHECK(u.input_text_tokens == 12);
    CHECK(u.input_image_tokens == 258);
    CHECK(u.output_image_tokens == 1120);
    CHECK(u.output_text_tokens == 100);
    u = usage(R"({"promptTokenCount": 5, "candidatesTokenCount": 1290})");
    CHECK(u.output_image_tokens == 1290);

    CHECK_FALSE(usage("").reported);
    CHECK_FALSE(usage("not json").reported);
    CHECK_FALSE(usage(R"({"something": 1})").reported);
}

TEST_CASE("cost: by tokens at the vendors' rates") {
    // gpt-image-1 ($5 text in, $10 image in, $40 image out) on the API reference's example.
    const auto u = usage(
        R"({"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}})");
    auto c = cost_usd(catalog_price("gpt-image-1"), u, 1, {}, false);
    CHECK(c.basis == CostBasis::tokens);
    CHECK_FALSE(c.estimated);
    REQUIRE(c.usd);
    CHECK(*c.usd == doctest::Approx((10 * 5 + 40 * 10 + 50 * 40) / 1e6));
    // Batch mode: half.
    c = cost_usd(catalog_price("gpt-image-1"), u, 1, {}, true);
    CHECK(*c.usd == doctest::Approx((10 * 5 + 40 * 10 + 50 * 40) / 2e6));

    // gpt-image-2, high 1024x1024: 7024 output tokens at $30/1M, about $0.211.
    c = cost_usd(catalog_price("gpt-image-2"),
                 usage(R"({"input_tokens": 20, "output_tokens": 7024})"), 1, {"1024x1024", "high"},
                 false);
    CHECK(*c.usd == doctest::Approx(20 * 5e-6 + 7024 * 30e-6));
    CHECK(*c.usd == doctest::Approx(0.211).epsilon(0.01));

    // Gemini 2.5 Flash Image: 1290 tokens at $30/1M, Google's "$0.039 per image".
    c = cost_usd(catalog_price("gemini-2.5-flash-image"),
                 usage(R"({"promptTokenCount": 10, "candidatesTokenCount": 1290})"), 1, {}, false);
    CHECK(c.basis == CostBasis::tokens);
    CHECK(*c.usd == doctest::Approx(10 * 0.3e-6 + 1290 * 30e-6));
    CHECK(*c.usd == doctest::Approx(0.039).epsilon(0.01));
    // Gemini 3 Pro Image at 4K: 2000 tokens at $120/1M = $0.24.
    c = cost_usd(catalog_price("gemini-3-pro-image-preview"),
                 usage(R"({"promptTokenCount": 0, "candidatesTokenCount": 2000})"), 1, {"4K", ""},
                 false);
    CHECK(*c.usd == doctest::Approx(0.24));

    // A kind without its own rate takes the nearest: cached text at the text rate.
    auto p = price(R"({"per_1m": {"text_input": 4, "image_output": 10}})");
    c = cost_usd(p, usage(R"({"input_tokens": 10, "output_tokens": 100,
                              "input_tokens_details": {"text_tokens": 10, "cached_tokens": 5}})"),
                 1, {}, false);
    CHECK(*c.usd == doctest::Approx((10 * 4 + 100 * 10) / 1e6));
}

TEST_CASE("cost: per image, per call, and unknown") {
    // DALL-E 3 hd 1792x1024 is $0.12 an image; its defaults are standard 1024x1024 ($0.04).
    const auto& d3 = catalog_price("dall-e-3");
    auto c = cost_usd(d3, {}, 1, {"1792x1024", "hd"}, false);
    CHECK(c.basis == CostBasis::per_image);
    CHECK(*c.usd == doctest::Approx(0.12));
    CHECK_FALSE(c.estimated);
    CHECK(*cost_usd(d3, {}, 2, {}, false).usd == doctest::Approx(0.08));
    // Gemini without usage: per image by image_size ("1K" by default).
    const auto& g3 = catalog_price("gemini-3.1-flash-image-preview");
    CHECK(*cost_usd(g3, {}, 1, {}, false).usd == doctest::Approx(0.067));
    CHECK(*cost_usd(g3, {}, 1, {"512", ""}, false).usd == doctest::Approx(0.045));
    CHECK(*cost_usd(g3, {}, 1, {"4K", ""}, true).usd == doctest::Approx(0.151 / 2));
    // Imagen: one price for every size.
    CHECK(*cost_usd(catalog_price("imagen-4.0-generate-001"), {}, 4, {"2K", ""}, false).usd ==
          doctest::Approx(0.16));

    // A relay's per-call price wins over usage and counts once per call.
    auto relay = price(R"({"per_call": 0.05, "per_1m": {"text_input": 1, "image_output": 1}})");
    c = cost_usd(relay, usage(R"({"prompt_tokens": 9, "completion_tokens": 9})"), 1, {}, false);
    CHECK(c.basis == CostBasis::per_call);
    CHECK(*c.usd == doctest::Approx(0.05));

    // Nothing to price by: unknown.
    c = cost_usd(price(R"({"per_1m": {"text_input": 1, "image_output": 1}})"), {}, 1, {}, false);
    CHECK_FALSE(c.usd);
    CHECK(c.basis == CostBasis::unknown);
    // Tokens of a kind the price cannot rate (no text_input): per image instead, if any.
    c = cost_usd(price(R"({"per_1m": {"image_output": 1}, "per_image": 0.5})"),
                 usage(R"({"input_tokens": 9, "output_tokens": 9})"), 1, {}, false);
    CHECK(c.basis == CostBasis::per_image);
    CHECK(*c.usd == doctest::Approx(0.5));
}

TEST_CASE("worst case and typical of a request not yet sent") {
    const auto& g2 = catalog_price("gpt-image-2");
    // Named size and quality: the table's tokens; every prompt byte a token (+16) at worst,
    // a token per 4 bytes (+6) typically.
    auto p = project_usd(g2, 1, {"1024x1024", "high"}, 400, false);
    CHECK(p.basis == CostBasis::tokens);
    CHECK(*p.worst == doctest::Approx(416 * 5e-6 + 7024 * 30e-6));
    CHECK(*p.typical == doctest::Approx(106 * 5e-6 + 7024 * 30e-6));
    // n images: n times (OpenAI bills each image as a separate generation).
    CHECK(*worst_case_usd(g2, 3, {"1024x1024", "high"}, 400, false) ==
          doctest::Approx(3 * (416 * 5e-6 + 7024 * 30e-6)));
    // Batch: half.
    CHECK(*worst_case_usd(g2, 1, {"1024x1024", "high"}, 400, true) ==
          doctest::Approx((416 * 5e-6 + 7024 * 30e-6) / 2));
    // Quality and size left to the vendor ("auto", the default): the largest at worst, the
    // median typically.
    p = project_usd(g2, 1, {}, 0, false);
    CHECK(*p.worst == doctest::Approx(16 * 5e-6 + 7024 * 30e-6));
    CHECK(*p.typical == doctest::Approx(6 * 5e-6 + 1372 * 30e-6));
    p = project_usd(g2, 1, {"1536x1024", ""}, 0, false);
    CHECK(*p.worst == doctest::Approx(16 * 5e-6 + 5488 * 30e-6));
    // A free size of gpt-image-2: the worst case scales with pixels (a bound).
    p = project_usd(g2, 1, {"2048x2048", "high"}, 0, false);
    CHECK(*p.worst == doctest::Approx(16 * 5e-6 + 4 * 7024 * 30e-6));
    CHECK(*p.typical < *p.worst);
    CHECK(*p.typical > *project_usd(g2, 1, {"1024x1024", "high"}, 0, false).typical);

    // Per image: n times the price; per call: once.
    CHECK(*worst_case_usd(catalog_price("gemini-3-pro-image-preview"), 1, {"4K", ""}, 50, false) ==
          doctest::Approx(66 * 2e-6 + 2000 * 120e-6));
    CHECK(*worst_case_usd(catalog_price("imagen-4.0-ultra-generate-001"), 1, {}, 50, false) ==
          doctest::Approx(0.06));
    CHECK(*worst_case_usd(price(R"({"per_image": {"standard": {"1024x1024": 0.04},
                                                    "hd": {"1024x1024": 0.08}}})"),
                          2, {"1024x1024", ""}, 0, false) == doctest::Approx(0.16));
    CHECK(*worst_case_usd(price(R"({"per_call": 0.03})"), 4, {}, 999, false) ==
          doctest::Approx(0.03));
    CHECK_FALSE(worst_case_usd(Price{}, 1, {}, 10, false));
}

TEST_CASE("price objects: parse, print back, and name the field of a bad value") {
    auto p = price(R"({"per_image": {"hd": {"1024x1024": 0.08}, "1024x1024": 0.04},
                       "per_call": 0, "batch_discount": 0.25, "default_size": "1024x1024"})");
    CHECK(p.per_image.at("hd|1024x1024") == 0.08);
    CHECK(p.per_image.at("*|1024x1024") == 0.04);
    CHECK(p.batch_discount == 0.25);
    auto again = parse_price(price_json(p), "again");
    CHECK(again.per_image == p.per_image);
    CHECK(again.per_call == p.per_call);
    CHECK(again.default_size == "1024x1024");
    CHECK(parse_price(price_json(catalog_price("gpt-image-2")), "x").image_tokens ==
          catalog_price("gpt-image-2").image_tokens);

    CHECK(error_of(R"({"per_1m": {"text_input": -1}})") ==
          "models.m.prices.per_1m.text_input: must be a number >= 0, got -1");
    CHECK(error_of(R"({"per_1m": {"image_in": 1}})")
              .rfind("models.m.prices.per_1m.image_in: "
                     "unknown rate",
                     0) == 0);
    CHECK(error_of(R"({"per_image": {"hd": {"1024x1024": "x"}}})") ==
          "models.m.prices.per_image.hd.1024x1024: must be a number, got \"x\"");
    CHECK(error_of(R"({"batch_discount": 2})") ==
          "models.m.prices.batch_discount: must be between 0 and 1, got 2");
    CHECK(error_of(R"({"per_token": 1})").rfind("models.m.prices.per_token: unknown field", 0) ==
          0);
    CHECK(error_of(R"({"image_tokens": 5})") ==
          "models.m.prices.image_tokens: needs per_1m.image_output to price them");
    CHECK(error_of("[]") == "models.m.prices: must be an object of prices, got []");
}

TEST_CASE("provider prices: per model, for every model, and the catalog's otherwise") {
    auto pp = parse_provider_prices(
        json::parse(R"({"gpt-image-2-all": {"per_call": 0.05}, "*": {"per_image": 0.01}})"),
        "providers[0].prices");
    const Price catalog = price(R"({"per_image": 0.5})");
    CHECK(resolve_price(pp, "gpt-image-2-all", &catalog)->per_call == 0.05);
    CHECK(resolve_price(pp, "other", &catalog)->per_image.at("*|*") == 0.01);
    // One price object: every model of the provider.
    pp = parse_provider_prices(json::parse(R"({"per_call": 0.02})"), "providers[0].prices");
    CHECK(resolve_price(pp, "any", &catalog)->per_call == 0.02);
    CHECK(resolve_price({}, "any", &catalog) == &catalog);
    CHECK(resolve_price({}, "any", nullptr) == nullptr);
    try {
        parse_provider_prices(json::parse(R"({"m": {"per_call": "a"}})"), "providers[1].prices");
        FAIL("accepted a bad price");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) ==
              "providers[1].prices.m.per_call: must be a number, got \"a\"");
    }
}

TEST_CASE("the built-in catalog prices every vendor model and says where prices come from") {
    const auto c = Catalog::builtin();
    CHECK(is_iso_date(c.prices_as_of()));
    CHECK(c.prices_source().find("openai.com/api/pricing") != std::string::npos);
    CHECK(c.prices_source().find("ai.google.dev/gemini-api/docs/pricing") != std::string::npos);
    for (const auto& name : c.names()) {
        const auto* m = c.find(name);
        if (m->family == "relay") {
            // Relays bill per call at their own prices: set in the provider's config.
            CHECK_MESSAGE(!m->price, name);
            continue;
        }
        REQUIRE_MESSAGE(m->price, name);
        CHECK_MESSAGE(m->price->batch_discount == 0.5, name);
        // Every model can project a request with default parameters.
        CHECK_MESSAGE(worst_case_usd(*m->price, 1, {}, 100, false), name);
    }
    // "like" copies prices; a dated snapshot costs what its model costs.
    CHECK(c.find("gpt-image-2-2026-04-21")->price->image_output == 30);
    CHECK(c.find("gpt-image-1-mini")->price->image_output == 8);
    CHECK(c.find("gpt-image-1.5")->price->image_output == 32);
}

TEST_CASE("catalog prices: config may override or remove a model's price") {
    auto c = Catalog::builtin();
    c.apply_config(json::parse(R"({"gpt-image-2": {"prices": {"per_image": 0.1}},
                                   "dall-e-2": {"prices": null}})")
                       .get_object());
    CHECK(c.find("gpt-image-2")->price->per_image.at("*|*") == 0.1);
    CHECK_FALSE(c.find("gpt-image-2")->price->image_output);
    CHECK_FALSE(c.find("dall-e-2")->price);
    try {
        c.apply_config(json::parse(R"({"x": {"prices": {"per_call": true}}})").get_object());
        FAIL("accepted a bad price");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "models.x.prices.per_call: must be a number, got true");
    }
    try {
        Catalog::from_json(R"({"format": 1, "prices_as_of": "yesterday", "models": {}})", "f.json");
        FAIL("accepted a bad date");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("f.json: prices_as_of: must be a date") == 0);
    }
}
