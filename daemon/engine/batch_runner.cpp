#include "daemon/engine/batch_runner.hpp"
#include "daemon/engine/batch_common.hpp"
#include "daemon/engine/budget_dispatch.hpp"

namespace imgbatch::daemon {
namespace vbatch {

const std::string& name(Runner* r) {
    return r->p->config.name;
}

void log_state(Runner* r, const VendorBatchRow& row) {
    std::string key = row.state + "/" + row.vendor_status;
    auto& last = r->logged[row.id];
    if (last == key) return;
    last = key;
    auto level = row.state == jobs::kVbAbandoned || r->v->is_failed(row.vendor_status) ||
                         r->v->is_expired(row.vendor_status)
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
    // An ended vendor batch's lines never recorded (of jobs cancelled meanwhile) reserve no more.
    if (row.state == jobs::kVbDone || row.state == jobs::kVbAbandoned) release_reserved(r, row.id);
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

void release_reserved(Runner* r, std::int64_t vb) {
    auto it = r->reserved.find(vb);
    if (it == r->reserved.end()) return;
    for (auto id : it->second) budget_line_ended(r->s, id, "", true, false, std::nullopt, 0);
    r->reserved.erase(it);
    budget_recheck(r->s);
}

void line_ended(Runner* r, std::int64_t vb, std::int64_t request_id, const std::string& batch,
                bool recorded, std::optional<double> cost, double finished_at) {
    // Only a reservation this vendor batch made: the request may be reserved again elsewhere
    // (a retry as a direct call) by the time a stale result comes back.
    bool reserved = false;
    if (auto it = r->reserved.find(vb); it != r->reserved.end())
        reserved = it->second.erase(request_id) > 0;
    budget_line_ended(r->s, request_id, batch, reserved, recorded, cost, finished_at);
}

asio::awaitable<std::vector<jobs::ClaimedRequest>> admit_chunk(
    Runner* r, VendorBatchRow& row, std::vector<jobs::ClaimedRequest> lines) {
    release_reserved(r, row.id);  // admitted again as a whole
    std::set<std::string> names;
    for (const auto& l : lines) names.insert(l.batch);
    // Known before the test below: a new batch's own budget is only known once read.
    const bool known =
        co_await budget_know(r->s, std::vector<std::string>(names.begin(), names.end()));
    if (known && !r->s->budget.enabled()) co_return lines;
    // A stop before the spend was known: the whole chunk goes back to the queue.
    std::vector<bool> ok(lines.size(), false);
    if (known) ok = budget_admit_lines(r->s, r->p, lines, jobs::unix_now());
    std::vector<jobs::ClaimedRequest> keep;
    std::vector<jobs::LeasedAttempt> back;
    auto& ids = r->reserved[row.id];
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (ok[i]) {
            ids.insert(lines[i].request_id);
            keep.push_back(std::move(lines[i]));
        } else {
            back.push_back({lines[i].request_id, lines[i].attempt_no});
        }
    }
    if (!back.empty()) {
        Busy busy(r->s);
        try {
            auto fn = [id = row.id, back](jobs::Store& st) {
                return st.return_vendor_batch_lines(id, back, jobs::unix_now());
            };
            co_await r->s->db.call<int>(std::move(fn));
        } catch (...) {
            // Every line is still in the chunk: admitted again at its next step.
            release_reserved(r, row.id);
            throw;
        }
        row.requests -= static_cast<std::int64_t>(back.size());
        spdlog::info("event=vendor_batch_budget provider={} id={} admitted={} returned={} note={}",
                     q(name(r)), row.id, keep.size(), back.size(),
                     q(keep.empty() ? "a budget holds every line: nothing is submitted"
                                    : "a budget holds the other lines: they stay queued"));
    }
    if (keep.empty()) r->reserved.erase(row.id);
    co_return keep;
}

namespace {

// The reservations of the vendor batches already (or perhaps) at the vendor, rebuilt from
// their lines not recorded yet (at start, after a budget was set): money committed before this
// daemon ran, or before the budget, is never forgotten. Chunks not uploaded yet are admitted at
// their next step instead.
asio::awaitable<void> rebuild_reservations(Runner* r, const std::vector<VendorBatchRow>& rows) {
    int batches = 0, unpriced = 0;
    std::int64_t lines = 0;
    double usd = 0;
    for (const auto& row : rows) {
        if (row.state == jobs::kVbPreparing) continue;
        std::int64_t after = 0;
        for (;;) {
            auto page = co_await open_lines(r, row.id, after, 1000);
            if (page.empty()) break;
            after = page.back().request_id;
            usd += budget_reserve_lines(r->s, r->p, page, &unpriced);
            auto& ids = r->reserved[row.id];
            for (const auto& l : page) ids.insert(l.request_id);
            lines += static_cast<std::int64_t>(page.size());
        }
        ++batches;
    }
    if (batches > 0)
        spdlog::info(
            "event=budget_vendor_batches_reserved provider={} vendor_batches={} lines={} "
            "usd={:.4f} unpriced_lines={}",
            q(name(r)), batches, lines, usd, unpriced);
    if (unpriced > 0)
        spdlog::warn(
            "event=budget_unpriced_lines provider={} lines={} note={}", q(name(r)), unpriced,
            q("open vendor batch lines without a price are reserved at 0: set the provider's "
              "prices"));
    budget_recheck(r->s);
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
    if (!r->cancel_sent.count(row.id) && r->v->is_open(row.vendor_status) &&
        !r->v->is_cancelling(row.vendor_status)) {
        auto check = [id = row.id](jobs::Store& st) { return st.vendor_batch_cancelled(id); };
        if (co_await r->s->db.call<bool>(std::move(check))) {
            r->cancel_sent.insert(row.id);
            auto res =
                co_await send(r, r->v->cancel(r->p->config, r->p->keys.key(), row.vendor_id));
            spdlog::info("event=vendor_batch_cancel provider={} id={} vendor_id={} ok={}",
                         q(name(r)), row.id, q(row.vendor_id), !call_error(res));
        }
    }
    auto res = co_await send(r, r->v->get(r->p->config, r->p->keys.key(), row.vendor_id));
    std::optional<Error> err = call_error(res);
    std::optional<bt::Batch> b;
    if (!err) b = r->v->parse_batch(std::get<HttpResponse>(res), err);
    pl.next = jobs::unix_now() + pl.delay;
    pl.delay = std::min(pl.delay * 1.5, r->p->config.batch_poll_max_s);
    if (err) {
        spdlog::warn("event=vendor_batch_poll_failed provider={} id={} error={}", q(name(r)),
                     row.id, q(err->message));
        co_return;
    }
    const std::string before = row.vendor_status;
    take(row, *b);
    if (!r->v->is_open(b->status)) {
        row.state = std::string(jobs::kVbApplying);
        co_await save(r, row);
        co_await apply(r, row, b->error_lines);
        co_return;
    }
    if (row.vendor_status != before) co_await save(r, row);
}

// A submission step ended: a failure holds the next ones back (growing), a success clears that.
void submitted(Runner* r, bool ok) {
    if (ok) {
        r->hold_s = 0;
        r->hold_until = 0;
        return;
    }
    const auto& c = r->p->config;
    r->hold_s = r->hold_s > 0 ? std::min(r->hold_s * 2, c.batch_poll_max_s) : c.batch_poll_s;
    r->hold_until = jobs::unix_now() + r->hold_s;
}

bool held(Runner* r) {
    return jobs::unix_now() < r->hold_until;
}

asio::awaitable<void> step(Runner* r, VendorBatchRow row) {
    log_state(r, row);
    const bool submitting = row.state == jobs::kVbPreparing || row.state == jobs::kVbUploaded;
    if (submitting && held(r)) co_return;
    if (row.state == jobs::kVbPreparing && r->s->budget.enabled() && !r->reserved.count(row.id)) {
        // Recorded before a start, a budget, or a failed admission: admitted before it goes.
        std::vector<jobs::ClaimedRequest> lines;
        std::int64_t after = 0;
        for (;;) {
            auto page = co_await open_lines(r, row.id, after, 1000);
            if (page.empty()) break;
            after = page.back().request_id;
            std::move(page.begin(), page.end(), std::back_inserter(lines));
        }
        if (!lines.empty() && (co_await admit_chunk(r, row, std::move(lines))).empty()) co_return;
    }
    if (row.state == jobs::kVbPreparing) {
        const bool ok = co_await upload(r, row, {});
        submitted(r, ok || row.state != jobs::kVbPreparing);
        if (!ok) co_return;
    }
    if (row.state == jobs::kVbUploaded) {
        const bool ok = co_await create(r, row);
        submitted(r, ok || row.state != jobs::kVbUploaded);
        if (!ok) co_return;
    }
    if (row.state == jobs::kVbSubmitted) co_await poll(r, row);
    if (row.state == jobs::kVbApplying) {
        // After a restart: the batch ended; its files are recorded again (lines recorded
        // before are skipped). A failed batch's named lines are known from the vendor.
        std::vector<std::int64_t> bad;
        if (r->v->is_failed(row.vendor_status)) {
            auto res = co_await send(r, r->v->get(r->p->config, r->p->keys.key(), row.vendor_id));
            std::optional<Error> err = call_error(res);
            if (err) co_return;
            auto b = r->v->parse_batch(std::get<HttpResponse>(res), err);
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
        // The batches a batch budget holds stay queued.
        auto fn = [provider = name(r), limit, skip = r->s->budget.held_batches()](jobs::Store& st) {
            return st.open_vendor_batch(provider, limit, jobs::unix_now(), kVendorBatchLeaseS,
                                        skip);
        };
        opened =
            co_await r->s->db.call<std::optional<jobs::Store::OpenedVendorBatch>>(std::move(fn));
    }
    if (!opened) co_return false;
    VendorBatchRow row = opened->batch;
    opened->requests = co_await admit_chunk(r, row, std::move(opened->requests));
    if (opened->requests.empty()) co_return false;  // a budget holds: the row is gone
    log_state(r, row);
    const bool uploaded = co_await upload(r, row, std::move(opened->requests));
    submitted(r, uploaded || row.state != jobs::kVbPreparing);
    if (!uploaded) co_return true;
    const bool created = co_await create(r, row);
    submitted(r, created || row.state != jobs::kVbUploaded);
    if (!created) co_return true;
    r->polls[row.id] =
        Poll{jobs::unix_now() + r->p->config.batch_poll_s, r->p->config.batch_poll_s};
    co_return true;
}

}  // namespace
}  // namespace vbatch

using namespace vbatch;

asio::awaitable<void> batch_loop(EngineShared* s, ProviderRuntime* p) {
    Runner runner{s, p, make_batch_vendor(p->config), {}, {}, {}, {}, {}, {}};
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
            if (!s->budget.enabled()) {
                r->reservations_built = false;
                s->budget.vendor_reserved.erase(p->config.name);
            } else if (!r->reservations_built) {
                co_await rebuild_reservations(r, rows);
                r->reservations_built = true;
                s->budget.vendor_reserved.insert(p->config.name);
                s->wake_all();  // direct calls waited for these reservations
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
            // The co_await stays out of the condition: GCC 12 may evaluate it before the
            // conditions it follows.
            // A day or run budget that holds: no new vendor batch.
            while (!s->stopping && !p->lane.paused() && !held(r) && !s->budget.global_hold() &&
                   open < static_cast<std::size_t>(p->config.batch_max_open)) {
                if (!co_await open_new(r)) break;
                ++open;
            }
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
