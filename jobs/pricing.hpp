#pragma once
// Prices and costs: what a model costs (catalog/models.json "prices", a provider's "prices" in
// the config), a provider's usage object in one vocabulary whatever its API, the cost of an
// attempt from its usage (or per image, per call), and the worst case of a request not yet
// sent. Pure functions: no I/O, no clock.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace imgbatch::jobs {

// A price as the catalog and the config write it (README "The model catalog", "Prices"):
//   {"per_1m": {"text_input": 5, "cached_text_input": 1.25, "image_input": 8,
//               "cached_image_input": 2, "image_output": 30, "text_output": 10},
//    "image_tokens": {"low": {"1024x1024": 196, ...}, "medium": {...}, "high": {...}},
//    "per_image": 0.039 | {"1K": 0.134, "4K": 0.24} | {"standard": {"1024x1024": 0.04}},
//    "per_call": 0.05,
//    "batch_discount": 0.5,
//    "default_size": "1K", "default_quality": "auto"}
// Every field is optional. per_image and image_tokens are keyed by size, or by quality and
// then size; a plain number applies to every size (and quality).
struct Price {
    // USD per 1M tokens, by kind; unset: not priced by tokens of that kind.
    std::optional<double> text_input, cached_text_input, image_input, cached_image_input,
        image_output, text_output;
    // Tokens one output image takes, and USD per image: key "quality|size", "*" for any part.
    std::map<std::string, double> image_tokens;
    std::map<std::string, double> per_image;
    std::optional<double> per_call;  // USD per request (relays billing per call)
    // Fraction taken off in the vendor's batch mode (0.5: half price); 0: none.
    double batch_discount = 0.5;
    // The size (or image_size) and quality the vendor assumes when a job names none
    // ("" or "auto": the vendor chooses; estimates then take the range of possibilities).
    std::string default_size, default_quality;

    bool has_token_rates() const { return image_output.has_value(); }
    bool empty() const {
        return !text_input && !cached_text_input && !image_input && !cached_image_input &&
               !image_output && !text_output && per_image.empty() && !per_call;
    }
};

// Parses a price object. Throws std::invalid_argument naming `field` (e.g.
// "models.gpt-image-2.prices.per_1m.text_input") on a bad value or an unknown key.
Price parse_price(const boost::json::value& v, const std::string& field);
// The price as JSON, in the form parse_price reads (for `imgbatch models --json`, tests).
boost::json::object price_json(const Price& p);

// A provider's usage object in one vocabulary. Input counts exclude cached tokens, which are
// counted apart (cached_*).
struct Usage {
    bool reported = false;  // the provider gave a usage object with token counts
    std::int64_t input_text_tokens = 0;
    std::int64_t input_image_tokens = 0;
    std::int64_t cached_text_tokens = 0;
    std::int64_t cached_image_tokens = 0;
    std::int64_t output_image_tokens = 0;
    std::int64_t output_text_tokens = 0;  // text the model wrote (revised prompt, thoughts)

    std::int64_t input_tokens() const {
        return input_text_tokens + input_image_tokens + cached_text_tokens + cached_image_tokens;
    }
    std::int64_t output_tokens() const { return output_image_tokens + output_text_tokens; }
};

// Normalises any API style's usage object, recognised by its keys:
//  - OpenAI Images: {input_tokens, output_tokens, total_tokens, input_tokens_details:
//    {text_tokens, image_tokens, cached_tokens?}, output_tokens_details?: {image_tokens,
//    text_tokens}}; output tokens are image tokens unless output_tokens_details splits them.
//  - OpenAI chat completions (relays): {prompt_tokens, completion_tokens, prompt_tokens_details?
//    {cached_tokens, text_tokens?, image_tokens?}, completion_tokens_details?{image_tokens?,
//    text_tokens?, reasoning_tokens?}}; completion tokens are text unless the details name
//    image tokens.
//  - Gemini usageMetadata: {promptTokenCount, candidatesTokenCount, thoughtsTokenCount?,
//    cachedContentTokenCount?, promptTokensDetails?, candidatesTokensDetails?:
//    [{modality: "IMAGE"|"TEXT", tokenCount}]}; candidates without details count as image
//    tokens, thoughts as text output.
// Anything else (or no token counts): reported = false.
Usage normalize_usage(const boost::json::object& usage);
// The same from JSON text ("" or not an object: reported = false).
Usage normalize_usage_json(std::string_view usage_json);

// How a cost was computed (not_billed: the provider did not bill the attempt, cost 0).
enum class CostBasis { unknown, tokens, per_image, per_call, not_billed };
std::string_view to_string(CostBasis b);

struct Cost {
    std::optional<double> usd;  // unset: unknown (no price, or nothing to price it by)
    CostBasis basis = CostBasis::unknown;
    bool estimated = false;  // a worst case stood in for usage the provider did not report
};

// The parameters that set a price: size (or image_size) and quality, from a job's params
// (empty when absent).
struct PriceParams {
    std::string size;
    std::string quality;
};
PriceParams price_params(const boost::json::object& params);

// The cost of one call that produced `images` images with `usage`:
//  - per_call, when the price has one;
//  - else by tokens, when usage was reported and the price has token rates (a kind of token
//    without a rate of its own is priced at the nearest one: cached at the uncached rate,
//    image input at the text input rate, text output at the image output rate);
//  - else images * per_image for the size and quality (defaults applied);
//  - else unknown.
// batch: the vendor's batch mode (the price less batch_discount).
Cost cost_usd(const Price& price, const Usage& usage, int images, const PriceParams& params,
              bool batch);

// The projected cost of a request not yet sent: `worst` bounds what the vendor can bill (the
// largest output for the size and quality, every prompt byte a token); `typical` is what it
// usually bills (the median of the possibilities when the size or quality is left to the
// vendor, a token per 4 prompt bytes). Unset when the price cannot tell.
struct Projection {
    std::optional<double> worst;
    std::optional<double> typical;
    CostBasis basis = CostBasis::unknown;
};
// n: images asked for in one call; prompt_bytes: the prompt's UTF-8 size.
Projection project_usd(const Price& price, int n, const PriceParams& params,
                       std::size_t prompt_bytes, bool batch);
// project_usd(...).worst.
std::optional<double> worst_case_usd(const Price& price, int n, const PriceParams& params,
                                     std::size_t prompt_bytes, bool batch);

// Prices a provider sets in the config: per model name, "*" for every model of the provider.
using ProviderPrices = std::map<std::string, Price, std::less<>>;
// Parses a provider's "prices": {"model": price, "*": price}, or one price object (for every
// model). Throws std::invalid_argument naming `field`.
ProviderPrices parse_provider_prices(const boost::json::value& v, const std::string& field);
// The price of model at a provider: the provider's own for the model, else its "*", else the
// catalog's (may be null).
const Price* resolve_price(const ProviderPrices& provider, std::string_view model,
                           const Price* catalog);

}  // namespace imgbatch::jobs
