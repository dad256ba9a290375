// The simulator's batch APIs. OpenAI: POST /v1/files (multipart, purpose=batch),
// GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches
// (?after, ?limit; newest first), POST /v1/batches/{id}/cancel. A batch is validating for the
// first quarter of --batch-ms, in_progress until --batch-ms, then its lines run (each through
// api_call, as a direct call would) and it is completed. Prompt directives of a line:
//   #expire     the batch expires before this line (the first time the line is seen): the
//               lines before it completed, the rest in the error file as batch_expired
//   #batchfail  the batch fails validation (status failed, errors naming the line)
//   #createlost the create is done but its answer never comes (held until the client gives
//               up): the crash window between creating a vendor batch and recording it (once
//               per input file)
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>

#include "daemon/sim/batch_book.hpp"
#include "daemon/sim/state.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

SimAnswer json_body(int status, std::string body) {
    return sim_batch::answer(status, "application/json", std::move(body));
}

SimAnswer openai_error(int status, std::string_view code, std::string_view message) {
    json::object e{{"message", message},
                   {"type", "invalid_request_error"},
                   {"param", nullptr},
                   {"code", code}};
    return json_body(status, json::serialize(json::object{{"error", std::move(e)}}));
}

// One part of a multipart/form-data body.
struct Part {
    std::string name, filename, data;
};

// The parts of a multipart body; the boundary is read from its first line (the body starts
// with "--boundary"). Empty when the body is not multipart.
std::vector<Part> multipart_parts(std::string_view body) {
    std::vector<Part> parts;
    if (!body.starts_with("--")) return parts;
    auto eol = body.find("\r\n");
    if (eol == std::string_view::npos) return parts;
    const std::string delim = "\r\n" + std::string(body.substr(0, eol));
    std::size_t pos = eol + 2;
    for (;;) {
        auto head_end = body.find("\r\n\r\n", pos);
        if (head_end == std::string_view::npos) break;
        std::string_view head = body.substr(pos, head_end - pos);
        auto next = body.find(delim, head_end + 4);
        if (next == std::string_view::npos) break;
        Part p;
        p.data = std::string(body.substr(head_end + 4, next - head_end - 4));
        auto field = [&head](std::string_view key) {
            auto k = head.find(key);
            if (k == std::string_view::npos) return std::string();
            auto start = k + key.size();
            auto end = head.find('"', start);
            return std::string(head.substr(start, end - start));
        };
        p.name = field(" name=\"");
        p.filename = field("filename=\"");
        parts.push_back(std::move(p));
        pos = next + delim.size();
        if (body.substr(pos, 2) == "--") break;
        pos += 2;  // CRLF
    }
    return parts;
}

}  // namespace

namespace {
using sim_batch::has_token;

struct SimFile {
    std::string id, filename, purpose, data;
    std::int64_t created_at = 0;
};
struct SimBatch {
    std::string id, endpoint, input_file_id, output_file_id, error_file_id, status;
    json::object metadata;
    json::value errors;  // null, or {"object":"list","data":[...]}
    std::int64_t created_at = 0, created_ms = 0, cancel_ms = -1;
    std::int64_t total = 0, completed = 0, failed = 0;
    std::map<std::string, std::int64_t> times;  // in_progress_at, completed_at, ...
};
}  // namespace

struct SimState::Batches {
    using File = SimFile;
    using Batch = SimBatch;
    std::map<std::string, File> files;
    std::vector<Batch> batches;  // in creation order
    sim_batch::BatchBook book;   // lost creates keyed by input file
    std::uint64_t next_file = 1, next_line = 1;

    Batch* find(std::string_view id) {
        for (auto& b : batches)
            if (b.id == id) return &b;
        return nullptr;
    }
    std::string add_file(std::string filename, std::string purpose, std::string data) {
        File f{"file-" + std::to_string(next_file++), std::move(filename), std::move(purpose),
               std::move(data), now_s()};
        std::string id = f.id;
        files[id] = std::move(f);
        return id;
    }
};

namespace {

json::object file_json(const SimFile& f) {
    return {{"id", f.id},
            {"object", "file"},
            {"bytes", f.data.size()},
            {"created_at", f.created_at},
            {"filename", f.filename},
            {"purpose", f.purpose},
            {"status", "processed"},
            {"status_details", nullptr}};
}

json::object batch_json(const SimBatch& b) {
    json::object o{
        {"id", b.id},
        {"object", "batch"},
        {"endpoint", b.endpoint},
        {"errors", b.errors},
        {"input_file_id", b.input_file_id},
        {"completion_window", "24h"},
        {"status", b.status},
        {"output_file_id",
         b.output_file_id.empty() ? json::value(nullptr) : json::value(b.output_file_id)},
        {"error_file_id",
         b.error_file_id.empty() ? json::value(nullptr) : json::value(b.error_file_id)},
        {"created_at", b.created_at},
        {"expires_at", b.created_at + 86400},
        {"request_counts", {{"total", b.total}, {"completed", b.completed}, {"failed", b.failed}}},
        {"metadata", b.metadata}};
    for (const char* k : {"in_progress_at", "finalizing_at", "completed_at", "failed_at",
                          "expired_at", "cancelling_at", "cancelled_at"}) {
        auto it = b.times.find(k);
        o[k] = it == b.times.end() ? json::value(nullptr) : json::value(it->second);
    }
    return o;
}

}  // namespace

void SimState::batch_stats(json::object& stats) const {
    if (!batches_) return;
    stats["batches"] = batches_->book.stats();
}

std::optional<SimAnswer> SimState::batch_api(const SimRequest& request, std::string_view path) {
    const bool files = path.ends_with("/v1/files") || path.find("/v1/files/") != path.npos;
    const bool batches = path.ends_with("/v1/batches") || path.find("/v1/batches/") != path.npos;
    if (!files && !batches) return std::nullopt;
    if (!batches_) batches_ = std::make_shared<Batches>();
    Batches& st = *batches_;
    ++by_path_[files ? "/v1/files" : "/v1/batches"];
    if (!options_.api_key.empty() && request.authorization != "Bearer " + options_.api_key)
        return openai_error(401, "invalid_api_key", "Incorrect API key provided.");

    // Runs a batch's lines once its time has come (or once a cancel was asked).
    auto advance = [&](Batches::Batch& b) {
        if (b.status != "validating" && b.status != "in_progress" && b.status != "cancelling")
            return;
        const bool cancel = b.status == "cancelling";
        if (auto p = sim_batch::phase(b.created_ms, options_.batch_ms, cancel);
            p != sim_batch::Phase::due) {
            if (p == sim_batch::Phase::running && b.status == "validating") {
                b.status = "in_progress";
                b.times["in_progress_at"] = now_s();
            }
            return;
        }
        const auto lines = sim_batch::jsonl_lines(st.files[b.input_file_id].data);
        b.total = static_cast<std::int64_t>(lines.size());
        // A cancel keeps the lines done by then: their share of the batch's time.
        const std::size_t run = sim_batch::lines_to_run(lines.size(), cancel, b.created_ms,
                                                        b.cancel_ms, options_.batch_ms);
        std::string out, err;
        bool expired = false;
        for (std::size_t i = 0; i < lines.size(); ++i) {
            boost::system::error_code ec;
            json::value v = json::parse(lines[i], ec);
            std::string cid;
            if (!ec && v.is_object())
                if (auto* c = v.get_object().if_contains("custom_id"); c && c->is_string())
                    cid = std::string(c->get_string());
            std::string prefix = "{\"id\":\"batch_req_" + std::to_string(st.next_line++) +
                                 "\",\"custom_id\":" + json::serialize(json::value(cid));
            std::string body_text;
            if (!ec && v.is_object())
                if (auto* body = v.get_object().if_contains("body"))
                    body_text = json::serialize(*body);
            if (!expired && !cancel && i < run && has_token(body_text, "#expire") &&
                st.book.expires(body_text))
                expired = true;
            if (expired || i >= run) {
                if (!expired) continue;  // cancelled before it ran: in neither file
                err += prefix +
                       ",\"response\":null,\"error\":{\"code\":\"batch_expired\",\"message\":"
                       "\"This request could not be executed before the completion window "
                       "expired.\"}}\n";
                ++b.failed;
                continue;
            }
            SimRequest r;
            r.method = "POST";
            r.target = b.endpoint;
            r.host = request.host;
            r.authorization = "Bearer " + options_.api_key;
            r.body = body_text;
            SimAnswer a = batch_line_call(SimApi::openai, r);
            ++st.book.lines;
            if (a.action != SimAnswer::Action::respond || a.body.empty() || a.body[0] != '{') {
                a = openai_error(500, "server_error",
                                 "The server had an error processing your request.");
                a.status = 500;
            }
            std::string line = prefix +
                               ",\"response\":{\"status_code\":" + std::to_string(a.status) +
                               ",\"request_id\":\"req_" + std::to_string(st.next_line) +
                               "\",\"body\":" + a.body + "},\"error\":null}\n";
            if (a.status == 200) {
                out += line;
                ++b.completed;
                images_ += static_cast<std::uint64_t>(a.images);
            } else {
                err += line;
                ++b.failed;
            }
        }
        if (!out.empty()) b.output_file_id = st.add_file("batch_output.jsonl", "batch_output", out);
        if (!err.empty()) b.error_file_id = st.add_file("batch_errors.jsonl", "batch_output", err);
        b.status = cancel ? "cancelled" : expired ? "expired" : "completed";
        if (!cancel && !expired) b.times["finalizing_at"] = now_s();
        b.times[b.status + "_at"] = now_s();
    };

    const auto rest = [&](std::string_view prefix) {
        auto at = path.find(prefix);
        return path.substr(at + prefix.size());
    };

    if (files) {
        if (request.method == "POST" && path.ends_with("/v1/files")) {
            std::string purpose, filename, data;
            bool got_file = false;
            for (auto& p : multipart_parts(request.body)) {
                if (p.name == "purpose") purpose = p.data;
                if (p.name == "file") {
                    filename = p.filename;
                    data = std::move(p.data);
                    got_file = true;
                }
            }
            if (!got_file)
                return openai_error(400, "invalid_request", "'file' is a required property");
            if (purpose != "batch" && purpose != "assistants" && purpose != "vision" &&
                purpose != "fine-tune" && purpose != "user_data")
                return openai_error(400, "invalid_request", "Invalid value for 'purpose'.");
            auto id = st.add_file(filename, purpose, std::move(data));
            return json_body(200, json::serialize(file_json(st.files[id])));
        }
        std::string_view id = rest("/v1/files/");
        const bool content = id.ends_with("/content");
        if (content) id.remove_suffix(std::string_view("/content").size());
        auto it = st.files.find(std::string(id));
        if (it == st.files.end())
            return openai_error(404, "not_found", "No such File object: " + std::string(id));
        if (request.method != "GET") return openai_error(405, "method_not_allowed", "Use GET");
        if (!content) return json_body(200, json::serialize(file_json(it->second)));
        return sim_batch::file_answer(it->second.data);
    }

    if (request.method == "POST" && path.ends_with("/v1/batches")) {
        boost::system::error_code ec;
        json::value v = json::parse(request.body, ec);
        if (ec || !v.is_object())
            return openai_error(400, "invalid_json", "We could not parse the JSON body.");
        const auto& o = v.get_object();
        auto str = [&o](std::string_view k) {
            auto* p = o.if_contains(k);
            return p && p->is_string() ? std::string(p->get_string()) : std::string();
        };
        Batches::Batch b;
        b.input_file_id = str("input_file_id");
        b.endpoint = str("endpoint");
        if (str("completion_window") != "24h")
            return openai_error(400, "invalid_value", "completion_window must be '24h'.");
        if (b.endpoint != "/v1/images/generations" && b.endpoint != "/v1/images/edits" &&
            b.endpoint != "/v1/chat/completions" && b.endpoint != "/v1/responses" &&
            b.endpoint != "/v1/embeddings")
            return openai_error(400, "invalid_value", "Invalid endpoint.");
        auto file = st.files.find(b.input_file_id);
        if (file == st.files.end() || file->second.purpose != "batch")
            return openai_error(400, "invalid_request", "No such File object: " + b.input_file_id);
        if (auto* m = o.if_contains("metadata"); m && m->is_object()) {
            if (m->get_object().size() > 16)
                return openai_error(400, "invalid_value", "metadata: at most 16 pairs.");
            b.metadata = m->get_object();
        }
        b.id = "batch_" + std::to_string(st.batches.size() + 1) + "sim";
        b.status = "validating";
        b.errors = nullptr;
        b.created_at = now_s();
        b.created_ms = sim_batch::steady_ms();
        // Validation: every line names the endpoint; a #batchfail line fails the batch.
        const auto& data = file->second.data;
        std::int64_t line_no = 0;
        for (std::string_view line : sim_batch::jsonl_lines(data)) {
            ++line_no;
            ++b.total;
            json::value lv = json::parse(line, ec);
            std::string why, code;
            if (ec || !lv.is_object()) {
                why = "This line is not parseable as valid JSON.";
                code = "invalid_json_line";
            } else if (auto* u = lv.get_object().if_contains("url");
                       !u || !u->is_string() || u->get_string() != b.endpoint) {
                why = "The URL provided for this request does not match the batch endpoint.";
                code = "mismatched_endpoint";
            } else if (has_token(line, "#batchfail")) {
                why = "The request could not be validated (#batchfail).";
                code = "invalid_request";
            }
            if (!why.empty() && b.errors.is_null()) {
                b.errors = json::object{{"object", "list"},
                                        {"data", json::array{json::object{{"code", code},
                                                                          {"message", why},
                                                                          {"param", nullptr},
                                                                          {"line", line_no}}}}};
            }
        }
        if (!b.errors.is_null()) {
            b.status = "failed";
            b.times["failed_at"] = now_s();
        }
        const bool lose = st.book.create(has_token(data, "#createlost"), b.input_file_id);
        st.batches.push_back(std::move(b));
        if (lose) return sim_batch::held();
        return json_body(200, json::serialize(batch_json(st.batches.back())));
    }
    if (request.method == "GET" && path.ends_with("/v1/batches")) {
        int limit = 20;
        if (auto l = query_param(request.target, "limit"); !l.empty())
            limit = std::clamp(std::atoi(l.c_str()), 1, 100);
        const std::string after = query_param(request.target, "after");
        json::array data;
        bool started = after.empty(), more = false;
        for (auto it = st.batches.rbegin(); it != st.batches.rend(); ++it) {
            if (!started) {
                started = it->id == after;
                continue;
            }
            if (static_cast<int>(data.size()) == limit) {
                more = true;
                break;
            }
            advance(*it);
            data.push_back(batch_json(*it));
        }
        json::object list{{"object", "list"}, {"has_more", more}};
        list["first_id"] = data.empty() ? json::value(nullptr) : data.front().at("id");
        list["last_id"] = data.empty() ? json::value(nullptr) : data.back().at("id");
        list["data"] = std::move(data);
        return json_body(200, json::serialize(list));
    }
    std::string_view id = rest("/v1/batches/");
    const bool cancel = id.ends_with("/cancel");
    if (cancel) id.remove_suffix(std::string_view("/cancel").size());
    Batches::Batch* b = st.find(id);
    if (!b)
        return openai_error(404, "not_found", "No batch found with id '" + std::string(id) + "'.");
    if (cancel) {
        if (request.method != "POST") return openai_error(405, "method_not_allowed", "Use POST");
        advance(*b);
        if (b->status == "validating" || b->status == "in_progress") {
            b->status = "cancelling";
            b->cancel_ms = sim_batch::steady_ms();
            b->times["cancelling_at"] = now_s();
            return json_body(200, json::serialize(batch_json(*b)));
        }
        if (b->status != "cancelling" && b->status != "cancelled")
            return openai_error(400, "invalid_request",
                                "Cannot cancel a batch with status '" + b->status + "'.");
        return json_body(200, json::serialize(batch_json(*b)));
    }
    if (request.method != "GET") return openai_error(405, "method_not_allowed", "Use GET");
    advance(*b);
    return json_body(200, json::serialize(batch_json(*b)));
}

}  // namespace imgbatch::daemon
