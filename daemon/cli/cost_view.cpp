#include "daemon/cli/cost_view.hpp"

#include <cmath>
#include <cstdio>

#include "daemon/cost.hpp"

namespace imgbatch::daemon::cli {

namespace json = boost::json;

namespace {
double rounded(double usd) {
    return std::round(usd * 1e9) / 1e9;
}
std::string plural(std::int64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}
}  // namespace

json::value usd_json(std::optional<double> usd) {
    if (!usd || !std::isfinite(*usd)) return nullptr;
    return rounded(*usd);
}

std::string usd_cell(std::optional<double> usd) {
    if (!usd || !std::isfinite(*usd)) return {};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", rounded(*usd));
    return buf;
}

json::object spend_json(const jobs::Spend& s) {
    return json::object{{"usd", usd_json(s.usd)},
                        {"billed_attempts", s.billed_attempts},
                        {"unpriced_attempts", s.unpriced},
                        {"estimated_attempts", s.estimated}};
}

json::object projection_json(const jobs::QueuedCost& q) {
    return json::object{{"worst_usd", usd_json(q.worst_usd)},
                        {"typical_usd", usd_json(q.typical_usd)},
                        {"requests", q.requests},
                        {"unpriced_requests", q.unpriced}};
}

jobs::SpendFilter batch_filter(const std::string& batch) {
    jobs::SpendFilter f;
    f.batch = batch;
    return f;
}

std::string spend_text(const jobs::Spend& s, const jobs::QueuedCost& q) {
    std::string out = "spend: " + format_usd(s.usd) + " (" +
                      plural(s.billed_attempts, "billed attempt", "billed attempts");
    if (s.estimated > 0)
        out += ", " + std::to_string(s.estimated) + " at their worst case (no usage reported)";
    if (s.unpriced > 0) out += ", " + std::to_string(s.unpriced) + " of unknown cost (no price)";
    out += ")\n";
    if (q.requests > 0) {
        out += "projected: " + format_usd(q.worst_usd) + " worst case, " +
               format_usd(q.typical_usd) + " typical for " +
               plural(q.requests, "request", "requests") + " queued or running";
        if (q.unpriced > 0) out += " (" + std::to_string(q.unpriced) + " without a price)";
        out += "\n";
    }
    return out;
}

}  // namespace imgbatch::daemon::cli
