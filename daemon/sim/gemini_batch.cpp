// The simulator's Gemini Batch Mode and Files API (v1beta REST shapes):
//   POST /upload/v1beta/files (X-Goog-Upload-Command: start, then "upload, finalize" to the
//        X-Goog-Upload-URL it answers), GET /download/v1beta/files/{id}:download?alt=media
//   POST /v1beta/models/{model}:batchGenerateContent (inline requests or inputConfig.fileName)
//   GET /v1beta/batches/{id}, GET /v1beta/batches (?pageSize, ?pageToken; newest first),
//   POST /v1beta/batches/{id}:cancel
// A batch is BATCH_STATE_PENDING for the first quarter of --batch-ms, RUNNING until --batch-ms,
// then its lines run (each through api_call as a direct generateContent would, #fail
// directives included) and it is SUCCEEDED, with inlinedResponses (inline input) or a
// responses file (file input), in input order. Prompt directives of a line, as for OpenAI:
//   #expire     the batch expires before this line (once per line): the lines before it are
//               in the results, the rest are not (BATCH_STATE_EXPIRED)
//   #batchfail  the batch fails (BATCH_STATE_FAILED, the operation's error names the line)
//   #createlost the create is done but its answer never comes (once per input)
#include <boost/json.hpp>
#include <chrono>

#include "daemon/sim/batch_book.hpp"
#include "daemon/sim/state.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {
using sim_batch::has_token;

std::string rfc3339_now() {
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

SimAnswer json_body(int status, std::string body) {
    return sim_batch::answer(status, "application/json; charset=UTF-8", std::move(body));
}

SimAnswer google_error(int status, std::string_view grpc_status, std::string_view message) {
    json::object e{{"code", status}, {"message", message}, {"status", grpc_status}};
    return json_body(status, json::serialize(json::object{{"error", std::move(e)}}));
}

// The google.rpc.Code of an HTTP error status (the line's error in the results).
int grpc_code(int http) {
    switch (http) {
        case 400:
            return 3;
        case 401:
            return 16;
        case 403:
            return 7;
        case 404:
            return 5;
        case 409:
            return 10;
        case 429:
            return 8;
        case 501:
            return 12;
        case 503:
            return 14;
        case 504:
            return 4;
        default:
            return http >= 500 ? 13 : 2;
    }
}

struct GFile {
    std::string name, display, data, created;
};

struct GBatch {
    std::string name, model, display, state, input_file, responses_file, created, ended;
    bool inline_input = false;
    std::vector<std::pair<std::string, json::value>> requests;  // key, GenerateContentRequest
    json::array inline_responses;
    json::value error;  // null or a Status
    std::int64_t created_ms = 0, cancel_ms = -1;
    std::int64_t total = 0, succeeded = 0, failed = 0;
    bool done() const { return state != "BATCH_STATE_PENDING" && state != "BATCH_STATE_RUNNING"; }
};

}  // namespace

struct SimState::GeminiBatches {
    std::map<std::string, GFile> files;
    std::map<std::string, std::string> uploads;  // upload_id -> display name
    std::vector<GBatch> batches;                 // in creation order
    sim_batch::BatchBook book;                   // lost creates keyed by input file or displayName
    std::uint64_t next = 1;
};

namespace {

json::object operation_json(const GBatch& b) {
    json::object m{{"@type",
                    "type.googleapis.com/google.ai.generativelanguage.v1beta."
                    "GenerateContentBatch"},
                   {"name", b.name},
                   {"model", "models/" + b.model},
                   {"displayName", b.display},
                   {"createTime", b.created},
                   {"updateTime", b.ended.empty() ? b.created : b.ended},
                   {"state", b.state}};
    if (!b.inline_input) m["inputConfig"] = json::object{{"fileName", b.input_file}};
    json::object stats{{"requestCount", std::to_string(b.total)}};
    if (b.done()) {
        stats["successfulRequestCount"] = std::to_string(b.succeeded);
        stats["failedRequestCount"] = std::to_string(b.failed);
        m["endTime"] = b.ended;
    } else {
        stats["pendingRequestCount"] = std::to_string(b.total);
    }
    m["batchStats"] = std::move(stats);
    json::object op{{"name", b.name}};
    if (b.done() && b.error.is_null()) {
        json::object out;
        if (b.inline_input)
            out["inlinedResponses"] = json::object{{"inlinedResponses", b.inline_responses}};
        else if (!b.responses_file.empty())
            out["responsesFile"] = b.responses_file;
        m["output"] = out;
        out["@type"] =
            "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput";
        op["response"] = std::move(out);
    }
    op["metadata"] = std::move(m);
    op["done"] = b.done();
    if (!b.error.is_null()) op["error"] = b.error;
    return op;
}

}  // namespace

void SimState::gemini_batch_stats(json::object& stats) const {
    if (!gemini_batches_) return;
    stats["gemini_batches"] = gemini_batches_->book.stats();
}

std::optional<SimAnswer> SimState::gemini_batch_api(const SimRequest& request,
                                                    std::string_view path) {
    const bool upload = path.ends_with("/upload/v1beta/files");
    const bool download = path.find("/download/v1beta/files/") != path.npos;
    const bool create =
        path.find("/models/") != path.npos && path.ends_with(":batchGenerateContent");
    const bool batches =
        path.ends_with("/v1beta/batches") || path.find("/v1beta/batches/") != path.npos;
    if (!upload && !download && !create && !batches) return std::nullopt;
    if (!gemini_batches_) gemini_batches_ = std::make_shared<GeminiBatches>();
    GeminiBatches& st = *gemini_batches_;
    ++by_path_[upload     ? "/upload/v1beta/files"
               : download ? "/download/v1beta/files"
               : create   ? ":batchGenerateContent"
                          : "/v1beta/batches"];
    if (!options_.api_key.empty() && request.goog_api_key != options_.api_key &&
        request.authorization != "Bearer " + options_.api_key)
        return google_error(400, "INVALID_ARGUMENT",
                            "API key not valid. Please pass a valid API key.");

    // Runs a batch's lines once its time has come (or once a cancel was asked).
    auto advance = [&](GBatch& b) {
        if (b.done()) return;
        const bool cancel = b.cancel_ms >= 0;
        if (auto p = sim_batch::phase(b.created_ms, options_.batch_ms, cancel);
            p != sim_batch::Phase::due) {
            if (p == sim_batch::Phase::running) b.state = "BATCH_STATE_RUNNING";
            return;
        }
        const std::size_t run = sim_batch::lines_to_run(b.requests.size(), cancel, b.created_ms,
                                                        b.cancel_ms, options_.batch_ms);
        std::string file;
        bool expired = false;
        for (std::size_t i = 0; i < run; ++i) {
            const auto& [key, req] = b.requests[i];
            const std::string text = json::serialize(req);
            if (!cancel && has_token(text, "#expire") && st.book.expires(text)) {
                expired = true;
                break;
            }
            std::string model = b.model;
            if (auto* m = req.is_object() ? req.get_object().if_contains("model") : nullptr;
                m && m->is_string() && !m->get_string().empty())
                model = std::string(m->get_string());
            if (model.starts_with("models/")) model = model.substr(7);
            SimRequest r;
            r.method = "POST";
            r.target = "/v1beta/models/" + model + ":generateContent";
            r.host = request.host;
            r.goog_api_key = options_.api_key;
            r.body = text;
            SimAnswer a = batch_line_call(SimApi::gemini, r);
            ++st.book.lines;
            boost::system::error_code ec;
            json::value body = a.action == SimAnswer::Action::respond ? json::parse(a.body, ec)
                                                                      : json::value(nullptr);
            json::object line;
            if (a.action == SimAnswer::Action::respond && a.status == 200 && !ec &&
                body.is_object()) {
                line["response"] = std::move(body);
                ++b.succeeded;
                images_ += static_cast<std::uint64_t>(a.images);
            } else {
                std::string message = "Internal error encountered.";
                if (!ec && body.is_object())
                    if (auto* e = body.get_object().if_contains("error"); e && e->is_object())
                        if (auto* m = e->get_object().if_contains("message"); m && m->is_string())
                            message = std::string(m->get_string());
                const int status = a.action == SimAnswer::Action::respond ? a.status : 500;
                line["error"] = json::object{{"code", grpc_code(status)}, {"message", message}};
                ++b.failed;
            }
            if (b.inline_input) {
                line["metadata"] = json::object{{"key", key}};
                b.inline_responses.push_back(std::move(line));
            } else {
                json::object keyed{{"key", key}};
                for (auto& [k, v] : line) keyed[k] = std::move(v);
                file += json::serialize(keyed);
                file += '\n';
            }
        }
        if (!b.inline_input && (!file.empty() || !expired)) {
            b.responses_file = "files/batch-" + std::to_string(st.next++);
            st.files[b.responses_file] =
                GFile{b.responses_file, "responses", std::move(file), rfc3339_now()};
        }
        b.state = cancel    ? "BATCH_STATE_CANCELLED"
                  : expired ? "BATCH_STATE_EXPIRED"
                            : "BATCH_STATE_SUCCEEDED";
        b.ended = rfc3339_now();
    };

    if (upload) {
        if (request.method != "POST") return google_error(405, "UNIMPLEMENTED", "Use POST");
        const std::string id = query_param(request.target, "upload_id");
        if (request.goog_upload == "start") {
            std::string display;
            boost::system::error_code ec;
            json::value v = json::parse(request.body, ec);
            if (!ec && v.is_object())
                if (auto* f = v.get_object().if_contains("file"); f && f->is_object())
                    if (auto* d = f->get_object().if_contains("displayName"); d && d->is_string())
                        display = std::string(d->get_string());
            const std::string uid = "sim-upload-" + std::to_string(st.next++);
            st.uploads[uid] = display;
            SimAnswer a = json_body(200, "");
            a.headers.emplace_back("X-Goog-Upload-Status", "active");
            a.headers.emplace_back("X-Goog-Upload-URL", "http://" + request.host +
                                                            "/upload/v1beta/files?upload_id=" +
                                                            uid + "&upload_protocol=resumable");
            return a;
        }
        auto it = st.uploads.find(id);
        if (it == st.uploads.end() || request.goog_upload.find("finalize") == std::string::npos)
            return google_error(400, "INVALID_ARGUMENT", "Unknown upload or command.");
        GFile f{"files/sim" + std::to_string(st.next++), it->second, request.body, rfc3339_now()};
        st.uploads.erase(it);
        json::object file{{"name", f.name},
                          {"displayName", f.display},
                          {"mimeType", "application/jsonl"},
                          {"sizeBytes", std::to_string(f.data.size())},
                          {"createTime", f.created},
                          {"state", "ACTIVE"},
                          {"uri", "http://" + request.host + "/v1beta/" + f.name}};
        st.files[f.name] = std::move(f);
        SimAnswer a = json_body(200, json::serialize(json::object{{"file", std::move(file)}}));
        a.headers.emplace_back("X-Goog-Upload-Status", "final");
        return a;
    }
    if (download) {
        std::string_view rest = path.substr(path.find("/download/v1beta/") + 17);
        if (!rest.ends_with(":download"))
            return google_error(404, "NOT_FOUND", "Unknown download path.");
        rest.remove_suffix(9);
        auto it = st.files.find(std::string(rest));
        if (it == st.files.end())
            return google_error(404, "NOT_FOUND", "File " + std::string(rest) + " not found.");
        return sim_batch::file_answer(it->second.data);
    }
    if (create) {
        if (request.method != "POST") return google_error(405, "UNIMPLEMENTED", "Use POST");
        std::string_view m = path.substr(path.find("/models/") + 8);
        m.remove_suffix(std::string_view(":batchGenerateContent").size());
        boost::system::error_code ec;
        json::value v = json::parse(request.body, ec);
        const json::object* batch = nullptr;
        if (!ec && v.is_object())
            if (auto* b = v.get_object().if_contains("batch"); b && b->is_object())
                batch = &b->get_object();
        if (!batch)
            return google_error(400, "INVALID_ARGUMENT",
                                "Invalid JSON payload: the body has no \"batch\" object.");
        GBatch b;
        b.model = std::string(m);
        if (auto* d = batch->if_contains("displayName"); d && d->is_string())
            b.display = std::string(d->get_string());
        const json::value* in = batch->if_contains("inputConfig");
        if (!in || !in->is_object())
            return google_error(400, "INVALID_ARGUMENT", "batch.inputConfig is required.");
        const auto& ic = in->get_object();
        std::string lost_key;
        if (auto* f = ic.if_contains("fileName"); f && f->is_string()) {
            b.input_file = std::string(f->get_string());
            auto it = st.files.find(b.input_file);
            if (it == st.files.end())
                return google_error(400, "INVALID_ARGUMENT",
                                    "File " + b.input_file + " not found.");
            for (std::string_view line : sim_batch::jsonl_lines(it->second.data)) {
                json::value lv = json::parse(line, ec);
                if (ec || !lv.is_object() || !lv.get_object().if_contains("request"))
                    return google_error(400, "INVALID_ARGUMENT",
                                        "Line " + std::to_string(b.requests.size() + 1) +
                                            " of the input file is not a request.");
                auto* key = lv.get_object().if_contains("key");
                b.requests.emplace_back(
                    key && key->is_string() ? std::string(key->get_string()) : std::string(),
                    lv.get_object().at("request"));
            }
            lost_key = b.input_file;
        } else if (auto* r = ic.if_contains("requests"); r && r->is_object()) {
            b.inline_input = true;
            auto* list = r->get_object().if_contains("requests");
            if (!list || !list->is_array())
                return google_error(400, "INVALID_ARGUMENT",
                                    "inputConfig.requests.requests is required.");
            for (const auto& item : list->get_array()) {
                const json::value* req =
                    item.is_object() ? item.get_object().if_contains("request") : nullptr;
                if (!req || !req->is_object())
                    return google_error(400, "INVALID_ARGUMENT",
                                        "Each InlinedRequest needs a request.");
                std::string key;
                if (auto* md = item.get_object().if_contains("metadata"); md && md->is_object())
                    if (auto* k = md->get_object().if_contains("key"); k && k->is_string())
                        key = std::string(k->get_string());
                b.requests.emplace_back(std::move(key), *req);
            }
            lost_key = b.display;
        } else {
            return google_error(400, "INVALID_ARGUMENT", "inputConfig needs fileName or requests.");
        }
        if (b.requests.empty())
            return google_error(400, "INVALID_ARGUMENT", "The batch has no requests.");
        b.total = static_cast<std::int64_t>(b.requests.size());
        b.name = "batches/sim" + std::to_string(st.next++);
        b.state = "BATCH_STATE_PENDING";
        b.created = rfc3339_now();
        b.created_ms = sim_batch::steady_ms();
        b.error = nullptr;
        bool lose = false;
        for (std::size_t i = 0; i < b.requests.size(); ++i) {
            const std::string text = json::serialize(b.requests[i].second);
            if (has_token(text, "#batchfail") && b.error.is_null()) {
                b.error = json::object{{"code", 3},
                                       {"message", "Request " + std::to_string(i + 1) +
                                                       " could not be validated (#batchfail)."}};
                b.state = "BATCH_STATE_FAILED";
                b.ended = rfc3339_now();
            }
            if (has_token(text, "#createlost")) lose = true;
        }
        lose = st.book.create(lose, lost_key);
        st.batches.push_back(std::move(b));
        if (lose) return sim_batch::held();
        return json_body(200, json::serialize(operation_json(st.batches.back())));
    }
    // batches
    if (request.method == "GET" && path.ends_with("/v1beta/batches")) {
        int size = 50;
        if (auto l = query_param(request.target, "pageSize"); !l.empty())
            size = std::clamp(std::atoi(l.c_str()), 1, 1000);
        std::size_t start = 0;
        if (auto t = query_param(request.target, "pageToken"); !t.empty())
            start = static_cast<std::size_t>(std::atoll(t.c_str()));
        json::array ops;
        std::size_t i = start;
        for (; i < st.batches.size() && static_cast<int>(ops.size()) < size; ++i) {
            auto& b = st.batches[st.batches.size() - 1 - i];
            advance(b);
            ops.push_back(operation_json(b));
        }
        json::object list{{"operations", std::move(ops)}};
        if (i < st.batches.size()) list["nextPageToken"] = std::to_string(i);
        return json_body(200, json::serialize(list));
    }
    std::string_view id = path.substr(path.find("/v1beta/") + 8);  // batches/...
    const bool cancel = id.ends_with(":cancel");
    if (cancel) id.remove_suffix(7);
    GBatch* b = nullptr;
    for (auto& x : st.batches)
        if (x.name == id) b = &x;
    if (!b) return google_error(404, "NOT_FOUND", "Batch " + std::string(id) + " not found.");
    if (cancel) {
        if (request.method != "POST") return google_error(405, "UNIMPLEMENTED", "Use POST");
        advance(*b);
        if (!b->done() && b->cancel_ms < 0) b->cancel_ms = sim_batch::steady_ms();
        return json_body(200, "{}");
    }
    if (request.method != "GET") return google_error(405, "UNIMPLEMENTED", "Use GET");
    advance(*b);
    return json_body(200, json::serialize(operation_json(*b)));
}

}  // namespace imgbatch::daemon
