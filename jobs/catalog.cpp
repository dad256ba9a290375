#include "jobs/catalog.hpp"

#include "jobs/catalog_data.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <climits>
#include <cstdint>
#include <ctime>
#include <stdexcept>

namespace imgbatch::jobs {
namespace {

using Strings = std::vector<std::string>;

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

void apply_free_rules(const boost::json::object& o, std::string_view model, FreeSizeRules& r) {
    for (const auto& [k, v] : o) {
        const std::string field = "free_size." + std::string(k);
        if (k == "multiple")
            r.multiple = int_of(v, model, field, 1);
        else if (k == "max_ratio")
            r.max_ratio = int_of(v, model, field, 1);
        else if (k == "max_long")
            r.max_long = int_of(v, model, field, 1);
        else if (k == "max_short")
            r.max_short = int_of(v, model, field, 1);
        else if (k == "min_pixels")
            r.min_pixels = int_of(v, model, field, 0);
        else if (k == "max_pixels")
            r.max_pixels = int_of(v, model, field, 1);
        else
            bad(model, field,
                "unknown rule (known: multiple, max_ratio, max_long, max_short, min_pixels, "
                "max_pixels)");
    }
    if (r.max_short > r.max_long)
        bad(model, "free_size.max_short", "must be <= free_size.max_long");
    if (r.min_pixels > r.max_pixels)
        bad(model, "free_size.min_pixels", "must be <= free_size.max_pixels");
}

}  // namespace

std::string_view to_string(ModelStatus s) {
    switch (s) {
        case ModelStatus::active:
            return "active";
        case ModelStatus::deprecated:
            return "deprecated";
        case ModelStatus::retired:
            return "retired";
    }
    return "active";
}

bool is_iso_date(std::string_view s) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (s[i] < '0' || s[i] > '9') return false;
    const int year = std::stoi(std::string(s.substr(0, 4)));
    const int month = (s[5] - '0') * 10 + (s[6] - '0');
    const int day = (s[8] - '0') * 10 + (s[9] - '0');
    if (month < 1 || month > 12 || day < 1) return false;
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

std::string today_utc() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

Lifecycle lifecycle_on(const ModelInfo& m, std::string_view today) {
    Lifecycle l;
    l.replacement = m.replacement;
    l.note = m.note;
    // ISO dates compare as strings.
    switch (m.status) {
        case ModelStatus::active:
            break;
        case ModelStatus::deprecated:
            l.date = m.shutdown;
            l.status = !m.shutdown.empty() && m.shutdown <= today ? ModelStatus::retired
                                                                  : ModelStatus::deprecated;
            break;
        case ModelStatus::retired:
            l.date = m.retired;
            l.status = !m.retired.empty() && m.retired > today ? ModelStatus::deprecated
                                                               : ModelStatus::retired;
            break;
    }
    return l;
}

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
    // Parsed once; every caller gets its own copy to override.
    static const Catalog parsed = from_json(builtin_catalog_json(), "built-in catalog");
    return parsed;
}

Catalog Catalog::from_json(std::string_view text, const std::string& source) {
    boost::json::parse_options opt;
    opt.allow_comments = true;
    opt.allow_trailing_commas = true;
    boost::json::error_code ec;
    auto root = boost::json::parse(text, ec, {}, opt);
    if (ec) throw std::invalid_argument(source + ": not valid JSON: " + ec.message());
    if (!root.is_object())
        throw std::invalid_argument(source + ": must be a JSON object, got " + shown(root));
    const auto& o = root.get_object();
    for (const auto& [k, v] : o) {
        if (k == "//") continue;  // a comment
        if (k == "format") {
            if (!v.is_int64() || v.get_int64() != 1)
                throw std::invalid_argument(source + ": format: must be 1, got " + shown(v));
        } else if (k == "prices_as_of" || k == "prices_source") {
            if (!v.is_string())
                throw std::invalid_argument(source + ": " + std::string(k) +
                                            ": must be a string, got " + shown(v));
            if (k == "prices_as_of" && !is_iso_date(v.get_string()))
                throw std::invalid_argument(source +
                                            ": prices_as_of: must be a date YYYY-MM-DD, "
                                            "got " +
                                            shown(v));
        } else if (k != "models") {
            throw std::invalid_argument(source + ": unknown key '" + std::string(k) +
                                        "' (known: format, prices_as_of, prices_source, models)");
        }
    }
    const auto* models = o.if_contains("models");
    if (!models || !models->is_object())
        throw std::invalid_argument(source + ": models: required, an object of models");
    Catalog c;
    if (const auto* d = o.if_contains("prices_as_of")) c.prices_as_of_ = d->get_string();
    if (const auto* d = o.if_contains("prices_source")) c.prices_source_ = d->get_string();
    try {
        c.apply(models->get_object(), true);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(source + ": " + e.what());
    }
    return c;
}

void Catalog::apply_config(const boost::json::object& models) {
    apply(models, false);
}

void Catalog::apply(const boost::json::object& models, bool from_file) {
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
            if (from_file)
                throw std::invalid_argument("models." + name + ": repeats a model above");
            m = *existing;
        } else if (from_file) {
            if (!cfg.contains("family")) bad(name, "family", "required for a new model");
            m.max_per_request = 1;
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
            } else if (f == "api") {
                m.api = string_of(fv, name, f);
            } else if (f == "open") {
                if (!fv.is_bool()) bad(name, f, "must be true or false, got " + shown(fv));
                m.open = fv.get_bool();
            } else if (f == "prompt_note") {
                m.prompt_note = string_of(fv, name, f);
            } else if (f == "status") {
                auto st = string_of(fv, name, f);
                if (st == "active")
                    m.status = ModelStatus::active;
                else if (st == "deprecated")
                    m.status = ModelStatus::deprecated;
                else if (st == "retired")
                    m.status = ModelStatus::retired;
                else
                    bad(name, f, "must be active, deprecated or retired, got " + shown(fv));
            } else if (f == "shutdown" || f == "retired") {
                auto day = string_of(fv, name, f);
                if (!day.empty() && !is_iso_date(day))
                    bad(name, f, "must be a date YYYY-MM-DD, got " + shown(fv));
                (f == "shutdown" ? m.shutdown : m.retired) = std::move(day);
            } else if (f == "replacement") {
                m.replacement = string_of(fv, name, f);
            } else if (f == "note") {
                m.note = string_of(fv, name, f);
            } else if (f == "max_per_request") {
                m.max_per_request = int_of(fv, name, f, 1);
            } else if (f == "sizes") {
                m.sizes = strings_of(fv, name, f);
            } else if (f == "free_size") {
                if (fv.is_bool()) {
                    m.free_size = fv.get_bool();
                } else if (fv.is_object()) {
                    m.free_size = true;
                    apply_free_rules(fv.get_object(), name, m.free_rules);
                } else {
                    bad(name, f, "must be true, false or an object of rules, got " + shown(fv));
                }
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
            } else if (f == "prices") {
                // null removes the price (a model whose cost is not known).
                if (fv.is_null())
                    m.price.reset();
                else
                    m.price = parse_price(fv, "models." + name + ".prices");
            } else {
                bad(name, f,
                    "unknown field (known: family, api, like, open, max_per_request, sizes, "
                    "free_size, aspect_ratios, image_sizes, prompt_limit, prompt_note, enums, "
                    "int_ranges, status, shutdown, retired, replacement, note, prices)");
            }
        }
        models_[name] = std::move(m);
    }
    // Replacements may name models further down: checked once everything is in.
    for (const auto& [key, val] : models) {
        const auto* m = find(key);
        if (m && !m->replacement.empty() && !find(m->replacement))
            bad(key, "replacement", "unknown model '" + m->replacement + "'");
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
