#pragma once
// The readers behind read_job_file, one per format, and the input window they read from. Each
// reader hands every job and every error to the context's sink as soon as it has read it.
#include <string>
#include <string_view>

#include "jobs/job_file.hpp"

namespace imgbatch::jobs {

struct ReadContext {
    std::string file;
    const JobDefaults& defaults;
    JobSink& sink;
    std::size_t jobs = 0, errors = 0;  // handed to the sink so far

    void error(int line, std::string reason) {
        ++errors;
        sink.error({file, line, std::move(reason)});
    }
    void job(JobSpec&& spec) {
        ++jobs;
        sink.job(std::move(spec));
    }
};

inline constexpr std::string_view kNotUtf8 = "line is not valid UTF-8 text";

// The input of one file as a window over the bytes read and not yet consumed. Memory holds the
// window only: a reader consumes what it has read, and asks for more when a line or record
// reaches the window's end.
class Input {
  public:
    explicit Input(const ReadFn& read) : read_(read) {}

    // Valid until the next more() or consume().
    std::string_view window() const { return {buf_.data() + start_, buf_.size() - start_}; }
    void consume(std::size_t n) { start_ += n; }
    // Reads more input into the window (about as much again as it holds, so that a long
    // record costs linear time, but never past kMaxLineBytes + 1 bytes). False at the end of
    // the input, or when the window is already over the limit.
    bool more();
    bool at_end() const { return eof_; }

    // The next physical line, without "\n" or "\r\n", numbered from 1; false at the end. A
    // line over kMaxLineBytes is skipped as it is read, and reported with too_long set (line
    // is then empty). The view is valid until the next call.
    bool next_line(int& no, std::string_view& line, bool& too_long);

  private:
    const ReadFn& read_;
    std::string buf_;
    std::size_t start_ = 0;
    std::size_t scanned_ = 0;  // bytes at the window's start known to hold no '\n'
    bool eof_ = false;
    int line_no_ = 0;
};

// "line longer than 64 MiB"
std::string too_long_message(std::string_view what);

// Calls fn(line_no, line) for every physical line (1-based, without "\n" or "\r\n"); a line
// over the limit is reported to ctx as an error instead.
template <class F>
void for_each_line(Input& in, ReadContext& ctx, F&& fn) {
    int no = 0;
    std::string_view line;
    bool too_long = false;
    while (in.next_line(no, line, too_long)) {
        if (too_long)
            ctx.error(no, too_long_message("line"));
        else
            fn(no, line);
    }
}

void read_jsonl(Input& in, ReadContext& ctx);
void read_csv(Input& in, ReadContext& ctx);
void read_txt(Input& in, ReadContext& ctx);

}  // namespace imgbatch::jobs
