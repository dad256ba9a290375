#include "daemon/cli/estimate.hpp"

#include <boost/json/array.hpp>

#include "daemon/cli/cost_view.hpp"
#include "daemon/cli/format.hpp"
#include "daemon/cost.hpp"

namespace imgbatch::daemon::cli {

namespace json = boost::json;

namespace {

bool has_string(const json::object& params, std::string_view name) {
    const auto* v = params.if_contains(name);
    return v && v->is_string() && !v->get_string().empty();
}

bool free_size(const jobs::Price& price, const std::string& size) {
    if (size.empty() || size == "auto" || size.find('x') == std::string::npos) return false;
    for (const auto& t : {&price.image_tokens, &price.per_image})
        for (const auto& [k, v] : *t)
            if (k.substr(k.find('|') + 1) == size) return false;
    return true;
}

}  // namespace

std::string Estimate::price_source(const ProviderConfig* p, const std::string& model) const {
    if (p && (p->prices.count(model) || p->prices.count("*")))
        return "provider '" + p->name + "' prices (config)";
    std::string s = "catalog prices";
    if (!config_.catalog.prices_as_of().empty()) s += " as of " + config_.catalog.prices_as_of();
    if (!config_.catalog_file.empty()) s += " (" + config_.catalog_file + ")";
    return s;
}

void Estimate::add(const jobs::EnqueueItem& item) {
    const auto& spec = item.spec;
    const ProviderConfig* provider = nullptr;
    for (const auto& p : config_.providers)
        if (p.name == item.provider) provider = &p;
    const jobs::Price* price = provider ? price_of(config_, *provider, spec.model) : nullptr;

    std::lock_guard l(m_);
    Row& row = rows_[{item.provider, spec.model}];
    ++row.jobs;
    row.images += spec.n;
    row.requests += static_cast<std::int64_t>(item.plan.size());
    if (!price) {
        row.unpriced += static_cast<std::int64_t>(item.plan.size());
        row.assumptions.insert(
            "no price for the model at this provider: not estimated (set the "
            "provider's \"prices\")");
        return;
    }
    row.assumptions.insert(price_source(provider, spec.model));
    if (provider->mode == "batch")
        row.assumptions.insert(
            "batch mode: " + std::to_string(static_cast<int>(price->batch_discount * 100 + 0.5)) +
            "% off");
    const auto pp = jobs::price_params(spec.params);
    for (const auto& plan : item.plan) {
        const auto p =
            jobs::project_usd(*price, plan.n, pp, spec.prompt.size(), provider->mode == "batch");
        if (!p.worst) {
            ++row.unpriced;
            continue;
        }
        row.worst += *p.worst;
        row.typical += p.typical.value_or(*p.worst);
        row.basis = std::string(jobs::to_string(p.basis));
    }
    if (price->per_call) {
        row.assumptions.insert("billed per call (request), whatever it returns");
        return;
    }
    const bool tokens = row.basis == "tokens";
    const bool sized = !price->image_tokens.empty() || price->per_image.size() > 1;
    if (sized && !has_string(spec.params, "size") && !has_string(spec.params, "image_size")) {
        if (!price->default_size.empty() && price->default_size != "auto")
            row.assumptions.insert("size not given: the vendor's default " + price->default_size);
        else
            row.assumptions.insert(
                "size not given (auto): worst case the largest listed, typical the median");
    }
    if (free_size(*price, pp.size))
        row.assumptions.insert("free size " + pp.size +
                               ": output scaled from 1024x1024 by pixels (worst case), by their "
                               "square root (typical)");
    bool by_quality = false;
    for (const auto& t : {&price->image_tokens, &price->per_image})
        for (const auto& [k, v] : *t) by_quality = by_quality || k.rfind("*|", 0) != 0;
    if (by_quality && (pp.quality.empty() || pp.quality == "auto")) {
        if (!price->default_quality.empty() && price->default_quality != "auto")
            row.assumptions.insert("quality not given: the vendor's default " +
                                   price->default_quality);
        else
            row.assumptions.insert(
                "quality auto: worst case the highest, typical the median (medium)");
    }
    if (tokens) {
        row.assumptions.insert("output tokens per image from the vendor's size/quality table");
        row.assumptions.insert(
            "prompt tokens: one per byte (worst case), one per 4 bytes "
            "(typical); input images and text output not included");
    } else {
        row.assumptions.insert("priced per image");
    }
}

json::object Estimate::json(const std::optional<jobs::QueuedCost>& queued) const {
    std::lock_guard l(m_);
    json::array rows;
    double worst = 0, typical = 0;
    std::int64_t unpriced = 0;
    for (const auto& [k, r] : rows_) {
        json::array as;
        for (const auto& a : r.assumptions) as.push_back(json::string(a));
        rows.push_back(
            json::object{{"provider", k.first},
                         {"model", k.second},
                         {"jobs", r.jobs},
                         {"images", r.images},
                         {"requests", r.requests},
                         {"worst_usd", usd_json(r.worst)},
                         {"typical_usd", usd_json(r.typical)},
                         {"unpriced_requests", r.unpriced},
                         {"basis", r.basis.empty() ? json::value(nullptr) : json::value(r.basis)},
                         {"assumptions", std::move(as)}});
        worst += r.worst;
        typical += r.typical;
        unpriced += r.unpriced;
    }
    json::object o{{"worst_usd", usd_json(worst)},
                   {"typical_usd", usd_json(typical)},
                   {"unpriced_requests", unpriced},
                   {"prices_as_of", config_.catalog.prices_as_of().empty()
                                        ? json::value(nullptr)
                                        : json::value(config_.catalog.prices_as_of())},
                   {"prices_source", config_.catalog.prices_source()},
                   {"by_model", std::move(rows)}};
    o["batch_budget"] = budget_ ? json::value(budget_json(worst, unpriced)) : json::value(nullptr);
    if (queued) {
        o["queued"] = projection_json(*queued);
        o["total_worst_usd"] = usd_json(worst + queued->worst_usd);
        o["total_typical_usd"] = usd_json(typical + queued->typical_usd);
    }
    return o;
}

std::string Estimate::text(const std::optional<jobs::QueuedCost>& queued) const {
    std::lock_guard l(m_);
    std::vector<std::vector<std::string>> table{
        {"PROVIDER", "MODEL", "JOBS", "IMAGES", "REQUESTS", "TYPICAL", "WORST CASE"}};
    double worst = 0, typical = 0;
    std::int64_t unpriced = 0;
    std::string notes;
    for (const auto& [k, r] : rows_) {
        const bool none = r.unpriced == r.requests;
        table.push_back({k.first, k.second, std::to_string(r.jobs), std::to_string(r.images),
                         std::to_string(r.requests), none ? "-" : format_usd(r.typical),
                         none ? "-" : format_usd(r.worst)});
        worst += r.worst;
        typical += r.typical;
        unpriced += r.unpriced;
        std::string list;
        for (const auto& a : r.assumptions) list += (list.empty() ? "" : "; ") + a;
        notes += "  " + k.first + " " + k.second + ": " + list + "\n";
    }
    std::string out;
    if (rows_.empty()) {
        out = "estimate: nothing to enqueue\n";
    } else {
        table.push_back({"total", "", "", "", "", format_usd(typical), format_usd(worst)});
        out = "estimate (USD):\n" + render_table(table);
        if (unpriced > 0)
            out += std::to_string(unpriced) + " requests without a price are not in the totals\n";
        out += "assumptions:\n" + notes;
    }
    if (queued) {
        out += "already queued or running in the database: " + format_usd(queued->typical_usd) +
               " typical, " + format_usd(queued->worst_usd) + " worst case (" +
               std::to_string(queued->requests) + " requests";
        if (queued->unpriced > 0) out += ", " + std::to_string(queued->unpriced) + " unpriced";
        out += ")\nwith this file: " + format_usd(typical + queued->typical_usd) + " typical, " +
               format_usd(worst + queued->worst_usd) + " worst case\n";
    }
    if (budget_) out += budget_text(worst, unpriced);
    out += "prices go stale: see README \"Prices and spend\" to update them\n";
    return out;
}

bool Estimate::fits(double worst, std::int64_t unpriced) const {
    const auto& b = *budget_;
    // Requests without a price are held under a budget (their worst case is unknown).
    return unpriced == 0 && b.queued_unpriced == 0 &&
           b.spent_usd + b.queued_worst_usd + worst <= b.limit_usd + 1e-9;
}

std::string Estimate::budget_text(double worst, std::int64_t unpriced) const {
    const auto& b = *budget_;
    std::string out = "batch budget: " + format_usd(b.limit_usd) + " (" + b.source + "): spent " +
                      format_usd(b.spent_usd) + ", queued or running " +
                      format_usd(b.queued_worst_usd) + " worst case, this file " +
                      format_usd(worst) + " worst case: ";
    if (fits(worst, unpriced)) return out + "fits\n";
    out += "does not fit";
    if (unpriced + b.queued_unpriced > 0)
        out += " (" + std::to_string(unpriced + b.queued_unpriced) +
               " requests without a price are held under a budget)";
    return out + "; calls stop before one would cross it, the rest stay queued\n";
}

json::object Estimate::budget_json(double worst, std::int64_t unpriced) const {
    const auto& b = *budget_;
    return json::object{{"limit_usd", usd_json(b.limit_usd)},
                        {"source", b.source},
                        {"spent_usd", usd_json(b.spent_usd)},
                        {"queued_worst_usd", usd_json(b.queued_worst_usd)},
                        {"queued_unpriced_requests", b.queued_unpriced},
                        {"worst_usd", usd_json(b.spent_usd + b.queued_worst_usd + worst)},
                        {"fits", fits(worst, unpriced)}};
}

}  // namespace imgbatch::daemon::cli
