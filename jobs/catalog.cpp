#include "jobs/catalog.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <climits>
#include <cstdint>
#include <stdexcept>

namespace imgbatch::jobs {
namespace {

using Strings = std::vector<std::string>;

ModelInfo gpt_image(std::string name) {
    ModelInfo m;
    m.name = std::move(name);
    m.family = "gpt-image";
    m.max_per_request = 10;
    m.sizes = {"auto", "1024x1024", "1536x1024", "1024x1536"};
    m.prompt_limit = 32000;
    m.enums = {{"quality", {"low", "medium", "high", "auto"}},
               {"background", {"transparent", "opaque", "auto"}},
               {"moderation", {"low", "auto"}},
               {"output_format", {"png", "jpeg", "webp"}}};
    m.int_ranges = {{"output_compression", {0, 100}}};
    return m;
}

// Relays in front of sora_image / flux-kontext-pro refuse an explicit size "auto" (seed 003).
ModelInfo relay(std::string name) {
    ModelInfo m;
    m.name = std::move(name);
    m.family = "relay";
    m.max_per_request = 1;
    m.sizes = {"1024x1024", "1536x1024", "1024x1536"};
    m.prompt_limit = 32000;
    m.enums = {{"quality", {"low", "medium", "high"}},
               {"background", {"transparent", "opaque", "auto"}}};
    return m;
}

// Imagen's documented limit is about 480 tokens; at ~4 characters a token that is 1920.
ModelInfo imagen(std::string name, bool ultra, bool image_size) {
    ModelInfo m;
    m.name = std::move(name);
    m.family = ultra ? "imagen-ultra" : "imagen";
    m.max_per_request = ultra ? 1 : 4;
    m.aspect_ratios = {"1:1", "3:4", "4:3", "9:16", "16:9"};
    if (image_size) m.image_sizes = {"1K", "2K"};
    m.prompt_limit = 1920;
    m.prompt_note = "Imagen takes about 480 tokens, counted as 1920 characters";
    m.enums = {{"person_generation", {"dont_allow", "allow_adult", "allow_all"}}};
    return m;
}

// Gemini image models ("Nano Banana", generateContent): one image per call, aspect ratios of
// imageConfig; image_size only where the model has it.
ModelInfo gemini_image(std::string name, bool image_size) {
    ModelInfo m;
    m.name = std::move(name);
    m.family = "gemini-image";
    m.max_per_request = 1;
    m.aspect_ratios = {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"};
    if (image_size) m.image_sizes = {"1K", "2K", "4K"};
    m.prompt_limit = 32000;
    return m;
}

[[noreturn]] void bad(std::string_view model, std::string_view field, const std::string& what) {
    throw std::invalid_argument("models." + std::string(model) + "." + std::string(field) + ": " +
                                what);
}

std::string shown(const boost::json::value& v) {
    return boost::json::serialize(v);
}

int int_of(const boost::json::value& v, std::string_view model, std::string_view field,
           std::int64_t lo) {
    if (!v.is_int64() && !v.is_uint64()) bad(model, field, "must be an integer, got " + shown(v));
    auto x = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
    if (v.is_uint64() && v.get_uint64() > INT32_MAX) x = INT64_MAX;
    if (x < lo || x > INT32_MAX)
        bad(model, field, "must be an integer >= " + std::to_string(lo) + ", got " + shown(v));
    return static_cast<int>(x);
}

Strings strings_of(const boost::json::value& v, std::string_view model, std::string_view field) {
    if (!v.is_array()) bad(model, field, "must be an array of strings, got " + shown(v));
    Strings out;
    for (const auto& e : v.get_array()) {
        if (!e.is_string()) bad(model, field, "must be an array of strings, got " + shown(v));
        out.emplace_back(e.get_string());
    }
    return out;
}

std::string string_of(const boost::json::value& v, std::string_view model, std::string_view field) {
    if (!v.is_string()) bad(model, field, "must be a string, got " + shown(v));
    return std::string(v.get_string());
}

}  // namespace

const std::vector<std::string>& generation_fields() {
    static const std::vector<std::string> fields{
        "size",       "aspect_ratio",     "quality",       "style",
        "background", "moderation",       "output_format", "output_compression",
        "image_size", "person_generation"};
    return fields;
}

bool is_generation_field(std::string_view name) {
    const auto& f = generation_fields();
    return std::find(f.begin(), f.end(), name) != f.end();
}

Catalog Catalog::builtin() {
    Catalog c;
    auto add = [&c](ModelInfo m) { c.models_[m.name] = std::move(m); };

    ModelInfo d2;
    d2.name = "dall-e-2";
    d2.family = "dall-e-2";
    d2.max_per_request = 10;
    d2.sizes = {"256x256", "512x512", "1024x1024"};
    d2.prompt_limit = 1000;
    d2.enums = {{"quality", {"standard"}}};
    add(d2);

    ModelInfo d3;
    d3.name = "dall-e-3";
    d3.family = "dall-e-3";
    d3.max_per_request = 1;
    d3.sizes = {"1024x1024", "1792x1024", "1024x1792"};
    d3.prompt_limit = 4000;
    d3.enums = {{"quality", {"standard", "hd"}}, {"style", {"vivid", "natural"}}};
    add(d3);

    for (const char* name : {"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"})
        add(gpt_image(name));
    // gpt-image-2 and its dated snapshots share its rules.
    for (const char* name : {"gpt-image-2", "gpt-image-2-2026-04-21"}) {
        ModelInfo g2 = gpt_image(name);
        g2.family = "gpt-image-2";
        g2.free_size = true;
        add(g2);
    }

    for (const char* name : {"sora_image", "flux-kontext-pro"}) add(relay(name));

    add(imagen("imagen-3.0-generate-002", false, false));
    for (const char* name :
         {"imagen-4.0-generate-001", "imagen-4.0-fast-generate-001",
          "imagen-4.0-generate-preview-05-20", "imagen-4.0-generate-preview-06-06"})
        add(imagen(name, false, true));
    for (const char* name : {"imagen-4.0-ultra-generate-001", "imagen-4.0-ultra-generate-exp-05-20",
                             "imagen-4.0-ultra-generate-preview-06-06"})
        add(imagen(name, true, true));

    add(gemini_image("gemini-2.5-flash-image", false));
    add(gemini_image("gemini-3-pro-image-preview", true));
    // 3.1 Flash adds a 512 px size and the extreme ratios.
    ModelInfo flash31 = gemini_image("gemini-3.1-flash-image-preview", true);
    flash31.image_sizes.insert(flash31.image_sizes.begin(), "512");
    for (const char* r : {"1:4", "4:1", "1:8", "8:1"}) flash31.aspect_ratios.emplace_back(r);
    add(flash31);
    return c;
}

void Catalog::apply_config(const boost::json::object& models) {
    for (const auto& [key, val] : models) {
        const std::string name(key);
        if (name.empty()) throw std::invalid_argument("models: a model name is empty");
        if (!val.is_object())
            throw std::invalid_argument("models." + name + ": must be an object, got " +
                                        shown(val));
        const auto& cfg = val.get_object();

        // Start from the existing entry, from "like", or from an open custom model.
        ModelInfo m;
        if (const auto* like = cfg.if_contains("like")) {
            auto other = string_of(*like, name, "like");
            const auto* base = find(other);
            if (!base) bad(name, "like", "unknown model '" + other + "'");
            m = *base;
        } else if (const auto* existing = find(name)) {
            m = *existing;
        } else {
            m.family = "custom";
            m.max_per_request = 1;
            m.open = true;
        }
        m.name = name;

        for (const auto& [fk, fv] : cfg) {
            const std::string_view f = fk;
            if (f == "like") {
                continue;
            } else if (f == "family") {
                m.family = string_of(fv, name, f);
            } else if (f == "max_per_request") {
                m.max_per_request = int_of(fv, name, f, 1);
            } else if (f == "sizes") {
                m.sizes = strings_of(fv, name, f);
            } else if (f == "free_size") {
                if (!fv.is_bool()) bad(name, f, "must be true or false, got " + shown(fv));
                m.free_size = fv.get_bool();
            } else if (f == "aspect_ratios") {
                m.aspect_ratios = strings_of(fv, name, f);
            } else if (f == "image_sizes") {
                m.image_sizes = strings_of(fv, name, f);
            } else if (f == "prompt_limit") {
                m.prompt_limit = static_cast<std::size_t>(int_of(fv, name, f, 1));
                m.prompt_note.clear();
            } else if (f == "enums") {
                if (!fv.is_object()) bad(name, f, "must be an object of arrays, got " + shown(fv));
                // Per parameter: the list replaces the old one; an empty list removes it.
                for (const auto& [p, list] : fv.get_object()) {
                    auto values = strings_of(list, name, "enums." + std::string(p));
                    if (values.empty())
                        m.enums.erase(std::string(p));
                    else
                        m.enums[std::string(p)] = std::move(values);
                }
            } else if (f == "int_ranges") {
                if (!fv.is_object())
                    bad(name, f, "must be an object of [lo, hi], got " + shown(fv));
                for (const auto& [p, range] : fv.get_object()) {
                    const std::string field = "int_ranges." + std::string(p);
                    if (!range.is_array() || range.get_array().size() != 2)
                        bad(name, field, "must be [lo, hi], got " + shown(range));
                    const auto& a = range.get_array();
                    int lo = int_of(a[0], name, field, INT32_MIN);
                    int hi = int_of(a[1], name, field, INT32_MIN);
                    if (lo > hi) bad(name, field, "lo must be <= hi, got " + shown(range));
                    m.int_ranges[std::string(p)] = {lo, hi};
                }
            } else {
                bad(name, f,
                    "unknown field (known: family, like, max_per_request, sizes, free_size, "
                    "aspect_ratios, image_sizes, prompt_limit, enums, int_ranges)");
            }
        }
        models_[name] = std::move(m);
    }
}

const ModelInfo* Catalog::find(std::string_view model) const {
    auto it = models_.find(model);
    return it == models_.end() ? nullptr : &it->second;
}

std::vector<std::string> Catalog::names() const {
    std::vector<std::string> out;
    out.reserve(models_.size());
    for (const auto& [name, m] : models_) out.push_back(name);
    return out;
}

}  // namespace imgbatch::jobs
