#include "jobs/pricing.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <set>
#include <stdexcept>
#include <vector>

namespace imgbatch::jobs {
namespace {

namespace json = boost::json;

[[noreturn]] void bad(const std::string& field, const std::string& what) {
    throw std::invalid_argument(field + ": " + what);
}

double usd_of(const json::value& v, const std::string& field) {
    double x = 0;
    if (v.is_double())
        x = v.get_double();
    else if (v.is_int64())
        x = static_cast<double>(v.get_int64());
    else if (v.is_uint64())
        x = static_cast<double>(v.get_uint64());
    else
        bad(field, "must be a number, got " + json::serialize(v));
    if (!std::isfinite(x) || x < 0) bad(field, "must be a number >= 0, got " + json::serialize(v));
    return x;
}

std::string string_of(const json::value& v, const std::string& field) {
    if (!v.is_string()) bad(field, "must be a string, got " + json::serialize(v));
    return std::string(v.get_string());
}

std::string key(std::string_view quality, std::string_view size) {
    return std::string(quality) + "|" + std::string(size);
}
std::pair<std::string, std::string> split_key(const std::string& k) {
    const auto bar = k.find('|');
    return {k.substr(0, bar), k.substr(bar + 1)};
}

// per_image / image_tokens: a number (any size), {size: number}, {quality: {size: number}}.
void parse_table(const json::value& v, const std::string& field,
                 std::map<std::string, double>& out) {
    out.clear();
    if (!v.is_object()) {
        out[key("*", "*")] = usd_of(v, field);
        return;
    }
    for (const auto& [k, e] : v.get_object()) {
        const std::string f = field + "." + std::string(k);
        if (k.empty()) bad(f, "a key is empty");
        if (e.is_object()) {
            for (const auto& [s, x] : e.get_object()) {
                if (s.empty()) bad(f, "a key is empty");
                out[key(k, s)] = usd_of(x, f + "." + std::string(s));
            }
        } else {
            out[key("*", k)] = usd_of(e, f);
        }
    }
}

json::value table_json(const std::map<std::string, double>& t) {
    if (t.size() == 1 && t.begin()->first == key("*", "*")) return t.begin()->second;
    json::object out;
    for (const auto& [k, v] : t) {
        auto [q, s] = split_key(k);
        if (q == "*") {
            out[s] = v;
        } else {
            auto& inner = out[q];
            if (!inner.is_object()) inner = json::object();
            inner.get_object()[s] = v;
        }
    }
    return out;
}

std::optional<double> exact(const std::map<std::string, double>& t, const std::string& q,
                            const std::string& s) {
    for (const auto& k : {key(q, s), key(q, "*"), key("*", s), key("*", "*")})
        if (auto it = t.find(k); it != t.end()) return it->second;
    return std::nullopt;
}

bool open(const std::string& v) {
    return v.empty() || v == "auto";
}

// Pixels of a "WxH" size, 0 when it is not one.
double pixels(const std::string& size) {
    const auto x = size.find('x');
    if (x == std::string::npos || x == 0 || x + 1 >= size.size()) return 0;
    try {
        std::size_t a = 0, b = 0;
        const long w = std::stol(size.substr(0, x), &a);
        const long h = std::stol(size.substr(x + 1), &b);
        if (a != x || b != size.size() - x - 1 || w <= 0 || h <= 0) return 0;
        return static_cast<double>(w) * static_cast<double>(h);
    } catch (const std::exception&) {
        return 0;
    }
}

struct Range {
    double worst = 0, typical = 0;
    bool exact = false;  // one value: the parameters named it
};

// The value of table t for quality and size (defaults applied): exact when both are named
// and listed; else the range over the qualities or sizes the vendor may choose (a free size
// "WxH" not listed scales the listed ones by its pixels over 1024x1024).
std::optional<Range> lookup(const std::map<std::string, double>& t, const Price& p,
                            const PriceParams& params) {
    if (t.empty()) return std::nullopt;
    std::string q = params.quality.empty() ? p.default_quality : params.quality;
    std::string s = params.size.empty() ? p.default_size : params.size;
    if (!open(q) && !open(s))
        if (auto v = exact(t, q, s)) return Range{*v, *v, true};
    double scale = 0;  // > 0: a free size
    if (!open(s)) {
        bool listed = false;
        for (const auto& [k, v] : t) listed = listed || split_key(k).second == s;
        if (!listed && pixels(s) > 0) {
            scale = pixels(s) / (1024.0 * 1024.0);
            s.clear();
        }
    }
    std::set<std::string> qs, ss;
    for (const auto& [k, v] : t) {
        auto [kq, ks] = split_key(k);
        qs.insert(kq);
        ss.insert(ks);
    }
    if (!open(q)) qs = {q};
    if (!open(s)) ss = {s};
    std::vector<double> values;
    for (const auto& qi : qs)
        for (const auto& si : ss)
            if (auto v = exact(t, qi, si)) values.push_back(*v);
    if (values.empty()) return std::nullopt;
    std::sort(values.begin(), values.end());
    Range r;
    r.worst = values.back();
    r.typical = values[(values.size() - 1) / 2];
    if (scale > 0) {
        // Output tokens grow slower than pixels above 1024x1024 (OpenAI's table: 3584x2048,
        // 7x the pixels, about 1.8x the tokens): the worst case scales with pixels (a bound),
        // the typical with their square root.
        r.worst *= std::max(1.0, scale);
        r.typical *= scale < 1 ? scale : std::sqrt(scale);
    }
    r.exact = values.size() == 1 && scale == 0;
    return r;
}

double factor(const Price& p, bool batch) {
    return batch ? 1.0 - p.batch_discount : 1.0;
}

const std::vector<std::string>& price_fields() {
    static const std::vector<std::string> f{"per_1m",         "image_tokens",   "per_image",
                                            "per_call",       "batch_discount", "default_size",
                                            "default_quality"};
    return f;
}

}  // namespace

Price parse_price(const json::value& v, const std::string& field) {
    if (!v.is_object()) bad(field, "must be an object of prices, got " + json::serialize(v));
    Price p;
    for (const auto& [k, e] : v.get_object()) {
        const std::string f = field + "." + std::string(k);
        if (k == "//") continue;
        if (k == "per_1m") {
            if (!e.is_object()) bad(f, "must be an object of USD per 1M tokens");
            for (const auto& [r, x] : e.get_object()) {
                const std::string rf = f + "." + std::string(r);
                const double usd = usd_of(x, rf);
                if (r == "text_input")
                    p.text_input = usd;
                else if (r == "cached_text_input")
                    p.cached_text_input = usd;
                else if (r == "image_input")
                    p.image_input = usd;
                else if (r == "cached_image_input")
                    p.cached_image_input = usd;
                else if (r == "image_output")
                    p.image_output = usd;
                else if (r == "text_output")
                    p.text_output = usd;
                else
                    bad(rf,
                        "unknown rate (known: text_input, cached_text_input, image_input, "
                        "cached_image_input, image_output, text_output)");
            }
        } else if (k == "image_tokens") {
            parse_table(e, f, p.image_tokens);
        } else if (k == "per_image") {
            parse_table(e, f, p.per_image);
        } else if (k == "per_call") {
            p.per_call = usd_of(e, f);
        } else if (k == "batch_discount") {
            p.batch_discount = usd_of(e, f);
            if (p.batch_discount > 1) bad(f, "must be between 0 and 1, got " + json::serialize(e));
        } else if (k == "default_size") {
            p.default_size = string_of(e, f);
        } else if (k == "default_quality") {
            p.default_quality = string_of(e, f);
        } else {
            bad(f,
                "unknown field (known: per_1m, image_tokens, per_image, per_call, "
                "batch_discount, default_size, default_quality)");
        }
    }
    if (!p.image_tokens.empty() && !p.image_output)
        bad(field + ".image_tokens", "needs per_1m.image_output to price them");
    return p;
}

json::object price_json(const Price& p) {
    json::object o;
    json::object rates;
    auto rate = [&](const char* name, const std::optional<double>& r) {
        if (r) rates[name] = *r;
    };
    rate("text_input", p.text_input);
    rate("cached_text_input", p.cached_text_input);
    rate("image_input", p.image_input);
    rate("cached_image_input", p.cached_image_input);
    rate("image_output", p.image_output);
    rate("text_output", p.text_output);
    if (!rates.empty()) o["per_1m"] = std::move(rates);
    if (!p.image_tokens.empty()) o["image_tokens"] = table_json(p.image_tokens);
    if (!p.per_image.empty()) o["per_image"] = table_json(p.per_image);
    if (p.per_call) o["per_call"] = *p.per_call;
    o["batch_discount"] = p.batch_discount;
    if (!p.default_size.empty()) o["default_size"] = p.default_size;
    if (!p.default_quality.empty()) o["default_quality"] = p.default_quality;
    return o;
}

std::string_view to_string(CostBasis b) {
    switch (b) {
        case CostBasis::unknown:
            return "unknown";
        case CostBasis::tokens:
            return "tokens";
        case CostBasis::per_image:
            return "per_image";
        case CostBasis::per_call:
            return "per_call";
        case CostBasis::not_billed:
            return "not_billed";
    }
    return "unknown";
}

PriceParams price_params(const json::object& params) {
    PriceParams p;
    if (const auto* s = params.if_contains("size"); s && s->is_string())
        p.size = std::string(s->get_string());
    else if (const auto* is = params.if_contains("image_size"); is && is->is_string())
        p.size = std::string(is->get_string());
    if (const auto* q = params.if_contains("quality"); q && q->is_string())
        p.quality = std::string(q->get_string());
    return p;
}

Cost cost_usd(const Price& price, const Usage& usage, int images, const PriceParams& params,
              bool batch) {
    Cost c;
    const double f = factor(price, batch);
    if (price.per_call) {
        c.usd = *price.per_call * f;
        c.basis = CostBasis::per_call;
        return c;
    }
    if (usage.reported && price.has_token_rates()) {
        // Each kind at its rate, or the nearest one the price gives.
        const auto& in = price.text_input;
        const std::optional<double> img_in = price.image_input ? price.image_input : in;
        const std::optional<double> cached_text =
            price.cached_text_input ? price.cached_text_input : in;
        const std::optional<double> cached_img =
            price.cached_image_input ? price.cached_image_input : img_in;
        const std::optional<double> text_out =
            price.text_output ? price.text_output : price.image_output;
        double usd = 0;
        bool ok = true;
        auto add = [&](std::int64_t tokens, const std::optional<double>& rate) {
            if (tokens <= 0) return;
            if (!rate)
                ok = false;
            else
                usd += static_cast<double>(tokens) * *rate / 1e6;
        };
        add(usage.input_text_tokens, in);
        add(usage.input_image_tokens, img_in);
        add(usage.cached_text_tokens, cached_text);
        add(usage.cached_image_tokens, cached_img);
        add(usage.output_image_tokens, price.image_output);
        add(usage.output_text_tokens, text_out);
        if (ok) {
            c.usd = usd * f;
            c.basis = CostBasis::tokens;
            return c;
        }
    }
    if (auto r = lookup(price.per_image, price, params)) {
        c.usd = r->worst * std::max(0, images) * f;
        c.basis = CostBasis::per_image;
        c.estimated = !r->exact && images > 0;
        return c;
    }
    return c;
}

Projection project_usd(const Price& price, int n, const PriceParams& params,
                       std::size_t prompt_bytes, bool batch) {
    Projection p;
    const double f = factor(price, batch);
    n = std::max(n, 1);
    if (price.per_call) {
        p.worst = p.typical = *price.per_call * f;
        p.basis = CostBasis::per_call;
        return p;
    }
    if (price.has_token_rates() && price.text_input) {
        if (auto out = lookup(price.image_tokens, price, params)) {
            // A token is at least one byte; a few tokens of framing. Typically 4 bytes a token.
            const double in_worst = static_cast<double>(prompt_bytes) + 16;
            const double in_typical = static_cast<double>(prompt_bytes) / 4.0 + 6;
            const double rate_in = *price.text_input / 1e6, rate_out = *price.image_output / 1e6;
            p.worst = n * (in_worst * rate_in + out->worst * rate_out) * f;
            p.typical = n * (in_typical * rate_in + out->typical * rate_out) * f;
            p.basis = CostBasis::tokens;
            return p;
        }
    }
    if (auto r = lookup(price.per_image, price, params)) {
        p.worst = r->worst * n * f;
        p.typical = r->typical * n * f;
        p.basis = CostBasis::per_image;
    }
    return p;
}

std::optional<double> worst_case_usd(const Price& price, int n, const PriceParams& params,
                                     std::size_t prompt_bytes, bool batch) {
    return project_usd(price, n, params, prompt_bytes, batch).worst;
}

ProviderPrices parse_provider_prices(const json::value& v, const std::string& field) {
    if (!v.is_object())
        bad(field,
            "must be an object: {\"model\": prices, \"*\": prices}, got " + json::serialize(v));
    const auto& o = v.get_object();
    ProviderPrices out;
    const auto& fields = price_fields();
    const bool one = std::any_of(o.begin(), o.end(), [&](const auto& kv) {
        return std::find(fields.begin(), fields.end(), std::string_view(kv.key())) != fields.end();
    });
    if (one) {
        out["*"] = parse_price(v, field);
        return out;
    }
    for (const auto& [model, p] : o) {
        if (model.empty()) bad(field, "a model name is empty");
        out[std::string(model)] = parse_price(p, field + "." + std::string(model));
    }
    return out;
}

const Price* resolve_price(const ProviderPrices& provider, std::string_view model,
                           const Price* catalog) {
    if (auto it = provider.find(model); it != provider.end()) return &it->second;
    if (auto it = provider.find("*"); it != provider.end()) return &it->second;
    return catalog;
}

}  // namespace imgbatch::jobs
