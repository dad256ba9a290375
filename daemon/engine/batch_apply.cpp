// Vendor batch results: output and error files downloaded to a temporary file and recorded
// line by line, kGroup lines a group commit, through the completion path of direct calls.
#include "daemon/engine/batch_common.hpp"
#include "daemon/engine/budget_dispatch.hpp"

namespace imgbatch::daemon::vbatch {

namespace {

// Records completions in group commits (every one queued before the DB thread wakes goes
// into one transaction). Returns how many were applied.
// The line a result is for.
struct LineOf {
    std::int64_t job_id = 0;
    std::string batch;
};

asio::awaitable<void> complete_one(Runner* r, std::int64_t vb, std::shared_ptr<int> left,
                                   std::shared_ptr<asio::steady_timer> done, AttemptResult result,
                                   LineOf line) {
    const std::size_t images = result.completion.outputs.size();
    const auto request_id = result.completion.request_id;
    const int attempt_no = result.completion.attempt_no;
    const bool returned = result.completion.next == jobs::Next::returned;
    const std::optional<double> cost = result.completion.cost_usd;
    const double finished_at = result.completion.finished_at;
    const std::int64_t job_id = line.job_id;
    bool applied = false;
    try {
        applied = co_await r->s->db.complete(std::move(result.completion));
    } catch (const std::exception& e) {
        spdlog::error("event=complete_failed request={} error={}", request_id, q(e.what()));
    }
    // Billed when recorded: the line's reservation becomes its cost; a line returned unbilled
    // (or not recorded) gives its reservation back.
    line_ended(r, vb, request_id, line.batch, applied && !returned, cost, finished_at);
    if (applied) {
        r->p->counters.images += images;
        r->p->counters.count_attempt(
            result.outcome, result.completion.error
                                ? std::string(jobs::to_string(result.completion.error->cls))
                                : std::string());
    } else {
        spdlog::info("event=stale_completion job={} request={} attempt={}", job_id, request_id,
                     attempt_no);
    }
    if (--*left == 0) done->cancel();
}

asio::awaitable<void> complete_all(Runner* r, std::int64_t vb, std::vector<AttemptResult> results,
                                   std::vector<LineOf> lines) {
    if (results.empty()) co_return;
    auto left = std::make_shared<int>(static_cast<int>(results.size()));
    auto done = std::make_shared<asio::steady_timer>(r->s->executor);
    for (std::size_t i = 0; i < results.size(); ++i)
        asio::co_spawn(r->s->executor,
                       complete_one(r, vb, left, done, std::move(results[i]), std::move(lines[i])),
                       asio::detached);
    while (*left > 0) {
        done->expires_after(std::chrono::hours(1));
        co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    budget_recheck(r->s);  // once a group: reservations became costs
}

// Uniform [0, 1) for the retry policy's jitter, on whichever thread decodes the lines.
double line_jitter() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0, 1)(rng);
}

AttemptResult line_result(Runner* r, const jobs::ClaimedRequest& req, double started,
                          std::vector<jobs::OutputRecord> outputs, std::optional<Error> error,
                          std::string usage, std::int64_t vb) {
    AttemptResult a = make_completion(req, jobs::vendor_batch_owner(vb), started, jobs::unix_now(),
                                      std::move(outputs), std::move(error), std::move(usage),
                                      r->s->retry, line_jitter());
    // At the batch price, through the same path as a direct call's.
    price_attempt(a.completion, r->s->catalog, r->p->config, req, true);
    r->p->counters.add_spend(req.model, a.completion);
    return a;
}

// A line to retry goes to the batch_retry_direct provider's queue when that provider serves
// its model and its images (network thread: reads the other providers' settings).
void reroute(Runner* r, const jobs::ClaimedRequest& req, AttemptResult& a) {
    const std::string& target = r->p->config.batch_retry_direct;
    if (target.empty() || a.completion.next != jobs::Next::retry) return;
    for (const auto& other : r->s->providers) {
        const auto& c = other->config;
        if (c.name != target || c.mode != "direct") continue;
        const bool serves =
            std::find(c.models.begin(), c.models.end(), req.model) != c.models.end();
        const int left = req.n - req.images_done;
        if (serves && (c.max_images_per_request == 0 || left <= c.max_images_per_request))
            a.completion.requeue_provider = target;
        return;
    }
}

void log_line(Runner* r, const jobs::ClaimedRequest& req, const AttemptResult& a, std::int64_t vb,
              int http) {
    const auto& e = a.completion.error;
    spdlog::info(
        "event=attempt job={} request={} provider={} attempt={} outcome={} class={} http={} "
        "images={} vendor_batch={}{}",
        req.job_id, req.request_id, q(name(r)), req.attempt_no, q(a.outcome),
        q(e ? std::string(jobs::to_string(e->cls)) : ""), http, a.completion.outputs.size(), vb,
        a.completion.requeue_provider.empty()
            ? std::string()
            : fmt::format(" retry_provider={}", q(a.completion.requeue_provider)));
}

}  // namespace

// Records lines that end without a vendor answer: each with error (an attempt decided by the
// policy), or returned to the queue without using an attempt (no error).
asio::awaitable<void> end_lines(Runner* r, std::int64_t vb, std::vector<jobs::ClaimedRequest> lines,
                                std::optional<Error> error, double started) {
    std::vector<AttemptResult> results;
    std::vector<LineOf> jobs_of;
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
        reroute(r, req, a);
        log_line(r, req, a, vb, error ? error->http_status : 0);
        results.push_back(std::move(a));
        jobs_of.push_back({req.job_id, req.batch});
    }
    co_await complete_all(r, vb, std::move(results), std::move(jobs_of));
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

namespace {

// Lines from a downloaded file, kGroup at a time.
struct LineReader {
    const BatchVendor* vendor = nullptr;
    std::ifstream in;
    std::int64_t bad = 0;
};

struct ParsedGroup {
    std::vector<bt::Line> lines;
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
        auto line = reader.vendor->parse_line(text, &why);
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
                    share_cost(checked.images, r->s->catalog, r->p->config, *req, usage, error,
                               true);
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
    // Straight to a temporary file: memory does not grow with the file's size.
    const std::string path = temp_file(r, row.id, which);
    HttpRequest http = r->v->download(r->p->config, r->p->keys.key(), row.vendor_id, file_id);
    http.body_file = path;
    http.body_file_max = kMaxResultFileBytes;
    auto res = co_await send(r, std::move(http));
    if (auto err = call_error(res)) {
        std::error_code ec;
        std::filesystem::remove(path, ec);
        spdlog::warn("event=vendor_batch_download_failed provider={} id={} file={} error={}",
                     q(name(r)), row.id, q(file_id), q(err->message));
        co_return false;
    }
    if (r->v->inline_results(file_id)) {
        // The batch with its results inline (bounded by the vendor's inline limit): its lines.
        auto convert = [path, v = r->v.get(), id = std::string(file_id)] {
            std::string body;
            {
                std::ifstream in(path, std::ios::binary);
                body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
            }
            std::string lines = v->result_lines(id, std::move(body));
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f.write(lines.data(), static_cast<std::streamsize>(lines.size()));
            if (!f.flush()) throw std::runtime_error("write " + path + " failed");
            return 0;
        };
        co_await on_pool<int>(r->s, std::move(convert));
    }
    auto reader = std::make_shared<LineReader>();
    reader->vendor = r->v.get();
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
            std::vector<LineOf> jobs_of;
            for (std::size_t i = 0; i < d->results.size(); ++i) {
                reroute(r, *d->reqs[i], d->results[i]);
                log_line(r, *d->reqs[i], d->results[i], row.id, d->statuses[i]);
                jobs_of.push_back({d->reqs[i]->job_id, d->reqs[i]->batch});
            }
            applied += static_cast<std::int64_t>(d->results.size());
            co_await complete_all(r, row.id, std::move(d->results), std::move(jobs_of));
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
}  // namespace

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
    const bool failed = r->v->is_failed(row.vendor_status);
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

}  // namespace imgbatch::daemon::vbatch
