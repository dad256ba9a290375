#include "daemon/cost.hpp"

#include <boost/json/parse.hpp>
#include <cmath>
#include <cstdio>

namespace imgbatch::daemon {

jobs::Projection project_request(const Config& config, std::string_view provider,
                                 std::string_view model, const boost::json::object& params, int n,
                                 std::size_t prompt_bytes) {
    for (const auto& p : config.providers) {
        if (p.name != provider) continue;
        const jobs::Price* price = price_of(config, p, model);
        if (!price) return {};
        return jobs::project_usd(*price, n, jobs::price_params(params), prompt_bytes,
                                 p.mode == "batch");
    }
    return {};
}

jobs::QueuedPricer queued_pricer(const Config& config) {
    return [&config](const jobs::QueuedGroup& g) {
        boost::system::error_code ec;
        auto v = boost::json::parse(g.params_json.empty() ? "{}" : g.params_json, ec);
        const boost::json::object params =
            !ec && v.is_object() ? v.get_object() : boost::json::object{};
        return project_request(config, g.provider, g.model, params, g.n,
                               static_cast<std::size_t>(g.prompt_bytes));
    };
}

std::string format_usd(double usd) {
    char buf[64];
    if (!std::isfinite(usd)) return "-";
    const double a = std::fabs(usd);
    if (a > 0 && a < 0.995) {
        std::snprintf(buf, sizeof buf, "$%.4f", usd);
        return buf;
    }
    std::snprintf(buf, sizeof buf, "%.2f", a);
    std::string digits = buf;  // "1234.50"
    const auto dot = digits.find('.');
    std::string whole = digits.substr(0, dot);
    for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(i, ",");
    return std::string(usd < 0 ? "-$" : "$") + whole + digits.substr(dot);
}

}  // namespace imgbatch::daemon
