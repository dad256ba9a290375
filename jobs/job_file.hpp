#pragma once
// Reading job files: .jsonl (our job lines, or OpenAI Batch API lines), .csv, .txt.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/job_spec.hpp"

namespace imgbatch::jobs {

enum class FileFormat { jsonl, csv, txt };

// From the file name's extension (.jsonl/.json/.ndjson, .csv, .txt); nullopt if unknown.
// "-" (stdin) is read as jsonl unless a format is given.
std::optional<FileFormat> format_from_name(std::string_view filename);

// Values from the command line, used where a line does not say.
struct JobDefaults {
    std::string model;
    std::string provider;
    std::optional<int> n;
    std::optional<int> priority;
};

struct LineError {
    std::string file;
    int line = 0;        // 1-based; 0 for the whole file
    std::string reason;  // names the field: "field 'n': must be an integer >= 1, got \"x\""
    std::string str() const { return file + ":" + std::to_string(line) + ": " + reason; }
};

struct ParsedFile {
    std::vector<JobSpec> jobs;      // well-formed lines (still to be validated)
    std::vector<LineError> errors;  // malformed lines
};

// Parses a whole file's content. Never throws on bad input: every problem is a LineError.
// Blank lines are skipped (and # comment lines in .txt). An empty file gives one error.
ParsedFile parse_job_file(std::string_view content, std::string_view filename, FileFormat format,
                          const JobDefaults& defaults);

}  // namespace imgbatch::jobs
