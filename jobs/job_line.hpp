#pragma once
// Building a JobSpec from the fields of one input record, shared by the JSONL and CSV readers.
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/job_file.hpp"

namespace imgbatch::jobs {

// A job being read from one record: what it said so far.
struct JobDraft {
    JobSpec spec;
    bool has_prompt = false, has_model = false, has_provider = false, has_n = false,
         has_priority = false;
};

// The fields of a job line, in the order of the SPEC.
const std::vector<std::string>& job_fields();

// Sets one field of a job line. null means "not given". Named generation fields go into
// spec.params; "params" and "metadata" objects are merged in, a key given twice being an
// error. Returns an error message naming the field, or empty. prefix goes before the field
// name in messages ("body." for Batch API lines).
std::string set_job_field(JobDraft& d, std::string_view name, const boost::json::value& v,
                          std::string_view prefix = {});

// Applies the defaults and checks that what is required is there. Returns an error message,
// or empty.
std::string finish_job(JobDraft& d, const JobDefaults& defaults);

// Rows written by `imgbatch export` (job rows: "id" and "state"; per-image rows: "job" and
// "state"), fed back to run those jobs again.
bool is_export_row(const boost::json::object& row);
// Reads an export row into d and finishes it: prompt, model, provider, n (1 for a per-image
// row), priority, params and metadata; a model or provider in defaults replaces the row's
// (another model without a provider: the provider is chosen again).
// The row's key is not reused (it is taken); metadata.rerun_of records where the job came
// from ({"job", "key", "batch", and "idx" for an image}). Other fields are ignored.
// Returns an error message, or empty.
std::string read_export_row(const boost::json::object& row, JobDraft& d,
                            const JobDefaults& defaults);

// "field 'n': must be an integer, got \"3\"" and friends.
std::string field_error(std::string_view name, std::string_view what);
std::string type_error(std::string_view name, std::string_view type, const boost::json::value& v);

}  // namespace imgbatch::jobs
