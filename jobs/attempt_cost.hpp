#pragma once
// The cost of one attempt, as recorded with its completion: whether the provider billed it,
// its usage in one vocabulary, and its cost at the price of the model at its provider.
#include <cstddef>
#include <optional>

#include "jobs/error.hpp"
#include "jobs/pricing.hpp"
#include "jobs/store.hpp"

namespace imgbatch::jobs {

// Whether the provider billed an attempt that returned `images` images and ended with error:
// true for an answer (with images, a partial one, a 2xx answer without usable images), a
// timeout that may have been billed (may_be_billed), an answer cut off after the request was
// sent; false for a refusal before any work (4xx, 429, 5xx, a connection that never carried
// the request, a request given back unsent); unset when it cannot be told.
std::optional<bool> billed_by(const std::optional<Error>& error, int images);

// What the attempt asked for, for its price.
struct AttemptAsk {
    PriceParams params;            // size (or image_size) and quality
    int n = 1;                     // images asked for in the call
    std::size_t prompt_bytes = 0;  // UTF-8 size of the prompt
    bool batch = false;            // sent through the vendor's batch mode
};

// Fills c.usage (from c.usage_json), c.billed, c.cost_usd, c.cost_basis and c.cost_estimated
// from c.error, c.outputs and price (null: cost unknown). A billed attempt that cannot be
// priced from its answer (no usage, e.g. a timeout) is priced at the worst case of what it
// asked for, marked estimated. An attempt that was not billed costs 0 (basis not_billed).
void price_completion(Completion& c, const Price* price, const AttemptAsk& ask);

}  // namespace imgbatch::jobs
