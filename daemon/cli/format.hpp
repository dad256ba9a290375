#pragma once
// Output helpers shared by the commands: times, durations, excerpts, tables, CSV, JSON and
// files written atomically.
#include <boost/json/value.hpp>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/error.hpp"

namespace imgbatch::jobs {
struct JobRow;
}

namespace imgbatch::daemon::cli {

// "2026-11-21 11:42:06" in local time; "" for 0.
std::string format_time(double unix_s);
// "2026-11-21T11:42:06.250Z" (UTC, milliseconds); "" for 0.
std::string iso_time(double unix_s);
// "45s", "3m20s", "2h05m", "3d04h".
std::string format_duration(double seconds);
// The first max_chars code points of text on one line (control characters as spaces),
// with "..." when cut. Never splits a UTF-8 sequence.
std::string excerpt(std::string_view text, std::size_t max_chars);
// A CSV field quoted as RFC 4180 asks (only when needed).
std::string csv_field(std::string_view s);
// Rows as aligned columns separated by two spaces; the last column is not padded.
std::string render_table(const std::vector<std::vector<std::string>>& rows);
// JSON text from the database (params, metadata, usage) as a value; null when empty or
// not JSON.
boost::json::value json_or_null(std::string_view text);
// A number as an integer when it is one (Boost.JSON prints every double as 1.5E2).
boost::json::value json_number(double v);
// A string, or null when empty.
boost::json::value string_or_null(std::string_view s);

// ---- the JSON vocabulary shared by jobs, show, export, status, providers, enqueue ----
// A time as RFC 3339 in UTC with milliseconds: "2026-11-21T21:09:49.250Z".
std::string rfc3339(double unix_s);
// A time as an RFC 3339 string, or null for 0 (no time).
boost::json::value json_time(double unix_s);
// An error as {"class", "code", "http_status", "message"}: code null when there is none,
// http_status null when there was no HTTP answer.
boost::json::value json_error(std::string_view cls, std::string_view code, int http_status,
                              std::string_view message);
boost::json::value json_error(const jobs::Error& e);
boost::json::value json_error(const std::optional<jobs::Error>& e);  // null when none
// A job's first fields, as jobs --json and export write them: id, key, batch, state, prompt,
// model, provider, n (key, batch and provider null when empty). The caller appends the rest.
boost::json::object json_job_head(const jobs::JobRow& j);

// A file written to a temporary name next to it and renamed into place on commit(), so a
// reader never sees half of it. Without commit() the temporary file is removed.
class AtomicFile {
  public:
    explicit AtomicFile(std::string path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    std::ostream& stream() { return out_; }
    void commit();  // throws std::runtime_error on failure

  private:
    std::string path_, tmp_;
    std::ofstream out_;
    bool committed_ = false;
};

}  // namespace imgbatch::daemon::cli
