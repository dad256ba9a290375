#include "jobs/attempt_cost.hpp"

#include "jobs/retry_policy.hpp"

namespace imgbatch::jobs {

std::optional<bool> billed_by(const std::optional<Error>& error, int images) {
    if (images > 0 || !error) return true;
    const bool answered = error->http_status >= 200 && error->http_status <= 299;
    switch (error->cls) {
        case ErrorClass::partial:
            return true;
        case ErrorClass::timeout:
            return may_be_billed(*error);
        case ErrorClass::network:
            // Sent, then cut off: the provider may have done (and billed) the work. A failure
            // to resolve, connect, set up TLS or write never reached it.
            if (error->code == "response_too_large" || error->code == kAfterSend) return true;
            if (error->message.find("closed before the end of the answer") != std::string::npos ||
                error->message.find("closed the connection without an answer") !=
                    std::string::npos ||
                error->message.starts_with("read from"))
                return true;
            return false;
        case ErrorClass::moderation:
        case ErrorClass::bad_response:
            // A 2xx answer (Gemini's filtered candidates, an answer without usable images) was
            // generated; a 4xx refusal was not.
            if (answered) return true;
            if (error->http_status >= 400) return false;
            return std::nullopt;
        case ErrorClass::local:
            // The answer came and the disk refused its images.
            return error->code == "returned" ? std::optional<bool>(false) : true;
        case ErrorClass::rate_limited:
        case ErrorClass::server:
        case ErrorClass::invalid_request:
        case ErrorClass::auth:
        case ErrorClass::quota:
            return false;
    }
    return std::nullopt;
}

void price_completion(Completion& c, const Price* price, const AttemptAsk& ask) {
    const int images = static_cast<int>(c.outputs.size());
    c.usage = normalize_usage_json(c.usage_json);
    // Given back unsent (a stop): nothing was billed.
    c.billed = c.next == Next::returned && !c.error && images == 0 ? std::optional<bool>(false)
                                                                   : billed_by(c.error, images);
    c.cost_usd.reset();
    c.cost_basis = CostBasis::unknown;
    c.cost_estimated = false;
    if (c.billed == false) {
        c.cost_usd = 0.0;
        c.cost_basis = CostBasis::not_billed;
        return;
    }
    if (!price) return;
    const Cost cost = cost_usd(*price, c.usage, images, ask.params, ask.batch);
    // An answer without images (a timeout, a cut-off answer, a filtered one) and without usage
    // says nothing of what was billed: its worst case stands in.
    const bool silent = !c.usage.reported && images == 0 && cost.basis != CostBasis::per_call;
    if (cost.usd && !silent) {
        c.cost_usd = cost.usd;
        c.cost_basis = cost.basis;
        c.cost_estimated = cost.estimated;
        return;
    }
    const Projection p = project_usd(*price, ask.n, ask.params, ask.prompt_bytes, ask.batch);
    if (p.worst) {
        c.cost_usd = p.worst;
        c.cost_basis = p.basis;
        c.cost_estimated = true;
    }
}

}  // namespace imgbatch::jobs
