// Vendor batch submission: the input file of a chunk, its upload, the create, and the
// adoption of a vendor batch whose create was not recorded.
#include <limits>

#include "daemon/engine/batch_common.hpp"
#include "daemon/engine/budget_dispatch.hpp"

namespace imgbatch::daemon::vbatch {

namespace {

struct Content {
    std::string text;
    std::string model;                      // of the first line: one model a vendor batch
    std::vector<jobs::ClaimedRequest> bad;  // could not be built
    std::vector<std::string> why;
    std::vector<jobs::LeasedAttempt> over;  // over the byte limit, or of another model
    std::int64_t lines = 0;
};

// The input of lines, in request id order, up to max_bytes. A vendor batch runs one model
// (both vendors ask it): lines of another model go back to the queue for a later one.
void add_lines(Runner* r, Content& c, const std::vector<jobs::ClaimedRequest>& lines,
               std::size_t max_bytes) {
    for (const auto& req : lines) {
        if (!c.over.empty() || (!c.model.empty() && req.model != c.model)) {
            c.over.push_back({req.request_id, req.attempt_no});
            continue;
        }
        std::string line;
        try {
            line = r->v->input_line(jobs::custom_id(req.request_id, req.attempt_no), *r->p->api,
                                    generation(req), r->p->config);
        } catch (const std::exception& e) {
            c.bad.push_back(req);
            c.why.push_back(e.what());
            continue;
        }
        if (c.text.size() + line.size() > max_bytes && c.lines > 0) {
            c.over.push_back({req.request_id, req.attempt_no});
            continue;
        }
        c.model = req.model;
        c.text += line;
        ++c.lines;
    }
}

// The input of row from the lines recorded for it (after a restart; nothing is dropped).
asio::awaitable<Content> read_input(Runner* r, const VendorBatchRow& row) {
    Content c;
    std::int64_t after = 0;
    for (;;) {
        auto page = co_await open_lines(r, row.id, after, 1000);
        if (page.empty()) break;
        after = page.back().request_id;
        add_lines(r, c, page, std::numeric_limits<std::size_t>::max());
    }
    co_return c;
}

// A vendor batch that cannot be submitted (the vendor refused it for good): each of its lines
// ends with the error as the policy decides, and the batch is abandoned.
asio::awaitable<void> abandon(Runner* r, VendorBatchRow& row, Error err, std::string step) {
    Busy busy(r->s);
    std::int64_t after = 0;
    for (;;) {
        auto page = co_await open_lines(r, row.id, after, 1000);
        if (page.empty()) break;
        after = page.back().request_id;
        co_await end_lines(r, row.id, std::move(page), err, row.created_at);
    }
    r->inputs.erase(row.id);
    row.state = std::string(jobs::kVbAbandoned);
    row.message = step + ": " + err.message;
    co_await save(r, row);
}

}  // namespace

// preparing -> uploaded: builds the input file from the lines not recorded yet and uploads it.
// Returns false when the step must be tried again later.
asio::awaitable<bool> upload(Runner* r, VendorBatchRow& row,
                             std::vector<jobs::ClaimedRequest> first) {
    Content c;
    const std::size_t max_bytes = r->v->max_bytes(r->p->config);
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
        // Back in the queue: reserved again when a later chunk admits them.
        for (const auto& a : c.over) line_ended(r, row.id, a.request_id, "", false, {}, 0);
        budget_recheck(r->s);
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
    std::string file_id;
    if (r->v->inline_input(r->p->config, c.text.size(), c.lines)) {
        // The lines go in the create itself: kept until then.
        file_id = std::string(kInlineInput);
        r->inputs[row.id] = Input{c.model, std::move(c.text)};
    } else {
        r->inputs[row.id] = Input{c.model, {}};
        auto up = co_await r->v->upload(r->p->client.get(), &r->p->config, r->p->keys.key(),
                                        row.chunk + std::string(".jsonl"), std::move(c.text));
        if (up.error) {
            const Error& err = *up.error;
            spdlog::warn(
                "event=vendor_batch_upload_failed provider={} id={} class={} http={} error={}",
                q(name(r)), row.id, q(jobs::to_string(err.cls)), err.http_status, q(err.message));
            if (permanent(err)) co_await abandon(r, row, err, "upload");
            co_return false;
        }
        file_id = std::move(up.file_id);
    }
    row.input_file_id = file_id;
    row.bytes = bytes;
    row.state = std::string(jobs::kVbUploaded);
    row.vendor_status = "";
    co_await save(r, row);
    co_return true;
}

namespace {

// A vendor batch this database created for row's chunk (a create whose answer or record was
// lost), found by its metadata.
asio::awaitable<std::optional<bt::Batch>> find_created(Runner* r, const VendorBatchRow& row,
                                                       bool* listed) {
    *listed = false;
    std::string after;
    for (;;) {
        auto res = co_await send(r, r->v->list(r->p->config, r->p->keys.key(), after, kListPage));
        std::optional<Error> err = call_error(res);
        std::optional<bt::BatchPage> page;
        if (!err) page = r->v->parse_list(std::get<HttpResponse>(res), err);
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
    auto res = co_await send(r, r->v->list(r->p->config, r->p->keys.key(), "", kListPage));
    std::optional<Error> err = call_error(res);
    std::optional<bt::BatchPage> page;
    if (!err) page = r->v->parse_list(std::get<HttpResponse>(res), err);
    if (!page) co_return;
    for (const auto& b : page->batches) {
        if (b.database != r->instance || b.chunk != row.chunk || b.id == row.vendor_id) continue;
        auto c = co_await send(r, r->v->cancel(r->p->config, r->p->keys.key(), b.id));
        spdlog::error("event=vendor_batch_duplicate provider={} id={} vendor_id={} kept={} ok={}",
                      q(name(r)), row.id, q(b.id), q(row.vendor_id), !call_error(c));
    }
}

}  // namespace

void take(VendorBatchRow& row, const bt::Batch& b) {
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
    auto input = r->inputs.find(row.id);
    if (input == r->inputs.end() ||
        (row.input_file_id == kInlineInput && input->second.lines.empty())) {
        // After a restart: the model (and an inline input) from the recorded lines.
        Content c = co_await read_input(r, row);
        input = r->inputs.insert_or_assign(row.id, Input{c.model, std::move(c.text)}).first;
        if (row.input_file_id != kInlineInput) std::string().swap(input->second.lines);
    }
    auto res = co_await send(
        r, r->v->create(r->p->config, r->p->keys.key(), row.input_file_id, input->second.lines,
                        input->second.model, r->instance, row.chunk));
    std::optional<Error> err = call_error(res);
    std::optional<bt::Batch> b;
    if (!err) b = r->v->parse_batch(std::get<HttpResponse>(res), err);
    if (err) {
        spdlog::warn("event=vendor_batch_create_failed provider={} id={} class={} http={} error={}",
                     q(name(r)), row.id, q(jobs::to_string(err->cls)), err->http_status,
                     q(err->message));
        // A 4xx was refused before anything was created: no batch to look for.
        if (std::holds_alternative<HttpResponse>(res) && std::get<HttpResponse>(res).status < 500)
            r->maybe_created.erase(row.id);
        if (permanent(*err)) co_await abandon(r, row, *err, "create");
        co_return false;
    }
    r->inputs.erase(row.id);
    take(row, *b);
    row.state = std::string(jobs::kVbSubmitted);
    ++gauges()[name(r)].created;
    co_await save(r, row);
    r->maybe_created.erase(row.id);
    co_await cancel_duplicates(r, row);
    co_return true;
}

}  // namespace imgbatch::daemon::vbatch
