#include "jobs/validate.hpp"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdint>
#include <limits>

#include "jobs/text.hpp"

namespace imgbatch::jobs {
namespace {

constexpr int kMaxImagesPerJob = 10000;

bool contains(const std::vector<std::string>& list, std::string_view v) {
    return std::find(list.begin(), list.end(), v) != list.end();
}

std::string field(std::string_view name) {
    return "field '" + std::string(name) + "': ";
}

std::string shown(const boost::json::value& v) {
    return boost::json::serialize(v);
}

// One side of "WxH": an integer, saturated at LONG_MAX / LONG_MIN when it has too many digits
// (it is then too large or too small all the same). nullopt for anything but an integer.
std::optional<long> parse_side(std::string_view s) {
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (p != s.data() + s.size()) return std::nullopt;
    if (ec == std::errc::result_out_of_range)
        return s.front() == '-' ? std::numeric_limits<long>::min()
                                : std::numeric_limits<long>::max();
    if (ec != std::errc{}) return std::nullopt;
    return v;
}

// Parses "WxH" made of integers only; nullopt for anything else.
std::optional<std::pair<long, long>> parse_wxh(std::string_view s) {
    auto x = s.find('x');
    if (x == std::string_view::npos || x == 0 || x + 1 == s.size()) return std::nullopt;
    auto w = parse_side(s.substr(0, x));
    auto h = parse_side(s.substr(x + 1));
    if (!w || !h) return std::nullopt;
    return std::pair{*w, *h};
}

// gpt-image-2's free sizes; returns the rule broken, or empty. The bounds are checked before
// the ratio and the pixels, so nothing is multiplied past them.
std::string free_size_rule_broken(const FreeSizeRules& r, long w, long h) {
    const auto n = [](long v) { return std::to_string(v); };
    if (w <= 0 || h <= 0) return "width and height must be positive";
    const long lo = std::min(w, h), hi = std::max(w, h);
    if (hi > r.max_long || lo > r.max_short)
        return "at most " + n(r.max_long) + "x" + n(r.max_short) + " (long side at most " +
               n(r.max_long) + ", short side at most " + n(r.max_short) + ")";
    if (w % r.multiple != 0 || h % r.multiple != 0)
        return "width and height must both be multiples of " + n(r.multiple);
    if (hi > r.max_ratio * lo)
        return "the long side may be at most " + n(r.max_ratio) + " times the short side (" +
               n(r.max_ratio) + ":1)";
    if (w * h < r.min_pixels)
        return n(w * h) + " pixels; at least " + n(r.min_pixels) + " (e.g. 1024x640)";
    if (w * h > r.max_pixels) return n(w * h) + " pixels; at most " + n(r.max_pixels);
    return {};
}

std::string free_size_rules(const FreeSizeRules& r) {
    return "or WxH: multiples of " + std::to_string(r.multiple) + ", long:short at most " +
           std::to_string(r.max_ratio) + ":1, at most " + std::to_string(r.max_long) + "x" +
           std::to_string(r.max_short) + ", " + std::to_string(r.min_pixels) + " to " +
           std::to_string(r.max_pixels) + " pixels";
}

std::string check_size(const ModelInfo& m, const boost::json::value& v) {
    if (!v.is_string()) return field("size") + "must be a string, got " + shown(v);
    const std::string_view s = v.get_string();
    if (contains(m.sizes, s)) return {};
    std::string allowed = join(m.sizes);
    if (m.free_size) {
        allowed += (allowed.empty() ? "" : ", ") + free_size_rules(m.free_rules);
        if (auto wh = parse_wxh(s)) {
            auto rule = free_size_rule_broken(m.free_rules, wh->first, wh->second);
            if (rule.empty()) return {};
            return field("size") + "'" + std::string(s) + "' is not allowed for " + m.name + ": " +
                   rule;
        }
    }
    return field("size") + "'" + std::string(s) + "' is not allowed for " + m.name +
           " (allowed: " + allowed + ")";
}

std::string check_enum(const ModelInfo& m, std::string_view name,
                       const std::vector<std::string>& allowed, const boost::json::value& v) {
    if (!v.is_string()) return field(name) + "must be a string, got " + shown(v);
    const std::string_view s = v.get_string();
    if (contains(allowed, s)) return {};
    return field(name) + "'" + std::string(s) + "' is not allowed for " + m.name +
           " (allowed: " + join(allowed) + ")";
}

std::string check_range(const ModelInfo& m, std::string_view name, std::pair<int, int> range,
                        const boost::json::value& v) {
    if (!v.is_int64() && !v.is_uint64()) return field(name) + "must be an integer, got " + shown(v);
    const std::int64_t x =
        v.is_int64()
            ? v.get_int64()
            : static_cast<std::int64_t>(std::min<std::uint64_t>(v.get_uint64(), INT64_MAX));
    if (x >= range.first && x <= range.second) return {};
    return field(name) + shown(v) + " is out of range for " + m.name +
           " (allowed: " + std::to_string(range.first) + ".." + std::to_string(range.second) + ")";
}

// Why a parameter the model does not take is refused, with the nearest thing it does take.
std::string not_accepted(const ModelInfo& m, std::string_view name) {
    std::string msg = field(name) + "not accepted by " + m.name;
    if (name == "size" && !m.aspect_ratios.empty())
        msg += " (use aspect_ratio: " + join(m.aspect_ratios) + ")";
    else if (name == "aspect_ratio" && (!m.sizes.empty() || m.free_size))
        msg += " (use size: " + join(m.sizes) + ")";
    return msg;
}

std::string check_param(const ModelInfo& m, std::string_view name, const boost::json::value& v) {
    if (name == "size") {
        if (!m.sizes.empty() || m.free_size) return check_size(m, v);
    } else if (name == "aspect_ratio") {
        if (!m.aspect_ratios.empty()) return check_enum(m, name, m.aspect_ratios, v);
    } else if (name == "image_size") {
        if (!m.image_sizes.empty()) return check_enum(m, name, m.image_sizes, v);
    }
    if (auto it = m.enums.find(std::string(name)); it != m.enums.end())
        return check_enum(m, name, it->second, v);
    if (auto it = m.int_ranges.find(std::string(name)); it != m.int_ranges.end())
        return check_range(m, name, it->second, v);
    // A catalog field the model does not describe; open models let it through.
    if (is_generation_field(name) && !m.open) return not_accepted(m, name);
    return {};
}

ValidationResult failed(std::string msg) {
    ValidationResult r;
    r.error = std::move(msg);
    return r;
}

}  // namespace

std::string lifecycle_message(const ModelInfo& m, const Lifecycle& l) {
    if (l.status == ModelStatus::active) return {};
    std::string msg = "model " + m.name;
    if (l.status == ModelStatus::deprecated)
        msg += " is deprecated" + (l.date.empty() ? "" : ", shuts down " + l.date);
    else
        msg += l.date.empty() ? " is retired" : " was retired on " + l.date;
    if (!l.note.empty()) msg += " (" + l.note + ")";
    if (!l.replacement.empty()) msg += "; use " + l.replacement;
    return msg;
}

ValidationResult validate_job(const JobSpec& job, const Catalog& catalog,
                              const std::vector<ProviderInfo>& providers, std::string_view today) {
    if (job.model.empty()) return failed(field("model") + "required");
    const ModelInfo* m = catalog.find(job.model);
    if (!m)
        return failed(field("model") + "unknown model '" + job.model +
                      "' (known: " + join(catalog.names()) + ")");

    std::vector<std::string> serving;
    for (const auto& p : providers)
        if (contains(p.models, job.model)) serving.push_back(p.name);

    const ProviderInfo* provider = nullptr;
    if (!job.provider.empty()) {
        auto it = std::find_if(providers.begin(), providers.end(),
                               [&](const ProviderInfo& p) { return p.name == job.provider; });
        if (it == providers.end()) {
            std::vector<std::string> names;
            for (const auto& p : providers) names.push_back(p.name);
            return failed(field("provider") + "unknown provider '" + job.provider +
                          "' (configured: " + join(names) + ")");
        }
        if (!contains(it->models, job.model))
            return failed(
                field("provider") + "provider '" + job.provider + "' does not serve '" + job.model +
                "' (" +
                (serving.empty() ? "no configured provider does" : "served by: " + join(serving)) +
                ")");
        provider = &*it;
    } else {
        auto it = std::find_if(providers.begin(), providers.end(), [&](const ProviderInfo& p) {
            return contains(p.models, job.model);
        });
        if (it == providers.end())
            return failed(field("model") + "no configured provider serves '" + job.model + "'");
        provider = &*it;
    }

    std::string warning;
    const std::string day = today.empty() ? today_utc() : std::string(today);
    const Lifecycle life = lifecycle_on(*m, day);
    if (life.status != ModelStatus::active) {
        warning = lifecycle_message(*m, life);
        if (life.status == ModelStatus::retired) {
            if (provider->vendor) {
                ValidationResult r = failed(std::move(warning));
                r.retired = true;
                return r;
            }
            warning += " (provider '" + provider->name + "' is a relay, which may still serve it)";
        }
    }

    if (job.n < 1 || job.n > kMaxImagesPerJob)
        return failed(field("n") + "must be between 1 and " + std::to_string(kMaxImagesPerJob) +
                      ", got " + std::to_string(job.n));

    if (!is_clean_utf8(job.prompt)) return failed(field("prompt") + "not valid UTF-8 text");
    if (trim(job.prompt).empty()) return failed(field("prompt") + "empty");
    if (auto len = utf8_length(job.prompt); len > m->prompt_limit) {
        std::string msg = field("prompt") + std::to_string(len) + " characters; " + m->name +
                          " accepts at most " + std::to_string(m->prompt_limit);
        if (!m->prompt_note.empty()) msg += " (" + m->prompt_note + ")";
        return failed(std::move(msg));
    }

    for (const auto& [name, value] : job.params)
        if (auto err = check_param(*m, name, value); !err.empty()) return failed(std::move(err));

    Validated ok;
    ok.provider = provider->name;
    ok.per_request = m->max_per_request;
    if (provider->max_images_per_request > 0)
        ok.per_request = std::min(ok.per_request, provider->max_images_per_request);
    ok.per_request = std::max(ok.per_request, 1);
    ValidationResult r;
    r.ok = ok;
    r.warning = std::move(warning);
    return r;
}

}  // namespace imgbatch::jobs
