#pragma once
// Reading job files: .jsonl (our job lines, or OpenAI Batch API lines), .csv, .txt.
#include <cstddef>
#include <functional>
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

// Where a reader gets its input: puts up to `size` bytes in buf and returns how many, 0 at the
// end of the input. A read error is an exception, which read_job_file passes on.
using ReadFn = std::function<std::size_t(char* buf, std::size_t size)>;

// Receives what read_job_file finds, in input order.
class JobSink {
  public:
    virtual ~JobSink() = default;
    virtual void job(JobSpec&& spec) = 0;       // a well-formed line (still to be validated)
    virtual void error(LineError&& error) = 0;  // a malformed line
};

// Longest line (CSV: record) read: a longer one is an error and is skipped (CSV: the rest of
// the file is not read, since a record that long is an unterminated quote).
inline constexpr std::size_t kMaxLineBytes = std::size_t{64} << 20;

// Reads a file piece by piece: memory holds one line (one CSV record) and one read at a time,
// however long the input. Never throws on bad input: every problem is a LineError. Blank lines
// are skipped (and # comment lines in .txt). An empty file gives one error.
void read_job_file(const ReadFn& read, std::string_view filename, FileFormat format,
                   const JobDefaults& defaults, JobSink& sink);

// The same over a whole file's content, collected.
ParsedFile parse_job_file(std::string_view content, std::string_view filename, FileFormat format,
                          const JobDefaults& defaults);

}  // namespace imgbatch::jobs
