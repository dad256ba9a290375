#include "jobs/job_line.hpp"

#include <boost/json/serialize.hpp>
#include <climits>

#include "jobs/catalog.hpp"
#include "jobs/text.hpp"

namespace imgbatch::jobs {
namespace {

// Reads an int field; returns an error message or empty.
std::string get_int(std::string_view name, const boost::json::value& v, int& out) {
    if (!v.is_int64() && !v.is_uint64()) return type_error(name, "an integer", v);
    if (v.is_uint64() ? v.get_uint64() > INT_MAX
                      : v.get_int64() > INT_MAX || v.get_int64() < INT_MIN)
        return field_error(name, "out of range, got " + boost::json::serialize(v));
    out =
        static_cast<int>(v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64()));
    return {};
}

std::string get_string(std::string_view name, const boost::json::value& v, std::string& out) {
    if (!v.is_string()) return type_error(name, "a string", v);
    out.assign(v.get_string().data(), v.get_string().size());
    return {};
}

// Adds v's members to out; a member out already has (from a named field, a column, or the
// same object given twice) is an error rather than a silent overwrite.
std::string merge_object(std::string_view name, const boost::json::value& v,
                         boost::json::object& out) {
    if (!v.is_object()) return type_error(name, "an object", v);
    for (const auto& [k, val] : v.get_object()) {
        if (out.contains(k))
            return field_error(k, "given twice (as a field and in " + std::string(name) + ")");
        out[k] = val;
    }
    return {};
}

}  // namespace

const std::vector<std::string>& job_fields() {
    static const std::vector<std::string> fields = [] {
        std::vector<std::string> f{"prompt", "model", "n"};
        for (const auto& g : generation_fields()) f.push_back(g);
        for (const char* x : {"key", "provider", "priority", "params", "metadata"}) f.push_back(x);
        return f;
    }();
    return fields;
}

std::string field_error(std::string_view name, std::string_view what) {
    std::string s = "field '";
    s.append(name).append("': ").append(what);
    return s;
}

std::string type_error(std::string_view name, std::string_view type, const boost::json::value& v) {
    return field_error(name, "must be " + std::string(type) + ", got " + boost::json::serialize(v));
}

std::string set_job_field(JobDraft& d, std::string_view name, const boost::json::value& v,
                          std::string_view prefix) {
    if (v.is_null()) return {};
    // Names in messages carry the prefix; built only when prefixed (no allocation per field).
    std::string prefixed;
    if (!prefix.empty()) prefixed = std::string(prefix) + std::string(name);
    const std::string_view shown = prefix.empty() ? name : std::string_view(prefixed);
    JobSpec& s = d.spec;
    if (name == "prompt") {
        d.has_prompt = true;
        return get_string(shown, v, s.prompt);
    }
    if (name == "model") {
        d.has_model = true;
        return get_string(shown, v, s.model);
    }
    if (name == "n") {
        d.has_n = true;
        return get_int(shown, v, s.n);
    }
    if (name == "key") return get_string(shown, v, s.key);
    if (name == "provider") {
        d.has_provider = true;
        return get_string(shown, v, s.provider);
    }
    if (name == "priority") {
        d.has_priority = true;
        return get_int(shown, v, s.priority);
    }
    if (name == "params") return merge_object(shown, v, s.params);
    if (name == "metadata") return merge_object(shown, v, s.metadata);
    if (is_generation_field(name)) {
        // Types are the catalog's business (validation names the allowed values), except that
        // output_compression is an integer everywhere.
        if (name == "output_compression") {
            int x = 0;
            if (auto err = get_int(shown, v, x); !err.empty()) return err;
        } else if (!v.is_string()) {
            return type_error(shown, "a string", v);
        }
        if (s.params.contains(name))
            return field_error(shown, "given twice (as a field and in params)");
        s.params[name] = v;
        return {};
    }
    return "unknown field '" + std::string(shown) + "' (known: " + join(job_fields()) + ")";
}

std::string finish_job(JobDraft& d, const JobDefaults& defaults) {
    JobSpec& s = d.spec;
    for (const auto& reserved : {"prompt", "model", "n"})
        if (s.params.contains(reserved))
            return field_error("params." + std::string(reserved),
                               "use the field '" + std::string(reserved) + "'");
    if (!d.has_prompt) return field_error("prompt", "required");
    if (!d.has_model || s.model.empty()) {
        if (defaults.model.empty()) return field_error("model", "required (or give --model)");
        s.model = defaults.model;
    }
    if (!d.has_provider || s.provider.empty()) s.provider = defaults.provider;
    if (!d.has_n && defaults.n) s.n = *defaults.n;
    if (!d.has_priority && defaults.priority) s.priority = *defaults.priority;
    return {};
}

bool is_export_row(const boost::json::object& row) {
    return row.contains("state") && (row.contains("id") || row.contains("job"));
}

std::string read_export_row(const boost::json::object& row, JobDraft& d,
                            const JobDefaults& defaults) {
    const bool per_image = !row.contains("id");
    for (const char* name : {"prompt", "model", "provider", "priority", "params", "metadata"})
        if (const auto* v = row.if_contains(name))
            if (auto err = set_job_field(d, name, *v); !err.empty()) return err;
    if (!per_image)
        if (const auto* v = row.if_contains("n"))
            if (auto err = set_job_field(d, "n", *v); !err.empty()) return err;
    // Another model: the row's provider may not serve it, so the provider is chosen again
    // (the first serving the model) unless one is given too.
    if (!defaults.model.empty() && defaults.model != d.spec.model) {
        d.spec.model = defaults.model;
        d.spec.provider.clear();
    }
    if (!defaults.provider.empty()) d.spec.provider = defaults.provider;
    boost::json::object from;
    for (const char* name : {"job", "id", "key", "batch", "idx"}) {
        const auto* v = row.if_contains(name);
        if (!v || v->is_null()) continue;
        from[std::string_view(name) == "id" ? "job" : name] = *v;
    }
    d.spec.metadata["rerun_of"] = std::move(from);
    return finish_job(d, defaults);
}

}  // namespace imgbatch::jobs
