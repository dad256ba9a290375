#include "tests/integration/harness.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace imgbatch::test {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> make_argv(std::vector<std::string>& storage) {
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    return argv;
}

// Environment of this process plus extra entries (which replace same-named ones).
std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string entry(*e);
        std::string name = entry.substr(0, entry.find('='));
        bool replaced = false;
        for (const auto& x : extra)
            if (x.substr(0, x.find('=')) == name) replaced = true;
        if (!replaced) env.push_back(entry);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

// Forks and execs imgbatch; stdin from stdin_fd (or /dev/null), stdout/stderr to the fds.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
            const std::string& cwd, int stdin_fd, int out_fd, int err_fd, bool raw = false) {
    std::vector<std::string> argv_s;
    if (!raw) argv_s.push_back(imgbatch_bin());
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s = merged_env(env);
    auto argv = make_argv(argv_s);
    auto envp = make_argv(env_s);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        setpgid(0, 0);
        if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
        int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    return pid;
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

std::string imgbatch_bin() {
    return IMGBATCH_BIN;
}

RunResult run(const std::vector<std::string>& args, const std::string& stdin_data,
              const std::vector<std::string>& env, const std::string& cwd, double timeout_s) {
    TempDir tmp;
    std::string in_path = tmp.file("stdin"), out_path = tmp.file("out"), err_path = tmp.file("err");
    write_file(in_path, stdin_data);
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = spawn(args, env, cwd, in, out, err);
    close(in);
    close(out);
    close(err);
    RunResult r;
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            r.code = decode_status(status);
            break;
        }
        if (Clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            r.code = -1;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

Process::Process(const std::vector<std::string>& args, const std::vector<std::string>& env,
                 const std::string& cwd, const std::string& log_prefix, bool raw) {
    static int counter = 0;
    std::string prefix =
        log_prefix.empty()
            ? (std::filesystem::temp_directory_path() /
               ("imgbatch-proc-" + std::to_string(getpid()) + "-" + std::to_string(counter++)))
                  .string()
            : log_prefix;
    out_path_ = prefix + ".out";
    err_path_ = prefix + ".err";
    int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = spawn(args, env, cwd, -1, out, err, raw);
    close(out);
    close(err);
}

Process::~Process() {
    if (running()) {
        kill(pid_, SIGKILL);
        wait(10);
    }
    if (out_path_.find("imgbatch-proc-") != std::string::npos) {
        std::filesystem::remove(out_path_);
        std::filesystem::remove(err_path_);
    }
}

void Process::signal(int sig) {
    if (!status_) kill(pid_, sig);
}

std::optional<int> Process::wait(double timeout_s) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (!status_) {
        int status = 0;
        pid_t w = waitpid(pid_, &status, WNOHANG);
        if (w == pid_) {
            status_ = decode_status(status);
            break;
        }
        if (Clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
}

bool Process::running() {
    return !wait(0).has_value();
}

std::string Process::out() const {
    return read_file(out_path_);
}
std::string Process::err() const {
    return read_file(err_path_);
}

TempDir::TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "imgbatch-test-XXXXXX").string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!std::getenv("IMGBATCH_KEEP_TEST_DIRS")) std::filesystem::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << content;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

Sim::Sim(const std::vector<std::string>& extra_args) {
    std::string port_file = dir_.file("port");
    std::vector<std::string> args{"sim", "--listen", "127.0.0.1:0", "--port-file", port_file};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    proc_ = std::make_unique<Process>(args, std::vector<std::string>{}, "", dir_.file("sim"));
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
        std::string text = read_file(port_file);
        if (!text.empty() && text.back() == '\n') {
            port_ = std::stoi(text);
            return;
        }
        if (!proc_->running()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("imgbatch sim did not start: " + proc_->err());
}

std::string Sim::stats_json() const {
    return http_request("GET", port_, "/sim/stats").body;
}

long long Sim::stat(const std::string& name) const {
    std::string json = stats_json();
    std::regex re("\"" + name + "\"\\s*:\\s*(-?[0-9]+)");
    std::smatch m;
    if (!std::regex_search(json, m, re))
        throw std::runtime_error("no stat " + name + " in " + json);
    return std::stoll(m[1].str());
}

void Sim::reset() const {
    http_request("POST", port_, "/sim/reset");
}

SimpleResponse http_request(const std::string& method, int port, const std::string& target,
                            const std::string& body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return {};
    }
    std::string req =
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    for (size_t sent = 0; sent < req.size();) {
        ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
    }
    std::string resp;
    char buf[65536];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    SimpleResponse r;
    if (resp.size() > 12) r.status = std::atoi(resp.c_str() + 9);
    auto hdr_end = resp.find("\r\n\r\n");
    if (hdr_end != std::string::npos) r.body = resp.substr(hdr_end + 4);
    return r;
}

std::string sql_value(const std::string& db_path, const std::string& sql) {
    SQLite::Database db(db_path, SQLite::OPEN_READONLY);
    db.exec("PRAGMA busy_timeout=10000");
    SQLite::Statement q(db, sql);
    if (!q.executeStep()) return "";
    return q.getColumn(0).isNull() ? "" : q.getColumn(0).getString();
}

std::vector<std::string> sql_rows(const std::string& db_path, const std::string& sql) {
    SQLite::Database db(db_path, SQLite::OPEN_READONLY);
    db.exec("PRAGMA busy_timeout=10000");
    SQLite::Statement q(db, sql);
    std::vector<std::string> rows;
    while (q.executeStep()) {
        std::string row;
        for (int i = 0; i < q.getColumnCount(); ++i) {
            if (i) row += '|';
            row += q.getColumn(i).isNull() ? "" : q.getColumn(i).getString();
        }
        rows.push_back(row);
    }
    return rows;
}

void sql_exec(const std::string& db_path, const std::string& sql) {
    SQLite::Database db(db_path, SQLite::OPEN_READWRITE);
    db.exec("PRAGMA busy_timeout=10000");
    db.exec(sql);
}

}  // namespace imgbatch::test

namespace imgbatch::test {

void sleep_s(double s) {
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

bool wait_for(const std::function<bool()>& cond, double timeout_s) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (Clock::now() < deadline) {
        if (cond()) return true;
        sleep_s(0.02);
    }
    return cond();
}

int run_shell(const std::string& command) {
    int status = std::system((command + " >/dev/null 2>&1").c_str());
    return status == -1 ? -1 : decode_status(status);
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

bool scrape_until(int port, const std::function<bool(const std::string& body)>& ok,
                  double timeout_s, SimpleResponse& last) {
    return wait_for(
        [&] {
            last = http_request("GET", port, "/metrics");
            return last.status == 200 && ok(last.body);
        },
        timeout_s);
}

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("no free loopback port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

double metric_sample(const std::string& body, const std::string& series) {
    auto at = body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    at += series.size() + 2;
    return std::stod(body.substr(at, body.find('\n', at) - at));
}

int occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

double num_or_nan(const std::string& s) {
    return s.empty() ? std::nan("") : std::stod(s);
}

void check_has_all(const std::string& text, const std::vector<std::string>& parts) {
    INFO("in: " << text);
    for (const auto& part : parts) {
        INFO("missing: " << part);
        CHECK(has(text, part));
    }
}

}  // namespace imgbatch::test
