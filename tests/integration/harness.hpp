#pragma once
// Helpers for integration tests: run the real imgbatch binary, start `imgbatch sim`, make
// temporary directories, read the database.
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imgbatch::test {

// Path of the built imgbatch binary.
std::string imgbatch_bin();

struct RunResult {
    int code = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
};

// Runs imgbatch with args (argv[0] added), feeding stdin_data, with extra environment
// entries ("NAME=value") added to the current environment; waits at most timeout_s, killing
// it after (code -1 then). cwd "" = current directory.
RunResult run(const std::vector<std::string>& args, const std::string& stdin_data = "",
              const std::vector<std::string>& env = {}, const std::string& cwd = "",
              double timeout_s = 120);

// A background imgbatch process (e.g. `run` or `sim`); stdout/stderr go to files.
class Process {
  public:
    // raw: args[0] is the program to run (else imgbatch, with args as its arguments).
    Process(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
            const std::string& cwd = "", const std::string& log_prefix = "", bool raw = false);
    ~Process();  // SIGKILLs it if still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    // Exit code (or 128 + signal), or nullopt if it did not end within timeout_s.
    std::optional<int> wait(double timeout_s);
    bool running();
    std::string out() const;  // what it wrote so far
    std::string err() const;

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string out_path_, err_path_;
};

// A fresh temporary directory, removed with everything in it.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

void write_file(const std::string& path, const std::string& content);

// Sleeps s seconds.
void sleep_s(double s);
// Polls cond() every 20 ms until it holds; false if it did not within timeout_s.
bool wait_for(const std::function<bool()>& cond, double timeout_s);

// Runs a shell command (output discarded); returns its exit code.
int run_shell(const std::string& command);
std::string read_file(const std::string& path);

// `imgbatch sim` on 127.0.0.1 with a free port; extra args such as {"--latency-ms", "5"}.
class Sim {
  public:
    explicit Sim(const std::vector<std::string>& extra_args = {});
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    // GET /sim/stats as JSON text; and one number from it, e.g. stat("max_in_flight").
    std::string stats_json() const;
    long long stat(const std::string& name) const;
    void reset() const;  // POST /sim/reset

  private:
    TempDir dir_;
    int port_ = 0;
    std::unique_ptr<Process> proc_;
};

// Minimal blocking HTTP/1.1 client for loopback tests: returns the status and body.
struct SimpleResponse {
    int status = 0;
    std::string body;
};
SimpleResponse http_request(const std::string& method, int port, const std::string& target,
                            const std::string& body = "");

// Runs one SQL query on the database file and returns the first column of the first row as
// text ("" when there is no row).
std::string sql_value(const std::string& db_path, const std::string& sql);
// All rows, columns joined by '|'.
std::vector<std::string> sql_rows(const std::string& db_path, const std::string& sql);
// Runs SQL statements (separated by ';') that change the database.
void sql_exec(const std::string& db_path, const std::string& sql);

// Whether text contains part.
bool has(const std::string& text, const std::string& part);
// Scrapes http://127.0.0.1:port/metrics until an answer is 200 and ok(body) holds (true), or
// timeout_s passes (false); last: the last answer.
bool scrape_until(int port, const std::function<bool(const std::string& body)>& ok,
                  double timeout_s, SimpleResponse& last);
// A loopback TCP port that was free a moment ago (bound to port 0, then released).
int free_port();
// In a Prometheus scrape, the value of the sample line `series value` (series as
// `name{labels}`), or -1 when there is none.
double metric_sample(const std::string& body, const std::string& series);
// How many times `what` occurs in `text` (overlapping occurrences counted).
int occurrences(const std::string& text, const std::string& what);
// A number from SQL text; NaN for "" (NULL).
double num_or_nan(const std::string& s);
// CHECKs that text contains every one of parts; a failure names the missing part and shows
// the text.
void check_has_all(const std::string& text, const std::vector<std::string>& parts);

}  // namespace imgbatch::test
