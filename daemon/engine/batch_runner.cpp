#include "daemon/engine/batch_runner.hpp"
#include "daemon/logfmt.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "daemon/engine/attempt.hpp"
#include "daemon/providers/openai_batch.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon {
namespace asio = boost::asio;
namespace ob = openai_batch;
using jobs::Error;
using jobs::ErrorClass;
using jobs::VendorBatchRow;

namespace {

constexpr int kGroup = 64;             // output lines recorded per group commit
constexpr int kListPage = 100;         // vendor batches per page when adopting
constexpr double kAdoptSlackS = 3600;  // clock skew allowed when looking for a lost create

// Runs fn() on the writer pool; its result (or exception) comes back on the caller's executor.
template <class R, class Fn>
asio::awaitable<R> on_pool(EngineShared* s, Fn fn) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [s](auto handler, Fn f) {
            asio::post(s->writer_pool, [h = std::move(handler), f = std::move(f)]() mutable {
                std::exception_ptr ep;
                R result{};
                try {
                    result = f();
                } catch (...) {
                    ep = std::current_exception();
                }
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), ep, r = std::move(result)]() mutable {
                    std::move(h)(ep, std::move(r));
                });
            });
        },
        asio::use_awaitable, std::move(fn));
}

// Holds a stop until the step that writes to the database is done (shutdown waits for
// claims_pending).
struct Busy {
    explicit Busy(EngineShared* s) : s_(s) { ++s_->claims_pending; }
    ~Busy() {
        --s_->claims_pending;
        s_->attempt_ended.cancel();
    }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

  private:
    EngineShared* s_;
};

// Metrics of the runners (network thread only).
struct Gauges {
    std::map<std::string, int> open;  // by local state / vendor status
    std::uint64_t created = 0, adopted = 0, finished = 0;
};
std::map<std::string, Gauges>& gauges() {
    static std::map<std::string, Gauges> g;
    return g;
}

struct Poll {
    double next = 0;
    double delay = 0;
};

struct Runner {
    EngineShared* s;
    ProviderRuntime* p;
    std::string instance;
    std::map<std::int64_t, Poll> polls;
    std::set<std::int64_t> maybe_created;  // uploaded rows whose create may have happened
    std::set<std::int64_t> cancel_sent;
    std::map<std::int64_t, std::string> logged;  // state/status last logged
};

const std::string& name(Runner* r) {
    return r->p->config.name;
}

void log_state(Runner* r, const VendorBatchRow& row) {
    std::string key = row.state + "/" + row.vendor_status;
    auto& last = r->logged[row.id];
    if (last == key) return;
    last = key;
    auto level = row.state == jobs::kVbAbandoned || row.vendor_status == "failed" ||
                         row.vendor_status == "expired"
                     ? spdlog::level::warn
                     : spdlog::level::info;
    spdlog::log(level,
                "event=vendor_batch provider={} id={} chunk={} vendor_id={} state={} "
                "vendor_status={} requests={} completed={} failed={} applied={}{}",
                q(name(r)), row.id, q(row.chunk), q(row.vendor_id), q(row.state),
                q(row.vendor_status), row.requests, row.completed, row.failed, row.applied,
                row.message.empty() ? std::string() : fmt::format(" message={}", q(row.message)));
}

asio::awaitable<void> save(Runner* r, const VendorBatchRow& row) {
    auto fn = [row](jobs::Store& st) {
        st.update_vendor_batch(row);
        return 0;
    };
    co_await r->s->db.call<int>(std::move(fn));
    log_state(r, row);
}

asio::awaitable<HttpResult> send(Runner* r, HttpRequest http) {
    co_return co_await r->p->client->send(std::move(http));
}

// The error of a call: its failure, or its non-2xx answer.
std::optional<Error> call_error(const HttpResult& res) {
    if (auto* f = std::get_if<HttpFailure>(&res))
        return Error{f->cls, f->code, 0, f->message, std::nullopt};
    const auto& resp = std::get<HttpResponse>(res);
    if (resp.status < 200 || resp.status > 299) return error_from_response(resp);
    return std::nullopt;
}

// A vendor error that will not go away by asking again (a bad file, a bad key is paused
// elsewhere): the lines are recorded with it.
bool permanent(const Error& e) {
    return e.cls == ErrorClass::invalid_request;
}

// Records completions in group commits (every one queued before the DB thread wakes goes
// into one transaction). Returns how many were applied.
asio::awaitable<void> complete_one(Runner* r, std::shared_ptr<int> left,
                                   std::shared_ptr<asio::steady_timer> done, AttemptResult result,
                                   std::int64_t job_id) {
    const std::size_t images = result.completion.outputs.size();
    const auto request_id = result.completion.request_id;
    const int attempt_no = result.completion.attempt_no;
    bool applied = false;
    try {
        applied = co_await r->s->db.complete(std::move(result.completion));
    } catch (const std::exception& e) {
        spdlog::error("event=complete_failed request={} error={}", request_id, q(e.what()));
    }
    if (applied) {
        r->p->counters.images += images;
        ++r->p->counters.attempts[result.outcome];
    } else {
        spdlog::info("event=stale_completion job={} request={} attempt={}", job_id, request_id,
                     attempt_no);
    }
    if (--*left == 0) done->cancel();
}

asio::awaitable<void> complete_all(Runner* r, std::vector<AttemptResult> results,
                                   std::vector<std::int64_t> jobs_of) {
    if (results.empty()) co_return;
    auto left = std::make_shared<int>(static_cast<int>(results.size()));
    auto done = std::make_shared<asio::steady_timer>(r->s->executor);
    for (std::size_t i = 0; i < results.size(); ++i)
        asio::co_spawn(r->s->executor,
                       complete_one(r, left, done, std::move(results[i]), jobs_of[i]),
                       asio::detached);
    while (*left > 0) {
        done->expires_after(std::chrono::hours(1));
        co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

// Uniform [0, 1) for the retry policy's jitter, on whichever thread decodes the lines.
double line_jitter() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0, 1)(rng);
}

AttemptResult line_result(Runner* r, const jobs::ClaimedRequest& req, double started,
                          std::vector<jobs::OutputRecord> outputs, std::optional<Error> error,
                          std::string usage, std::int64_t vb) {
    return make_completion(req, jobs::vendor_batch_owner(vb), started, jobs::unix_now(),
                           std::move(outputs), std::move(error), std::move(usage), r->s->retry,
                           line_jitter());
}

void log_line(Runner* r, const jobs::ClaimedRequest& req, const AttemptResult& a, std::int64_t vb,
              int http) {
    const auto& e = a.completion.error;
    spdlog::info(
        "event=attempt job={} request={} provider={} attempt={} outcome={} class={} http={} "
        "images={} vendor_batch={}",
        req.job_id, req.request_id, q(name(r)), req.attempt_no, q(a.outcome),
        q(e ? std::string(jobs::to_string(e->cls)) : ""), http, a.completion.outputs.size(), vb);
}

// Records lines that end without a vendor answer: each with error (an attempt decided by the
// policy), or returned to the queue without using an attempt (no error).
asio::awaitable<void> end_lines(Runner* r, std::int64_t vb, std::vector<jobs::ClaimedRequest> lines,
                                std::optional<Error> error, double started) {
    std::vector<AttemptResult> results;
    std::vector<std::int64_t> jobs_of;
    for (const auto& req : lines) {
        AttemptResult a;
        if (error) {
            a = line_result(r, req, started, {}, error, "", vb);
        } else {
            a.completion.request_id = req.request_id;
            a.completion.attempt_no = req.attempt_no;
            a.completion.owner = jobs::vendor_batch_owner(vb);
            a.completion.started_at = started;
            a.completion.finished_at = jobs::unix_now();
            a.completion.next = jobs::Next::returned;
            a.outcome = "returned";
        }
        log_line(r, req, a, vb, error ? error->http_status : 0);
        results.push_back(std::move(a));
        jobs_of.push_back(req.job_id);
    }
    co_await complete_all(r, std::move(results), std::move(jobs_of));
}

// The lines of vb not recorded yet, in request id order.
asio::awaitable<std::vector<jobs::ClaimedRequest>> open_lines(Runner* r, std::int64_t vb,
                                                              std::int64_t after, int limit) {
    auto fn = [vb, after, limit](jobs::Store& st) {
        return st.vendor_batch_lines(vb, after, limit);
    };
    co_return co_await r->s->db.call<std::vector<jobs::ClaimedRequest>>(std::move(fn));
}

GenerationRequest generation(const jobs::ClaimedRequest& req) {
    GenerationRequest g;
    g.model = req.model;
    g.prompt = req.prompt;
    g.n = req.n - req.images_done;
    auto v = boost::json::parse(req.params_json.empty() ? "{}" : req.params_json);
    if (!v.is_object()) throw std::invalid_argument("not a JSON object");
    g.params = std::move(v.as_object());
    return g;
}

struct Content {
    std::string text;
    std::string endpoint;
    std::vector<jobs::ClaimedRequest> bad;  // could not be built
    std::vector<std::string> why;
    std::vector<jobs::LeasedAttempt> over;  // over the byte limit
    std::int64_t lines = 0;
};

// The input file of lines, in request id order, up to max_bytes.
void add_lines(Runner* r, Content& c, const std::vector<jobs::ClaimedRequest>& lines,
               std::size_t max_bytes) {
    for (const auto& req : lines) {
        if (!c.over.empty()) {
            c.over.push_back({req.request_id, req.attempt_no});
            continue;
        }
        std::string line;
        try {
            line = ob::input_line(jobs::custom_id(req.request_id, req.attempt_no), *r->p->api,
                                  generation(req), r->p->config,
                                  c.endpoint.empty() ? &c.endpoint : nullptr);
        } catch (const std::exception& e) {
            c.bad.push_back(req);
            c.why.push_back(e.what());
            continue;
        }
        if (c.text.size() + line.size() > max_bytes && c.lines > 0) {
            c.over.push_back({req.request_id, req.attempt_no});
            continue;
        }
        c.text += line;
        ++c.lines;
    }
}

// preparing -> uploaded: builds the input file from the lines not recorded yet and uploads it.
// Returns false when the step must be tried again later.
asio::awaitable<bool> upload(Runner* r, VendorBatchRow& row,
                             std::vector<jobs::ClaimedRequest> first) {
    Content c;
    const std::size_t max_bytes = std::min(r->p->config.batch_max_bytes, kVendorBatchMaxBytes);
    if (!first.empty()) {
        add_lines(r, c, first, max_bytes);
    } else {
        std::int64_t after = 0;
        for (;;) {
            auto page = co_await open_lines(r, row.id, after, 1000);
            if (page.empty()) break;
            after = page.back().request_id;
            add_lines(r, c, page, max_bytes);
        }
    }
    if (!c.over.empty()) {
        Busy busy(r->s);
        auto fn = [id = row.id, over = c.over](jobs::Store& st) {
            st.drop_from_vendor_batch(id, over, jobs::unix_now());
            return 0;
        };
        co_await r->s->db.call<int>(std::move(fn));
        row.requests -= static_cast<std::int64_t>(c.over.size());
    }
    for (std::size_t i = 0; i < c.bad.size(); ++i) {
        Busy busy(r->s);
        std::optional<Error> build_error =
            Error{ErrorClass::invalid_request, "build", 0, c.why[i], std::nullopt};
        std::vector<jobs::ClaimedRequest> one{c.bad[i]};
        co_await end_lines(r, row.id, std::move(one), std::move(build_error), jobs::unix_now());
    }
    if (c.lines == 0) {
        row.state = std::string(jobs::kVbDone);
        row.message = "no line to submit";
        co_await save(r, row);
        co_return false;
    }
    const auto bytes = static_cast<std::int64_t>(c.text.size());
    auto res =
        co_await send(r, ob::upload(r->p->config, r->p->api_key, row.chunk + std::string(".jsonl"), c.text));
    std::string().swap(c.text);
    std::optional<Error> err = call_error(res);
    std::string file_id;
    if (!err) file_id = ob::parse_file(std::get<HttpResponse>(res), err);
    if (err) {
        spdlog::warn("event=vendor_batch_upload_failed provider={} id={} class={} http={} error={}",
                     q(name(r)), row.id, q(jobs::to_string(err->cls)), err->http_status,
                     q(err->message));
        if (permanent(*err)) {
            Busy busy(r->s);
            std::int64_t after = 0;
            for (;;) {
                auto page = co_await open_lines(r, row.id, after, 1000);
                if (page.empty()) break;
                after = page.back().request_id;
                co_await end_lines(r, row.id, std::move(page), err, row.created_at);
            }
            row.state = std::string(jobs::kVbAbandoned);
            row.message = "upload: " + err->message;
            co_await save(r, row);
        }
        co_return false;
    }
    row.input_file_id = file_id;
    row.bytes = bytes;
    row.state = std::string(jobs::kVbUploaded);
    row.vendor_status = "";
    co_await save(r, row);
    co_return true;
}

// A vendor batch this database created for row's chunk (a create whose answer or record was
// lost), found by its metadata.
asio::awaitable<std::optional<ob::Batch>> find_created(Runner* r, const VendorBatchRow& row,
                                                       bool* listed) {
    *listed = false;
    std::string after;
    for (;;) {
        auto res = co_await send(r, ob::list(r->p->config, r->p->api_key, after, kListPage));
        std::optional<Error> err = call_error(res);
        std::optional<ob::BatchPage> page;
        if (!err) page = ob::parse_list(std::get<HttpResponse>(res), err);
        if (err || !page) {
            spdlog::warn("event=vendor_batch_list_failed provider={} error={}", q(name(r)),
                         q(err ? err->message : "no page"));
            co_return std::nullopt;
        }
        bool older = false;
        for (auto& b : page->batches) {
            if (b.database == r->instance && b.chunk == row.chunk) {
                *listed = true;
                co_return b;
            }
            if (b.created_at > 0 && b.created_at < row.created_at - kAdoptSlackS) older = true;
        }
        if (!page->has_more || older || page->last_id.empty()) break;
        after = page->last_id;
    }
    *listed = true;
    co_return std::nullopt;
}

// The HTTP client sends a request once more when a reused connection turns out closed before
// any answer: a create may then exist twice at the vendor. Any other vendor batch of this
// chunk (the newest page of the list) is cancelled while it still validates.
asio::awaitable<void> cancel_duplicates(Runner* r, const VendorBatchRow& row) {
    auto res = co_await send(r, ob::list(r->p->config, r->p->api_key, "", kListPage));
    std::optional<Error> err = call_error(res);
    std::optional<ob::BatchPage> page;
    if (!err) page = ob::parse_list(std::get<HttpResponse>(res), err);
    if (!page) co_return;
    for (const auto& b : page->batches) {
        if (b.database != r->instance || b.chunk != row.chunk || b.id == row.vendor_id) continue;
        auto c = co_await send(r, ob::cancel(r->p->config, r->p->api_key, b.id));
        spdlog::error("event=vendor_batch_duplicate provider={} id={} vendor_id={} kept={} ok={}",
                      q(name(r)), row.id, q(b.id), q(row.vendor_id), !call_error(c));
    }
}

void take(VendorBatchRow& row, const ob::Batch& b) {
    row.vendor_id = b.id;
    row.vendor_status = b.status;
    if (b.total > 0 || b.completed > 0 || b.failed > 0) {
        row.completed = b.completed;
        row.failed = b.failed;
    }
    row.output_file_id = b.output_file_id;
    row.error_file_id = b.error_file_id;
    if (!b.error.empty()) row.message = b.error;
}

// uploaded -> submitted: adopts the vendor batch a lost create made, or creates it.
asio::awaitable<bool> create(Runner* r, VendorBatchRow& row) {
    if (r->maybe_created.count(row.id)) {
        bool listed = false;
        auto found = co_await find_created(r, row, &listed);
        if (!listed) co_return false;  // the list failed: try again later
        r->maybe_created.erase(row.id);
        if (found) {
            take(row, *found);
            row.state = std::string(jobs::kVbSubmitted);
            ++gauges()[name(r)].adopted;
            spdlog::warn("event=vendor_batch_adopted provider={} id={} chunk={} vendor_id={}",
                         q(name(r)), row.id, q(row.chunk), q(row.vendor_id));
            co_await save(r, row);
            co_return true;
        }
    }
    // From here until the answer is recorded, a crash leaves a batch to adopt.
    r->maybe_created.insert(row.id);
    const std::string endpoint = "/v1/images/generations";
    auto res = co_await send(r, ob::create(r->p->config, r->p->api_key, row.input_file_id, endpoint,
                                           r->instance, row.chunk));
    std::optional<Error> err = call_error(res);
    std::optional<ob::Batch> b;
    if (!err) b = ob::parse_batch(std::get<HttpResponse>(res), err);
    if (err) {
        spdlog::warn("event=vendor_batch_create_failed provider={} id={} class={} http={} error={}",
                     q(name(r)), row.id, q(jobs::to_string(err->cls)), err->http_status,
                     q(err->message));
        // A 4xx was refused before anything was created: no batch to look for.
        if (std::holds_alternative<HttpResponse>(res) && std::get<HttpResponse>(res).status < 500)
            r->maybe_created.erase(row.id);
        if (permanent(*err)) {
            Busy busy(r->s);
            std::int64_t after = 0;
            for (;;) {
                auto page = co_await open_lines(r, row.id, after, 1000);
                if (page.empty()) break;
                after = page.back().request_id;
                co_await end_lines(r, row.id, std::move(page), err, row.created_at);
            }
            row.state = std::string(jobs::kVbAbandoned);
            row.message = "create: " + err->message;
            co_await save(r, row);
        }
        co_return false;
    }
    take(row, *b);
    row.state = std::string(jobs::kVbSubmitted);
    ++gauges()[name(r)].created;
    co_await save(r, row);
    r->maybe_created.erase(row.id);
    co_await cancel_duplicates(r, row);
    co_return true;
}

// Lines from a downloaded file, kGroup at a time.
struct LineReader {
    std::ifstream in;
    std::int64_t bad = 0;
};

struct ParsedGroup {
    std::vector<ob::Line> lines;
    std::vector<std::int64_t> request_ids;
    std::vector<int> attempt_nos;
    bool end = false;
};

ParsedGroup read_group(LineReader& reader) {
    ParsedGroup g;
    std::string text;
    while (static_cast<int>(g.lines.size()) < kGroup) {
        if (!std::getline(reader.in, text)) {
            g.end = true;
            break;
        }
        if (text.empty()) continue;
        std::string why;
        auto line = ob::parse_line(text, &why);
        std::int64_t rid = 0;
        int attempt = 0;
        if (!line || !jobs::parse_custom_id(line->custom_id, rid, attempt)) {
            ++reader.bad;
            continue;
        }
        g.lines.push_back(std::move(*line));
        g.request_ids.push_back(rid);
        g.attempt_nos.push_back(attempt);
    }
    return g;
}

// Decodes a group's answers and stages their images (on the writer pool).
std::vector<AttemptResult> decode_group(Runner* r, std::int64_t vb, double started, ParsedGroup& g,
                                        const std::vector<jobs::ClaimedRequest>& open,
                                        std::vector<const jobs::ClaimedRequest*>& reqs,
                                        std::vector<int>& statuses) {
    std::vector<AttemptResult> out;
    for (std::size_t i = 0; i < g.lines.size(); ++i) {
        const jobs::ClaimedRequest* req = nullptr;
        for (const auto& o : open)
            if (o.request_id == g.request_ids[i] && o.attempt_no == g.attempt_nos[i]) req = &o;
        if (!req) continue;  // recorded already (a restart applies the file again), or unknown
        auto& line = g.lines[i];
        std::optional<Error> error;
        std::vector<jobs::OutputRecord> outputs;
        std::string usage;
        int status = 0;
        if (line.response) {
            status = line.response->status;
            GenerationRequest gen;
            try {
                gen = generation(*req);
            } catch (const std::exception& e) {
                error = Error{ErrorClass::invalid_request, "params", 0, e.what(), std::nullopt};
            }
            if (!error) {
                ParsedResponse parsed = r->p->api->parse(*line.response, gen);
                usage = valid_utf8(parsed.usage_json);
                CheckedImages checked = check_images(std::move(parsed), gen.n, status);
                error = std::move(checked.error);
                if (!checked.images.empty()) {
                    for (auto& image : checked.images)
                        image.revised_prompt = valid_utf8(image.revised_prompt);
                    StageResult staged = r->s->writer.stage(*req, checked.images);
                    // The output directory cannot take them: the file is applied again later.
                    if (staged.error) throw std::runtime_error(staged.error->message);
                    outputs = std::move(staged.outputs);
                }
            }
            std::string().swap(line.response->body);
        } else if (line.error_code == "batch_expired") {
            statuses.push_back(0);
            reqs.push_back(req);
            AttemptResult a;
            a.completion.request_id = req->request_id;
            a.completion.attempt_no = req->attempt_no;
            a.completion.owner = jobs::vendor_batch_owner(vb);
            a.completion.started_at = started;
            a.completion.finished_at = jobs::unix_now();
            a.completion.next = jobs::Next::returned;
            a.outcome = "returned";
            out.push_back(std::move(a));
            continue;
        } else {
            error =
                Error{ErrorClass::server, line.error_code.empty() ? "batch_line" : line.error_code,
                      0, line.error_message, std::nullopt};
        }
        if (error) {
            error->code = valid_utf8(error->code);
            error->message = valid_utf8(error->message);
        }
        statuses.push_back(error ? error->http_status : status);
        reqs.push_back(req);
        out.push_back(line_result(r, *req, started, std::move(outputs), std::move(error),
                                  std::move(usage), vb));
    }
    return out;
}

std::string temp_file(Runner* r, std::int64_t vb, std::string_view which) {
    auto dir = std::filesystem::path(r->s->writer.temp_path(0, 0, 0)).parent_path();
    return (dir / ("vbatch-" + std::to_string(vb) + "-" + std::string(which) + ".jsonl")).string();
}

// Downloads a result file to a temporary file and records its lines. Returns false when the
// download failed (tried again later).
asio::awaitable<bool> apply_file(Runner* r, VendorBatchRow& row, const std::string& file_id,
                                 std::string_view which) {
    auto res = co_await send(r, ob::file_content(r->p->config, r->p->api_key, file_id));
    if (auto err = call_error(res)) {
        spdlog::warn("event=vendor_batch_download_failed provider={} id={} file={} error={}",
                     q(name(r)), row.id, q(file_id), q(err->message));
        co_return false;
    }
    const std::string path = temp_file(r, row.id, which);
    {
        auto body = std::make_shared<std::string>(std::move(std::get<HttpResponse>(res).body));
        auto write = [body, path] {
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f.write(body->data(), static_cast<std::streamsize>(body->size()));
            body->clear();
            body->shrink_to_fit();
            if (!f.flush()) throw std::runtime_error("write " + path + " failed");
            return 0;
        };
        co_await on_pool<int>(r->s, std::move(write));
    }
    auto reader = std::make_shared<LineReader>();
    reader->in.open(path, std::ios::binary);
    std::int64_t applied = 0;
    for (;;) {
        auto read = [reader] { return std::make_shared<ParsedGroup>(read_group(*reader)); };
        auto group = co_await on_pool<std::shared_ptr<ParsedGroup>>(r->s, std::move(read));
        if (!group->request_ids.empty()) {
            Busy busy(r->s);
            auto fn = [id = row.id, ids = group->request_ids](jobs::Store& st) {
                return st.vendor_batch_lines(id, ids);
            };
            auto open = std::make_shared<std::vector<jobs::ClaimedRequest>>(
                co_await r->s->db.call<std::vector<jobs::ClaimedRequest>>(std::move(fn)));
            struct Decoded {
                std::vector<AttemptResult> results;
                std::vector<const jobs::ClaimedRequest*> reqs;
                std::vector<int> statuses;
            };
            auto decode = [r, vb = row.id, started = row.created_at, group, open] {
                auto d = std::make_shared<Decoded>();
                d->results = decode_group(r, vb, started, *group, *open, d->reqs, d->statuses);
                return d;
            };
            auto d = co_await on_pool<std::shared_ptr<Decoded>>(r->s, std::move(decode));
            std::vector<std::int64_t> jobs_of;
            for (std::size_t i = 0; i < d->results.size(); ++i) {
                log_line(r, *d->reqs[i], d->results[i], row.id, d->statuses[i]);
                jobs_of.push_back(d->reqs[i]->job_id);
            }
            applied += static_cast<std::int64_t>(d->results.size());
            co_await complete_all(r, std::move(d->results), std::move(jobs_of));
        }
        if (group->end) break;
    }
    reader->in.close();
    std::filesystem::remove(path);
    if (reader->bad > 0)
        spdlog::warn("event=vendor_batch_bad_lines provider={} id={} file={} lines={}", q(name(r)),
                     row.id, q(file_id), reader->bad);
    row.applied += applied;
    co_return true;
}

// applying -> done: records the output and error files, then returns what is left.
asio::awaitable<void> apply(Runner* r, VendorBatchRow& row,
                            const std::vector<std::int64_t>& bad_lines) {
    const std::string output = "output", errors = "errors";
    if (!row.output_file_id.empty() && !co_await apply_file(r, row, row.output_file_id, output))
        co_return;
    if (!row.error_file_id.empty() && !co_await apply_file(r, row, row.error_file_id, errors))
        co_return;
    // Lines in neither file (an expired, cancelled or failed batch): back to the queue without
    // using an attempt; in a failed batch, the lines the vendor named are that failure.
    Busy busy(r->s);
    std::int64_t after = 0, index = 0;
    const bool failed = row.vendor_status == "failed";
    for (;;) {
        auto page = co_await open_lines(r, row.id, after, 1000);
        if (page.empty()) break;
        after = page.back().request_id;
        std::vector<jobs::ClaimedRequest> named, rest;
        for (auto& req : page) {
            ++index;
            bool is_named =
                failed && (bad_lines.empty() ||
                           std::find(bad_lines.begin(), bad_lines.end(), index) != bad_lines.end());
            (is_named ? named : rest).push_back(std::move(req));
        }
        row.applied += static_cast<std::int64_t>(named.size() + rest.size());
        if (!named.empty()) {
            std::optional<Error> failure =
                Error{bad_lines.empty() ? ErrorClass::server : ErrorClass::invalid_request,
                      "batch_failed", 0, "the vendor batch failed: " + row.message, std::nullopt};
            co_await end_lines(r, row.id, std::move(named), std::move(failure), row.created_at);
        }
        if (!rest.empty()) {
            std::optional<Error> none;
            co_await end_lines(r, row.id, std::move(rest), std::move(none), row.created_at);
        }
    }
    row.state = std::string(jobs::kVbDone);
    ++gauges()[name(r)].finished;
    co_await save(r, row);
    r->polls.erase(row.id);
}

// submitted: polls when due; cancels a batch whose jobs are all cancelled.
asio::awaitable<void> poll(Runner* r, VendorBatchRow& row) {
    auto& pl = r->polls[row.id];
    const double now = jobs::unix_now();
    if (pl.delay == 0) {
        pl.delay = r->p->config.batch_poll_s;
        pl.next = now;  // at once after a start; after a create, batch_poll_s
    }
    if (now < pl.next) co_return;
    if (!r->cancel_sent.count(row.id) && ob::is_open(row.vendor_status) &&
        row.vendor_status != "cancelling") {
        auto check = [id = row.id](jobs::Store& st) { return st.vendor_batch_cancelled(id); };
        if (co_await r->s->db.call<bool>(std::move(check))) {
            r->cancel_sent.insert(row.id);
            auto res = co_await send(r, ob::cancel(r->p->config, r->p->api_key, row.vendor_id));
            spdlog::info("event=vendor_batch_cancel provider={} id={} vendor_id={} ok={}",
                         q(name(r)), row.id, q(row.vendor_id), !call_error(res));
        }
    }
    auto res = co_await send(r, ob::get(r->p->config, r->p->api_key, row.vendor_id));
    std::optional<Error> err = call_error(res);
    std::optional<ob::Batch> b;
    if (!err) b = ob::parse_batch(std::get<HttpResponse>(res), err);
    pl.next = jobs::unix_now() + pl.delay;
    pl.delay = std::min(pl.delay * 1.5, r->p->config.batch_poll_max_s);
    if (err) {
        spdlog::warn("event=vendor_batch_poll_failed provider={} id={} error={}", q(name(r)),
                     row.id, q(err->message));
        co_return;
    }
    const std::string before = row.vendor_status;
    take(row, *b);
    if (!ob::is_open(b->status)) {
        row.state = std::string(jobs::kVbApplying);
        co_await save(r, row);
        co_await apply(r, row, b->error_lines);
        co_return;
    }
    if (row.vendor_status != before) co_await save(r, row);
}

asio::awaitable<void> step(Runner* r, VendorBatchRow row) {
    log_state(r, row);
    if (row.state == jobs::kVbPreparing && !co_await upload(r, row, {})) co_return;
    if (row.state == jobs::kVbUploaded && !co_await create(r, row)) co_return;
    if (row.state == jobs::kVbSubmitted) co_await poll(r, row);
    if (row.state == jobs::kVbApplying) {
        // After a restart: the batch ended; its files are recorded again (lines recorded
        // before are skipped). A failed batch's named lines are known from the vendor.
        std::vector<std::int64_t> bad;
        if (row.vendor_status == "failed") {
            auto res = co_await send(r, ob::get(r->p->config, r->p->api_key, row.vendor_id));
            std::optional<Error> err = call_error(res);
            if (err) co_return;
            auto b = ob::parse_batch(std::get<HttpResponse>(res), err);
            if (!b) co_return;
            bad = b->error_lines;
        }
        co_await apply(r, row, bad);
    }
}

// Opens a new vendor batch from the queue; false when nothing is ready.
asio::awaitable<bool> open_new(Runner* r) {
    const int limit = std::min(r->p->config.batch_max_requests, kVendorBatchMaxRequests);
    std::optional<jobs::Store::OpenedVendorBatch> opened;
    {
        Busy busy(r->s);
        auto fn = [provider = name(r), limit](jobs::Store& st) {
            return st.open_vendor_batch(provider, limit, jobs::unix_now(), kVendorBatchLeaseS);
        };
        opened =
            co_await r->s->db.call<std::optional<jobs::Store::OpenedVendorBatch>>(std::move(fn));
    }
    if (!opened) co_return false;
    VendorBatchRow row = opened->batch;
    log_state(r, row);
    if (!co_await upload(r, row, std::move(opened->requests))) co_return true;
    if (!co_await create(r, row)) co_return true;
    r->polls[row.id] =
        Poll{jobs::unix_now() + r->p->config.batch_poll_s, r->p->config.batch_poll_s};
    co_return true;
}

}  // namespace

asio::awaitable<void> batch_loop(EngineShared* s, ProviderRuntime* p) {
    Runner runner{s, p, {}, {}, {}, {}, {}};
    Runner* r = &runner;
    bool first = true;
    while (!s->stopping) {
        double wait = s->poll_interval_s;
        try {
            if (r->instance.empty()) {
                auto fn = [](jobs::Store& st) { return st.database_instance(); };
                r->instance = co_await s->db.call<std::string>(std::move(fn));
            }
            auto fn = [provider = p->config.name](jobs::Store& st) {
                return st.open_vendor_batches(provider);
            };
            auto rows = co_await s->db.call<std::vector<VendorBatchRow>>(std::move(fn));
            if (first) {
                // After a start, any uploaded chunk may have been created by the daemon before.
                for (const auto& row : rows)
                    if (row.state == jobs::kVbUploaded) r->maybe_created.insert(row.id);
                first = false;
            }
            auto& open_by = gauges()[p->config.name].open;
            open_by.clear();
            for (const auto& row : rows)
                ++open_by[row.vendor_status.empty() ? row.state : row.vendor_status];
            std::size_t open = 0;
            for (auto& row : rows) {
                if (s->stopping) break;
                co_await step(r, row);
                ++open;
            }
            while (!s->stopping && !p->lane.paused() &&
                   open < static_cast<std::size_t>(p->config.batch_max_open) &&
                   co_await open_new(r))
                ++open;
            const double now = jobs::unix_now();
            for (const auto& [id, pl] : r->polls)
                wait = std::min(wait, std::max(0.0, pl.next - now));
            wait = std::max(wait, 0.01);
        } catch (const std::exception& e) {
            spdlog::error("event=batch_runner_error provider={} error={}", q(p->config.name),
                          q(e.what()));
            wait = std::max(wait, 1.0);
        }
        if (s->stopping) break;
        co_await sleep_until_woken(p, wait);
    }
}

std::string render_vendor_batch_metrics() {
    if (gauges().empty()) return {};
    std::string out;
    out += "# HELP imgbatch_vendor_batches_open Vendor batches not finished, by status.\n";
    out += "# TYPE imgbatch_vendor_batches_open gauge\n";
    for (const auto& [provider, g] : gauges())
        for (const auto& [status, n] : g.open)
            out += "imgbatch_vendor_batches_open{provider=\"" + provider + "\",status=\"" + status +
                   "\"} " + std::to_string(n) + "\n";
    const std::pair<const char*, std::uint64_t Gauges::*> counters[] = {
        {"created", &Gauges::created},
        {"adopted", &Gauges::adopted},
        {"finished", &Gauges::finished}};
    for (const auto& [what, member] : counters) {
        out += std::string("# HELP imgbatch_vendor_batches_") + what + "_total Vendor batches " +
               what + " since start.\n";
        out += std::string("# TYPE imgbatch_vendor_batches_") + what + "_total counter\n";
        for (const auto& [provider, g] : gauges())
            out += std::string("imgbatch_vendor_batches_") + what + "_total{provider=\"" +
                   provider + "\"} " + std::to_string(g.*member) + "\n";
    }
    return out;
}

}  // namespace imgbatch::daemon
