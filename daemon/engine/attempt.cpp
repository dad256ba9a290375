#include "daemon/engine/attempt.hpp"
#include "daemon/logfmt.hpp"
#include "jobs/attempt_cost.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <chrono>
#include <exception>

#include "daemon/engine/budget_dispatch.hpp"
#include "daemon/image.hpp"
#include "daemon/net/content_coding.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon {
namespace asio = boost::asio;
using jobs::Error;
using jobs::ErrorClass;

CheckedImages check_images(ParsedResponse parsed, int ask, int http_status,
                           const std::optional<jobs::Error>& download_error) {
    CheckedImages out;
    std::string bad;
    for (std::size_t i = 0; i < parsed.images.size(); ++i) {
        auto& item = parsed.images[i];
        if (item.bytes.empty()) {
            // A URL that was not downloaded; without a URL, an entry that decoded to nothing
            // (empty or blank base64) is a bad image, not a missing one.
            if (item.url.empty() && bad.empty())
                bad = "image " + std::to_string(i) + ": no image data";
            continue;
        }
        auto info = sniff_image(item.bytes);
        if (!info) {
            if (bad.empty()) bad = "image " + std::to_string(i) + ": not a PNG, JPEG or WebP";
            continue;
        }
        if (static_cast<int>(out.images.size()) >= ask) continue;
        out.images.push_back(StagedImage{std::move(item.bytes), std::move(*info),
                                         std::move(item.revised_prompt), std::nullopt});
    }
    int got = static_cast<int>(out.images.size());
    if (parsed.error) {
        out.error = std::move(parsed.error);
    } else if (!parsed.item_error.empty() && got < ask) {
        // An entry that could not be decoded: the good ones are kept, the rest asked again.
        out.error = bad_response_error(http_status, "invalid_base64", parsed.item_error);
    } else if (download_error) {
        out.error = download_error;
    } else if (!bad.empty()) {
        out.error = bad_response_error(http_status, "not_image", bad);
    } else if (got == 0 && parsed.filtered > 0) {
        out.error = Error{
            ErrorClass::moderation, "filtered", http_status,
            parsed.filtered_reason.empty() ? "every image was filtered" : parsed.filtered_reason,
            std::nullopt};
    } else if (got == 0) {
        out.error = bad_response_error(http_status, "no_images", "the answer has no images");
    } else if (got < ask) {
        out.error = Error{ErrorClass::partial, "partial", http_status,
                          "got " + std::to_string(got) + " of " + std::to_string(ask) + " images",
                          std::nullopt};
    }
    return out;
}

namespace {

// Records a decision for an attempt that ended with an error.
void apply_decision(AttemptResult& r, const jobs::Decision& d, double finished_at) {
    auto& c = r.completion;
    r.action = d.action;
    r.delay_s = d.delay_s;
    c.count_attempt = c.count_rate_limit = c.count_moderation = c.count_timeout =
        c.count_provider_failure = false;
    switch (d.action) {
        case jobs::Action::retry:
            c.next = jobs::Next::retry;
            c.not_before = finished_at + d.delay_s;
            break;
        case jobs::Action::fail:
            c.next = jobs::Next::fail;
            break;
        case jobs::Action::block:
            c.next = jobs::Next::block;
            break;
        case jobs::Action::pause_provider:
            // The lane is paused: the request waits for the probe, nothing is used up.
            c.next = jobs::Next::retry;
            c.not_before = finished_at;
            return;
        case jobs::Action::pause_local:
            c.next = jobs::Next::retry;
            c.not_before = finished_at + d.delay_s;
            return;
    }
    c.count_attempt = d.counts_attempt;
    c.count_rate_limit = d.counts_rate_limit;
    c.count_moderation = d.counts_moderation;
    c.count_timeout = d.counts_timeout;
    c.count_provider_failure = d.counts_provider_failure;
}

}  // namespace

void price_attempt(jobs::Completion& c, const jobs::Catalog* catalog,
                   const ProviderConfig& provider, const jobs::ClaimedRequest& req, bool batch) {
    const auto* info = catalog ? catalog->find(req.model) : nullptr;
    const jobs::Price* price = jobs::resolve_price(provider.prices, req.model,
                                                   info && info->price ? &*info->price : nullptr);
    jobs::AttemptAsk ask;
    boost::system::error_code ec;
    auto params = boost::json::parse(req.params_json.empty() ? "{}" : req.params_json, ec);
    if (!ec && params.is_object()) ask.params = jobs::price_params(params.get_object());
    ask.n = std::max(1, req.n - req.images_done);
    ask.prompt_bytes = req.prompt.size();
    ask.batch = batch;
    jobs::price_completion(c, price, ask);
}

void share_cost(std::vector<StagedImage>& images, const jobs::Catalog* catalog,
                const ProviderConfig& provider, const jobs::ClaimedRequest& req,
                const std::string& usage_json, const std::optional<jobs::Error>& error,
                bool batch) {
    if (images.empty()) return;
    jobs::Completion c;
    c.usage_json = usage_json;
    c.error = error;
    c.outputs.resize(images.size());
    price_attempt(c, catalog, provider, req, batch);
    for (auto& image : images)
        if (c.cost_usd) image.cost_usd = *c.cost_usd / static_cast<double>(images.size());
}

AttemptResult make_completion(const jobs::ClaimedRequest& req, const std::string& owner,
                              double started_at, double finished_at,
                              std::vector<jobs::OutputRecord> outputs,
                              std::optional<jobs::Error> error, std::string usage_json,
                              const jobs::RetryConfig& retry, double jitter01) {
    AttemptResult r;
    auto& c = r.completion;
    c.request_id = req.request_id;
    c.attempt_no = req.attempt_no;
    c.owner = owner;
    c.started_at = started_at;
    c.finished_at = finished_at;
    c.outputs = std::move(outputs);
    c.usage_json = std::move(usage_json);
    if (!error) {
        c.next = jobs::Next::done;
        c.count_attempt = true;
        r.outcome = "ok";
        return r;
    }
    r.outcome = error->cls == ErrorClass::partial ? "partial" : "error";
    if (jobs::may_be_billed(*error) && error->message.find(kMayBeBilled) == std::string::npos)
        error->message += kMayBeBilled;
    const jobs::RequestCounters counters{req.attempts, req.rate_limited, req.moderation,
                                         req.timeouts, req.provider_failures};
    // A failure that may have been billed is counted like a timeout, never on the breaker's
    // budget: the provider may have done the work.
    if ((error->cls == ErrorClass::server || error->cls == ErrorClass::network) &&
        !jobs::may_be_billed(*error))
        r.if_provider_failure = jobs::decide_provider_failure(*error, counters, retry, jitter01);
    jobs::Decision d = jobs::decide(*error, counters, retry, jitter01);
    c.error = std::move(error);
    apply_decision(r, d, finished_at);
    return r;
}

void blame_provider(AttemptResult& r) {
    if (!r.if_provider_failure || !r.completion.error) return;
    apply_decision(r, *r.if_provider_failure, r.completion.finished_at);
    r.if_provider_failure.reset();
}

namespace {

using SharedImages = std::shared_ptr<const std::vector<StagedImage>>;

// Runs stage() on the writer pool; the result comes back on the caller's executor. The images
// stay with the caller (shared), for another try if this one fails.
asio::awaitable<StageResult> stage_on_pool(EngineShared* s, const jobs::ClaimedRequest& req,
                                           SharedImages images) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(StageResult)>(
        [s](auto handler, jobs::ClaimedRequest r, SharedImages imgs) {
            asio::post(s->writer_pool, [s, h = std::move(handler), r = std::move(r),
                                        imgs = std::move(imgs)]() mutable {
                StageResult result;
                try {
                    result = s->writer.stage(r, *imgs);
                } catch (const std::exception& e) {
                    result.error = Error{ErrorClass::local, "write", 0, e.what(), std::nullopt};
                }
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), result = std::move(result)]() mutable {
                    std::move(h)(std::move(result));
                });
            });
        },
        asio::use_awaitable, jobs::ClaimedRequest(req), std::move(images));
}

bool given_back(EngineShared* s, const jobs::ClaimedRequest& req) {
    auto it = s->in_flight.find(req.request_id);
    return it == s->in_flight.end() || it->second.attempt_no != req.attempt_no ||
           it->second.state == AttemptState::returned;
}

// Stages the images of an answer. When the output directory cannot take them (not writable,
// full) they are paid for all the same: dispatching is held on this machine, the images stay
// in memory (bounded by the calls that were in flight) and are staged again with backoff
// until a write succeeds. Only a stop that gives this request back ends the wait; the images
// are lost then, and the log says so.
asio::awaitable<StageResult> stage_until_kept(EngineShared* s, const jobs::ClaimedRequest& req,
                                              std::vector<StagedImage>&& images) {
    auto held = std::make_shared<const std::vector<StagedImage>>(std::move(images));
    double delay = 0.25;
    bool failing = false;
    asio::steady_timer timer(s->executor);
    for (;;) {
        StageResult r = co_await stage_on_pool(s, req, held);
        if (!r.error) {
            if (failing) s->local_recovered();
            co_return r;
        }
        if (!failing) {
            failing = true;
            s->local_failed(r.error->message);
        }
        if (given_back(s, req)) {
            s->local_recovered();
            spdlog::critical("event=images_lost job={} request={} images={} error={} note={}",
                             req.job_id, req.request_id, held->size(), q(r.error->message),
                             q("the daemon stopped before the output directory took them"));
            co_return r;
        }
        timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(delay)));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        delay = std::min(delay * 2, 5.0);
    }
}

// Decodes an answer: its Content-Encoding, the JSON and the base64 images. The body is freed
// as soon as it is parsed, so that at most the answer and its decoded images are held at once.
ParsedResponse decode_here(const ProviderApi* api, HttpResponse& resp, const GenerationRequest& req,
                           std::size_t max_response_bytes) {
    ParsedResponse parsed;
    try {
        if (auto f = decode_content(resp, max_response_bytes))
            parsed.error = Error{f->cls, f->code, resp.status, f->message, std::nullopt};
        else if (api->parse_owned)
            parsed = api->parse_owned(std::move(resp), req);
        else
            parsed = api->parse(resp, req);
    } catch (const std::exception& e) {
        parsed.images.clear();
        parsed.error = bad_response_error(resp.status, "decode", e.what());
    }
    std::string().swap(resp.body);  // the answer's text is not needed any more
    return parsed;
}

// Answers are decoded on the decode pool, off the network thread. Those up to this size
// without a Content-Encoding (error bodies, image URLs, small images) are decoded on the
// network thread: that takes microseconds, less than the two thread hops to the pool and
// back. A compressed body may inflate far beyond its size, so it always goes to the pool.
constexpr std::size_t kInlineDecodeBytes = 8 * 1024;

asio::awaitable<ParsedResponse> decode_answer(EngineShared* s, const ProviderApi* api,
                                              HttpResponse&& response, const GenerationRequest& g,
                                              std::size_t max_response_bytes) {
    if (response.body.size() <= kInlineDecodeBytes && response.header("content-encoding").empty()) {
        HttpResponse resp = std::move(response);
        co_return decode_here(api, resp, g, max_response_bytes);
    }
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(ParsedResponse)>(
        [s, api, max_response_bytes](auto handler, HttpResponse resp, GenerationRequest req) {
            asio::post(s->decode_pool, [api, max_response_bytes, h = std::move(handler),
                                        resp = std::move(resp), req = std::move(req)]() mutable {
                ParsedResponse parsed = decode_here(api, resp, req, max_response_bytes);
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), parsed = std::move(parsed)]() mutable {
                    std::move(h)(std::move(parsed));
                });
            });
        },
        asio::use_awaitable, std::move(response), GenerationRequest(g));
}

// Provider text that is stored, logged and exported: valid UTF-8 whatever the provider sent.
void make_valid_utf8(std::optional<Error>& error) {
    if (!error) return;
    error->code = valid_utf8(error->code);
    error->message = valid_utf8(error->message);
}

// Downloads image URLs of the answer at once (they expire). Returns the first failure.
asio::awaitable<std::optional<Error>> download_images(ProviderRuntime* p, ParsedResponse* parsed) {
    for (std::size_t i = 0; i < parsed->images.size(); ++i) {
        auto& item = parsed->images[i];
        if (!item.bytes.empty() || item.url.empty()) continue;
        HttpRequest get;
        get.method = "GET";
        get.url = item.url;
        HttpResult res = co_await p->download->send(std::move(get));
        std::string what = "download of image " + std::to_string(i);
        if (auto* f = std::get_if<HttpFailure>(&res))
            co_return Error{f->cls, f->code.empty() ? "download" : f->code, 0,
                            what + ": " + f->message, std::nullopt};
        auto& resp = std::get<HttpResponse>(res);
        if (resp.status < 200 || resp.status > 299)
            co_return Error{ErrorClass::network, "download", resp.status,
                            what + ": HTTP " + std::to_string(resp.status), std::nullopt};
        item.bytes = std::move(resp.body);
    }
    co_return std::nullopt;
}

struct Answer {
    std::vector<jobs::OutputRecord> outputs;
    std::optional<Error> error;
    std::string usage_json;
    int http_status = 0;
};

asio::awaitable<Answer> call_provider(EngineShared* s, ProviderRuntime* p,
                                      const jobs::ClaimedRequest* request) {
    const jobs::ClaimedRequest& req = *request;
    Answer a;
    GenerationRequest g;
    g.model = req.model;
    g.prompt = req.prompt;
    g.n = req.n - req.images_done;
    try {
        auto v = boost::json::parse(req.params_json.empty() ? "{}" : req.params_json);
        if (!v.is_object()) throw std::invalid_argument("not a JSON object");
        g.params = std::move(v.as_object());
    } catch (const std::exception& e) {
        a.error = Error{ErrorClass::invalid_request, "params", 0,
                        std::string("params: ") + e.what(), std::nullopt};
        co_return a;
    }
    HttpResult res;
    // A key from api_key_command that the provider refused (401) is replaced and the call
    // sent again, within this attempt: once with a key this attempt waited for, and again
    // whenever another attempt replaced the key meanwhile (at most kMaxAuthSends calls).
    constexpr int kMaxAuthSends = 4;
    bool refreshed = false;
    std::string key_error;  // the command's failure, added to the 401's message
    for (int sends = 1;; ++sends) {
        const std::uint64_t used = p->keys.generation();
        HttpRequest http;
        try {
            http = p->api->build(g, p->config, p->keys.key());
        } catch (const std::exception& e) {
            a.error = Error{ErrorClass::invalid_request, "build", 0, e.what(), std::nullopt};
            co_return a;
        }
        // Gzip, JSON and base64 of a large answer are decoded on the decode pool, not here.
        http.defer_decoding = true;
        res = co_await p->client->send(std::move(http));
        auto* answer = std::get_if<HttpResponse>(&res);
        if (!answer || answer->status != 401 || !p->keys.refreshable() || sends >= kMaxAuthSends)
            break;
        if (p->keys.generation() == used) {
            if (refreshed) break;  // refused a key fresh for this call: the provider pauses
            refreshed = true;
            if (auto err = co_await p->keys.refresh_after(used, "401")) {
                key_error = std::move(*err);
                break;
            }
        }
        if (given_back(s, req)) {
            // A stop gave the request back while the key was refreshed: nothing is sent.
            a.error = Error{ErrorClass::auth, "returned", 401, "given back", std::nullopt};
            co_return a;
        }
        spdlog::info("event=auth_retry job={} request={} provider={} attempt={} note={}",
                     req.job_id, req.request_id, q(p->config.name), req.attempt_no,
                     q("HTTP 401: sent again with the refreshed key"));
    }
    if (auto* f = std::get_if<HttpFailure>(&res)) {
        a.error = Error{f->cls, f->code, 0, f->message, std::nullopt};
        make_valid_utf8(a.error);
        co_return a;
    }
    auto& resp = std::get<HttpResponse>(res);
    if (auto hint = rate_limit_hint(resp.headers); !hint.empty())
        p->lane.on_hint(jobs::unix_now(), hint);
    a.http_status = resp.status;
    const int status = resp.status;
    ParsedResponse parsed =
        co_await decode_answer(s, p->api, std::move(resp), g, p->config.max_response_bytes);
    a.usage_json = valid_utf8(parsed.usage_json);
    std::optional<Error> download_error;
    // URL images are downloaded even when another entry was bad: they are paid for.
    if (!parsed.error || !parsed.images.empty())
        download_error = co_await download_images(p, &parsed);
    CheckedImages checked = check_images(std::move(parsed), g.n, status, download_error);
    a.error = std::move(checked.error);
    if (a.error && !key_error.empty()) a.error->message += " (" + key_error + ")";
    make_valid_utf8(a.error);
    if (a.error && says_model_gone(*a.error, g.model)) {
        const auto* m = s->catalog ? s->catalog->find(g.model) : nullptr;
        mark_model_gone(*a.error, m ? m->replacement : "");
    }
    for (auto& image : checked.images) image.revised_prompt = valid_utf8(image.revised_prompt);
    share_cost(checked.images, s->catalog, p->config, req, a.usage_json, a.error, false);
    if (!checked.images.empty()) {
        answer_received(s, req);  // the lane's slot frees now, not after the files and records
        StageResult staged = co_await stage_until_kept(s, req, std::move(checked.images));
        // Only when the daemon gave the request back while the disk refused the images.
        if (staged.error)
            a.error = std::move(staged.error);
        else
            a.outputs = std::move(staged.outputs);
    }
    co_return a;
}

const char* next_name(jobs::Next n) {
    switch (n) {
        case jobs::Next::done:
            return "done";
        case jobs::Next::retry:
            return "retry";
        case jobs::Next::fail:
            return "fail";
        case jobs::Next::block:
            return "block";
        case jobs::Next::returned:
            return "returned";
    }
    return "?";
}

// Adds the tokens of a provider's usage object (OpenAI images and chat: input_tokens /
// prompt_tokens, output_tokens / completion_tokens, total_tokens; Gemini: promptTokenCount,
// candidatesTokenCount, totalTokenCount) to the provider's counters.
void add_tokens(ProviderCounters& c, const std::string& usage_json) {
    if (usage_json.empty()) return;
    boost::system::error_code ec;
    auto v = boost::json::parse(usage_json, ec);
    if (ec || !v.is_object()) return;
    const auto& u = v.as_object();
    auto number = [&u](std::initializer_list<const char*> names) -> std::uint64_t {
        for (const char* n : names)
            if (auto* x = u.if_contains(n)) {
                if (x->is_int64() && x->as_int64() > 0) return x->as_int64();
                if (x->is_uint64()) return x->as_uint64();
            }
        return 0;
    };
    std::uint64_t in = number({"input_tokens", "prompt_tokens", "promptTokenCount"});
    std::uint64_t out = number({"output_tokens", "completion_tokens", "candidatesTokenCount"});
    std::uint64_t total = number({"total_tokens", "totalTokenCount"});
    if (total == 0) total = in + out;
    c.tokens["input"] += in;
    c.tokens["output"] += out;
    c.tokens["total"] += total;
}

// What an operator does about a provider paused by auth (401/403) or quota errors.
std::string pause_fix(const std::string& provider, bool quota) {
    std::string what = quota ? "add credit or raise the quota of the provider's account"
                             : "fix the provider's API key (api_key_env, api_key_file or its "
                               "file in the credentials directory)";
    return what +
           ", then reload the daemon (SIGHUP, `systemctl reload imgbatch`) to probe at once, "
           "or run `imgbatch resume " +
           provider + "`";
}

void set_paused(EngineShared* s, const std::string& provider, bool paused, std::string reason,
                double probe_at) {
    s->db.post([provider, paused, reason = std::move(reason), probe_at](jobs::Store& store) {
        store.set_provider_paused(provider, paused, reason, probe_at, /*by_daemon=*/true);
    });
}

// Lane bookkeeping for the end of an attempt. A server or network failure that the lane's
// circuit breaker blames on the provider switches r to its provider-failure decision (no
// attempt used).
// was_probe: this attempt was the one request let through a paused lane; only its outcome
// decides whether the provider is usable again.
void update_lane(EngineShared* s, ProviderRuntime* p, AttemptResult& r, double now, LaneSlot& slot,
                 bool was_probe) {
    Lane& lane = p->lane;
    slot.release();  // if the answer did not free it already
    // A hold or a slow-down is logged when it begins, not for each request it concerns.
    const bool was_held = lane.held_until() > now;
    const auto& err = r.completion.error;
    if (err && r.action == jobs::Action::pause_provider) {
        const bool quota = err->cls == ErrorClass::quota;
        std::string reason = std::string(quota ? "quota: " : "auth: ") + err->message;
        double probe_at = now + s->retry.auth_probe_s;
        // The other requests in flight get the same answer: the pause is logged once, by the
        // first of them (and again when a probe finds the provider still refusing).
        const bool first = !lane.paused() || was_probe;
        lane.pause(reason, probe_at);
        ++p->pause_version;
        if (first)
            spdlog::error("event=provider_paused provider={} reason={} probe_at={} fix={}",
                          q(p->config.name), q(reason), q(log_time(probe_at)),
                          q(pause_fix(p->config.name, quota)));
        set_paused(s, p->config.name, true, reason, probe_at);
        return;
    }
    if (err && r.action == jobs::Action::pause_local) {
        spdlog::error("event=local_pause provider={} seconds={:.1f} error={}", q(p->config.name),
                      r.delay_s, q(err->message));
        for (auto& other : s->providers) other->lane.hold_until(now + r.delay_s);
    } else if (err && err->cls == ErrorClass::rate_limited) {
        // The lane holds for what the provider asked (not for this request's backoff).
        std::optional<double> hold = err->retry_after_s;
        if (hold) hold = std::min(*hold, s->retry.max_delay_s);
        double learned = lane.learned_rpm();
        double factor = lane.rate_factor();
        lane.on_rate_limited(now, hold, r.completion.started_at);
        if (!was_held && lane.held_until() > now)
            spdlog::warn("event=lane_hold provider={} cause=rate_limited hold_s={:.2f} until={}",
                         q(p->config.name), lane.held_until() - now,
                         q(log_time(lane.held_until())));
        if (learned == 0 && lane.learned_rpm() > 0)
            spdlog::warn("event=rate_learned provider={} requests_per_minute={:.1f} note={}",
                         q(p->config.name), lane.learned_rpm(),
                         q("the provider refuses requests: the lane slows down to the rate it "
                           "accepts and adjusts it from now on"));
        else if (lane.learned_rpm() != learned)
            spdlog::debug("event=rate_learned provider={} requests_per_minute={:.1f}",
                          q(p->config.name), lane.learned_rpm());
        if (factor == 1.0 && lane.rate_factor() < 1.0)
            spdlog::warn("event=lane_slowdown provider={} rate_factor={:.2f} note={}",
                         q(p->config.name), lane.rate_factor(),
                         q("429s at the configured rate: the lane sends slower until requests "
                           "succeed again"));
    } else if (err && (err->cls == ErrorClass::server || err->cls == ErrorClass::network ||
                       err->cls == ErrorClass::timeout)) {
        double step = s->retry.base_delay_s / 4;
        double max_hold = std::min(s->retry.max_delay_s, 60.0);
        if (lane.on_failure(now, r.completion.request_id, step, max_hold)) {
            blame_provider(r);
            if (!was_held)
                spdlog::warn(
                    "event=lane_hold provider={} cause=failures failures={} hold_s={:.2f} "
                    "until={}",
                    q(p->config.name), lane.failure_run(), lane.held_until() - now,
                    q(log_time(lane.held_until())));
        }
    } else if (!err) {
        lane.on_success(now);
    } else {
        lane.on_answered();
    }
    if (was_probe) {
        // The provider answered something other than auth/quota: it is usable again.
        lane.resolve_probe(true);
        ++p->pause_version;
        spdlog::info("event=provider_resumed provider={}", q(p->config.name));
        set_paused(s, p->config.name, false, "", 0);
    }
}

}  // namespace

asio::awaitable<void> run_attempt(EngineShared* s, ProviderRuntime* p, jobs::ClaimedRequest req,
                                  std::shared_ptr<LaneSlot> slot) {
    double started = jobs::unix_now();
    auto t0 = std::chrono::steady_clock::now();
    Answer a;
    try {
        a = co_await call_provider(s, p, &req);
    } catch (const std::exception& e) {
        a.error = Error{ErrorClass::network, "internal", 0, e.what(), std::nullopt};
    }
    if (slot->early) {
        // Its images are written: it no longer counts against the answers being written.
        slot->early = false;
        --p->answers_writing;
        p->wake();
    }
    double finished = jobs::unix_now();
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    int http = a.error ? a.error->http_status : a.http_status;
    std::string cls = a.error ? std::string(jobs::to_string(a.error->cls)) : "";
    AttemptResult r =
        make_completion(req, s->owner, started, finished, std::move(a.outputs), std::move(a.error),
                        std::move(a.usage_json), s->retry, s->jitter());
    price_attempt(r.completion, s->catalog, p->config, req, false);
    std::size_t images = r.completion.outputs.size();

    auto it = s->in_flight.find(req.request_id);
    if (it == s->in_flight.end() || it->second.state != AttemptState::running ||
        it->second.attempt_no != req.attempt_no) {
        // Given back at shutdown while it ran, or claimed again after its lease was lost: its
        // files are not wanted. Its own slot is freed here (a give-back freed it already).
        s->writer.discard(r.completion);
        if (slot->release()) p->wake();
        p->counters.count_attempt("abandoned", "");
        if (it != s->in_flight.end() && it->second.attempt_no == req.attempt_no && it->second.probe)
            p->lane.resolve_probe(false);  // undecided: a later probe decides
        spdlog::info(
            "event=attempt job={} batch={} key={} request={} provider={} attempt={} "
            "outcome=abandoned ms={}",
            req.job_id, q(req.batch), q(req.key), req.request_id, q(p->config.name), req.attempt_no,
            ms);
        budget_release(s, req.request_id);
        co_return;
    }
    it->second.state = AttemptState::completing;
    update_lane(s, p, r, finished, *slot, it->second.probe);
    p->counters.count_attempt(r.outcome, cls);
    p->counters.duration.observe(static_cast<double>(ms) / 1000.0);
    add_tokens(p->counters, r.completion.usage_json);
    p->counters.add_spend(req.model, r.completion);
    std::uint64_t bytes = 0;
    for (const auto& o : r.completion.outputs) bytes += static_cast<std::uint64_t>(o.bytes);

    // When the request is tried again: at not_before (a paused provider's requests wait for
    // its probe instead).
    std::string retry;
    if (r.completion.next == jobs::Next::retry && r.action != jobs::Action::pause_provider)
        retry = fmt::format(" retry_at={} retry_in_s={:.2f}", q(log_time(r.completion.not_before)),
                            std::max(0.0, r.completion.not_before - finished));
    else if (r.completion.next == jobs::Next::retry)
        retry = " retry_at=\"after the provider's pause\"";
    spdlog::info(
        "event=attempt job={} batch={} key={} request={} provider={} attempt={} outcome={} "
        "class={} http={} ms={} images={} next={}{}",
        req.job_id, q(req.batch), q(req.key), req.request_id, q(p->config.name), req.attempt_no,
        q(r.outcome), q(cls), http, ms, images, q(next_name(r.completion.next)), retry);
    // An auth or quota refusal is told once, by the provider_paused line.
    if (r.completion.error && r.outcome == "error" && r.action != jobs::Action::pause_provider)
        spdlog::warn(
            "event=attempt_error job={} batch={} key={} request={} provider={} class={} code={} "
            "next={}{} message={}",
            req.job_id, q(req.batch), q(req.key), req.request_id, q(p->config.name), q(cls),
            q(r.completion.error->code), q(next_name(r.completion.next)), retry,
            q(r.completion.error->message));
    p->wake();  // a slot is free

    const std::optional<double> cost = r.completion.cost_usd;
    bool applied = false;
    try {
        applied = co_await s->db.complete(std::move(r.completion));
    } catch (const std::exception& e) {
        spdlog::error("event=complete_failed request={} error={}", req.request_id, q(e.what()));
    }
    if (applied)
        budget_recorded(s, req.request_id, cost, finished);
    else
        budget_release(s, req.request_id);
    if (applied) {
        p->counters.images += images;
        p->counters.bytes += bytes;
        s->batches_touched.insert(req.batch);
    } else
        spdlog::warn("event=stale_completion job={} request={} attempt={}", req.job_id,
                     req.request_id, req.attempt_no);
    s->attempt_ended.cancel();
    s->forget(req.request_id, req.attempt_no);  // may run the idle check at once
    p->wake();  // beside other daemons the claim counts this request until now
}

}  // namespace imgbatch::daemon
