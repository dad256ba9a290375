// Usage objects of every API style in one vocabulary (jobs/pricing.hpp).
#include <boost/json/parse.hpp>

#include "jobs/pricing.hpp"

namespace imgbatch::jobs {
namespace {

namespace json = boost::json;

// A non-negative token count, or nullopt when the field is absent or not a count.
std::optional<std::int64_t> count(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    if (!v) return std::nullopt;
    if (v->is_int64() && v->get_int64() >= 0) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64() >> 1);
    if (v->is_double() && v->get_double() >= 0 && v->get_double() < 9e18)
        return static_cast<std::int64_t>(v->get_double());
    return std::nullopt;
}

const json::object* object(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    return v && v->is_object() ? &v->get_object() : nullptr;
}

std::int64_t clamp_sub(std::int64_t a, std::int64_t b) {
    return a > b ? a - b : 0;
}

// Text and image input tokens, cached ones included: the cached tokens are taken out of text
// first, then out of image.
void split_input(Usage& u, std::int64_t text, std::int64_t image, std::int64_t cached) {
    u.cached_text_tokens = std::min(cached, text);
    u.cached_image_tokens = std::min(cached - u.cached_text_tokens, image);
    u.input_text_tokens = text - u.cached_text_tokens;
    u.input_image_tokens = image - u.cached_image_tokens;
}

// Output tokens of which `image` (at most all) are image tokens, the rest text.
void split_output(Usage& u, std::int64_t total, std::int64_t image) {
    u.output_image_tokens = std::min(image, total);
    u.output_text_tokens = total - u.output_image_tokens;
}

// OpenAI Images: input_tokens (+ details text/image, cached), output_tokens (+ details).
Usage openai_images(const json::object& o) {
    Usage u;
    u.reported = true;
    const std::int64_t input = count(o, "input_tokens").value_or(0);
    const std::int64_t output = count(o, "output_tokens").value_or(0);
    std::int64_t text = input, image = 0, cached = 0;
    if (const auto* d = object(o, "input_tokens_details")) {
        const auto t = count(*d, "text_tokens");
        const auto i = count(*d, "image_tokens");
        if (t || i) {
            image = i.value_or(0);
            text = t ? *t : clamp_sub(input, image);
        }
        cached = count(*d, "cached_tokens").value_or(0);
    }
    // Cached tokens are part of the counts above.
    split_input(u, text, image, cached);
    u.output_image_tokens = output;
    if (const auto* d = object(o, "output_tokens_details")) {
        const auto i = count(*d, "image_tokens");
        const auto t = count(*d, "text_tokens");
        if (i || t) {
            u.output_image_tokens = i ? *i : clamp_sub(output, t.value_or(0));
            u.output_text_tokens = t ? *t : clamp_sub(output, u.output_image_tokens);
        }
    }
    return u;
}

// OpenAI chat completions (relays): prompt_tokens, completion_tokens.
Usage openai_chat(const json::object& o) {
    Usage u;
    u.reported = true;
    const std::int64_t prompt = count(o, "prompt_tokens").value_or(0);
    const std::int64_t completion = count(o, "completion_tokens").value_or(0);
    std::int64_t text = prompt, image = 0, cached = 0;
    if (const auto* d = object(o, "prompt_tokens_details")) {
        image = std::min(count(*d, "image_tokens").value_or(0), prompt);
        text = count(*d, "text_tokens").value_or(prompt - image);
        cached = count(*d, "cached_tokens").value_or(0);
    }
    split_input(u, text, image, cached);
    u.output_text_tokens = completion;
    if (const auto* d = object(o, "completion_tokens_details")) {
        if (const auto i = count(*d, "image_tokens")) split_output(u, completion, *i);
    }
    return u;
}

// Gemini [{modality, tokenCount}] lists: the tokens of one modality, nullopt without a list.
std::optional<std::int64_t> modality(const json::object& o, std::string_view list,
                                     std::string_view which) {
    const auto* v = o.if_contains(list);
    if (!v || !v->is_array()) return std::nullopt;
    std::int64_t sum = 0;
    for (const auto& e : v->get_array()) {
        if (!e.is_object()) continue;
        const auto* m = e.get_object().if_contains("modality");
        if (m && m->is_string() && m->get_string() == which)
            sum += count(e.get_object(), "tokenCount").value_or(0);
    }
    return sum;
}

// Gemini usageMetadata.
Usage gemini(const json::object& o) {
    Usage u;
    u.reported = true;
    const std::int64_t prompt = count(o, "promptTokenCount").value_or(0);
    const std::int64_t candidates = count(o, "candidatesTokenCount").value_or(0);
    const std::int64_t thoughts = count(o, "thoughtsTokenCount").value_or(0);
    const std::int64_t cached = std::min(count(o, "cachedContentTokenCount").value_or(0), prompt);
    std::int64_t image_in =
        std::min(modality(o, "promptTokensDetails", "IMAGE").value_or(0), prompt);
    std::int64_t text_in = prompt - image_in;
    // Cached content is part of promptTokenCount.
    split_input(u, text_in, image_in, cached);
    // Without a list by modality, candidates count as image tokens.
    split_output(u, candidates,
                 modality(o, "candidatesTokensDetails", "IMAGE").value_or(candidates));
    u.output_text_tokens += thoughts;
    return u;
}

}  // namespace

Usage normalize_usage(const json::object& usage) {
    if (usage.contains("promptTokenCount") || usage.contains("candidatesTokenCount"))
        return gemini(usage);
    if (usage.contains("input_tokens") || usage.contains("output_tokens"))
        return openai_images(usage);
    if (usage.contains("prompt_tokens") || usage.contains("completion_tokens"))
        return openai_chat(usage);
    return {};
}

Usage normalize_usage_json(std::string_view usage_json) {
    if (usage_json.empty()) return {};
    boost::system::error_code ec;
    auto v = json::parse(usage_json, ec);
    if (ec || !v.is_object()) return {};
    return normalize_usage(v.get_object());
}

}  // namespace imgbatch::jobs
