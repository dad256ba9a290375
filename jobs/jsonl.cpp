// Reading .jsonl job files: our job lines, and OpenAI Batch API lines.
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>

#include "jobs/catalog.hpp"
#include "jobs/job_line.hpp"
#include "jobs/job_readers.hpp"
#include "jobs/text.hpp"

namespace imgbatch::jobs {
namespace {

constexpr std::string_view kBatchUrl = "/v1/images/generations";

std::string read_job_line(const boost::json::object& obj, JobDraft& d) {
    for (const auto& [name, value] : obj)
        if (auto err = set_job_field(d, name, value); !err.empty()) return err;
    return {};
}

// {"custom_id": "...", "method": "POST", "url": "/v1/images/generations", "body": {...}}.
// The body is the OpenAI request: its known fields are read, the rest passes through params.
std::string read_batch_line(const boost::json::object& obj, JobDraft& d) {
    const boost::json::object* body = nullptr;
    bool has_method = false, has_url = false;
    for (const auto& [name, v] : obj) {
        if (name == "custom_id") {
            if (!v.is_string() || v.get_string().empty())
                return type_error("custom_id", "a non-empty string", v);
            d.spec.key = v.get_string();
        } else if (name == "method") {
            if (!v.is_string() || v.get_string() != "POST")
                return type_error("method", "\"POST\"", v);
            has_method = true;
        } else if (name == "url") {
            if (!v.is_string() || v.get_string() != kBatchUrl)
                return type_error("url", "\"" + std::string(kBatchUrl) + "\"", v);
            has_url = true;
        } else if (name == "body") {
            if (!v.is_object()) return type_error("body", "an object", v);
            body = &v.get_object();
        } else {
            return "unknown field '" + std::string(name) +
                   "' in a Batch API line (known: custom_id, method, url, body)";
        }
    }
    if (!has_method) return field_error("method", "required in a Batch API line");
    if (!has_url) return field_error("url", "required in a Batch API line");
    if (!body) return field_error("body", "required in a Batch API line");

    for (const auto& [name, v] : *body) {
        const bool named =
            name == "prompt" || name == "model" || name == "n" || is_generation_field(name);
        if (named) {
            if (auto err = set_job_field(d, name, v, "body."); !err.empty()) return err;
        } else {
            d.spec.params[name] = v;
        }
    }
    return {};
}

}  // namespace

void read_jsonl(Input& in, ReadContext& ctx) {
    // One parser and one arena for the whole file: each line's DOM is thrown away after the
    // fields are copied out, so the arena is simply rewound.
    unsigned char first_block[8192];  // most lines fit: no allocation per line
    boost::json::monotonic_resource arena(first_block, sizeof first_block);
    boost::json::parser parser;
    for_each_line(in, ctx, [&](int no, std::string_view line) {
        if (trim(line).empty()) return;
        if (!is_clean_utf8(line)) return ctx.error(no, std::string(kNotUtf8));
        parser.reset(&arena);  // drops whatever a failed line left, then rewind the arena
        arena.release();
        boost::system::error_code ec;
        parser.write(line.data(), line.size(), ec);
        if (ec) return ctx.error(no, "malformed JSON: " + ec.message());
        const boost::json::value v = parser.release();  // lives in the arena
        if (!v.is_object()) return ctx.error(no, "line is not a JSON object");
        const auto& obj = v.get_object();
        JobDraft d;
        std::string err;
        if (is_export_row(obj)) {
            err = read_export_row(obj, d, ctx.defaults);
        } else {
            err = obj.contains("custom_id") ? read_batch_line(obj, d) : read_job_line(obj, d);
            if (err.empty()) err = finish_job(d, ctx.defaults);
        }
        if (!err.empty()) return ctx.error(no, std::move(err));
        d.spec.source = ctx.file;
        d.spec.line = no;
        ctx.job(std::move(d.spec));
    });
}

}  // namespace imgbatch::jobs
