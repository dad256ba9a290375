#include "daemon/engine/credentials.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "daemon/logfmt.hpp"
#include "jobs/store.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

extern char** environ;

namespace imgbatch::daemon {
namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxKeyBytes = 64 * 1024;
constexpr std::size_t kMaxStderrLine = 200;

using Clock = std::chrono::steady_clock;

void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

std::string trim(std::string s) {
    auto space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && space(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

// The first non-empty line of a command's standard error, shortened.
std::string first_line(const std::string& err) {
    std::size_t start = 0;
    while (start < err.size()) {
        std::size_t end = err.find('\n', start);
        if (end == std::string::npos) end = err.size();
        std::string line = trim(err.substr(start, end - start));
        if (!line.empty()) {
            if (line.size() > kMaxStderrLine) line = line.substr(0, kMaxStderrLine) + "...";
            return line;
        }
        start = end + 1;
    }
    return {};
}

std::string with_stderr(std::string what, const std::string& err) {
    std::string line = first_line(err);
    return line.empty() ? what : what + ": " + line;
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

}  // namespace

KeyCommandResult run_key_command(const std::vector<std::string>& argv, double timeout_s,
                                 const std::atomic<bool>* cancel) {
    KeyCommandResult r;
    if (argv.empty() || argv.front().empty()) {
        r.error = "no command";
        return r;
    }
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
        r.error = std::string("cannot make a pipe: ") + std::strerror(errno);
        close_fd(out[0]);
        close_fd(out[1]);
        return r;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    // Its own process group, so that a timeout kills what it started too; default signals
    // (the daemon's handlers and mask are not inherited by what it runs).
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close_fd(out[1]);
    close_fd(err[1]);
    if (rc != 0) {
        close_fd(out[0]);
        close_fd(err[0]);
        r.error = "cannot run '" + argv.front() + "': " + std::strerror(rc);
        return r;
    }

    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(std::min(timeout_s, 86400.0)));
    std::string stdout_text, stderr_text;
    bool too_long = false, timed_out = false, cancelled = false;
    int status = 0;
    bool reaped = false;
    auto over = [&] {
        if (cancel && cancel->load()) cancelled = true;
        if (Clock::now() >= deadline) timed_out = true;
        return cancelled || timed_out;
    };
    // Read both pipes until they close (or the time is up), then wait for the process.
    while ((out[0] >= 0 || err[0] >= 0) && !over()) {
        pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        int wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 100));
        int n = ::poll(fds, 2, wait_ms);
        if (n < 0 && errno != EINTR) break;
        if (n <= 0) continue;
        char buf[4096];
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                close_fd(i == 0 ? out[0] : err[0]);
                continue;
            }
            std::string& into = i == 0 ? stdout_text : stderr_text;
            std::size_t cap = i == 0 ? kMaxKeyBytes + 1 : 4096;
            if (into.size() < cap)
                into.append(
                    buf, std::min<std::size_t>(static_cast<std::size_t>(got), cap - into.size()));
            if (i == 0 && stdout_text.size() > kMaxKeyBytes) too_long = true;
        }
        if (too_long) break;
    }
    close_fd(out[0]);
    close_fd(err[0]);
    while (!reaped && !too_long && !over()) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = true;
            break;
        }
        if (w < 0 && errno != EINTR) break;
        ::usleep(10'000);
    }
    if (!reaped) {
        ::kill(-pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    // What it left running in its group does not outlive it.
    ::kill(-pid, SIGKILL);

    if (cancelled) {
        r.error = "cancelled (the daemon is stopping)";
    } else if (timed_out) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", timeout_s);
        r.error = with_stderr(std::string("timed out after ") + buf + " s (killed)", stderr_text);
    } else if (too_long) {
        r.error = "printed more than " + std::to_string(kMaxKeyBytes / 1024) + " KiB";
    } else if (WIFSIGNALED(status)) {
        r.error = with_stderr("killed by signal " + std::to_string(WTERMSIG(status)), stderr_text);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        r.error = with_stderr("exit status " + std::to_string(WEXITSTATUS(status)), stderr_text);
    } else {
        r.key = trim(std::move(stdout_text));
        if (r.key.empty())
            r.error = with_stderr("printed nothing on standard output", stderr_text);
        else if (has_control(r.key))
            r.error = "printed more than one line, or control characters";
        if (!r.error.empty()) r.key.clear();
    }
    return r;
}

std::string initial_api_key(const ProviderConfig& provider) {
    if (provider.api_key_command.empty()) return resolve_api_key(provider);
    auto r = run_key_command(provider.api_key_command, provider.api_key_command_timeout_s);
    if (!r.ok())
        throw ConfigError("provider '" + provider.name + "': api_key_command failed: " + r.error);
    return std::move(r.key);
}

KeySource::KeySource(asio::any_io_executor ex, const ProviderConfig& provider, std::string key)
    : executor_(ex),
      provider_(provider.name),
      command_(provider.api_key_command),
      refresh_s_(provider.api_key_refresh_s),
      timeout_s_(provider.api_key_command_timeout_s),
      key_(std::move(key)),
      runs_(provider.api_key_command.empty() ? 0 : 1),
      refreshed_at_(jobs::unix_now()),
      done_(ex),
      sleep_(ex),
      cancel_(std::make_shared<std::atomic<bool>>(false)) {}

KeySource::~KeySource() {
    cancel_->store(true);
    if (thread_) thread_->join();
}

void KeySource::stop() {
    stopped_ = true;
    sleep_.cancel();
}

asio::awaitable<std::optional<std::string>> KeySource::run_once(std::string reason) {
    if (!thread_) thread_ = std::make_unique<asio::thread_pool>(1);
    ++runs_;
    auto t0 = Clock::now();
    KeyCommandResult result =
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(KeyCommandResult)>(
            [this](auto handler) {
                asio::post(*thread_, [h = std::move(handler), command = command_,
                                      timeout = timeout_s_, cancel = cancel_]() mutable {
                    KeyCommandResult r = run_key_command(command, timeout, cancel.get());
                    auto ex = asio::get_associated_executor(h);
                    asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable {
                        std::move(h)(std::move(r));
                    });
                });
            },
            asio::use_awaitable);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    if (result.ok()) {
        try {
            key_ = checked_api_key(std::move(result.key), "provider '" + provider_ + "'",
                                   "api_key_command");
        } catch (const std::exception& e) {
            result.error = e.what();
        }
    }
    if (!result.ok()) {
        spdlog::error("event=key_command_failed provider={} reason={} ms={} error={}", q(provider_),
                      q(reason), ms, q(result.error));
        co_return "api_key_command failed: " + result.error;
    }
    ++generation_;
    refreshed_at_ = jobs::unix_now();
    spdlog::info("event=key_refreshed provider={} reason={} ms={}", q(provider_), q(reason), ms);
    co_return std::nullopt;
}

asio::awaitable<std::optional<std::string>> KeySource::refresh_after(std::uint64_t used,
                                                                     std::string reason) {
    if (command_.empty()) co_return std::string("no api_key_command to run again");
    if (generation_ > used) co_return std::nullopt;
    if (refreshing_) {
        // Someone runs the command already: its outcome is ours.
        while (refreshing_) co_await done_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (generation_ > used) co_return std::nullopt;
        co_return last_error_.value_or("api_key_command gave no new key");
    }
    refreshing_ = true;
    done_.expires_at(asio::steady_timer::time_point::max());
    std::optional<std::string> error;
    try {
        error = co_await run_once(std::move(reason));
    } catch (const std::exception& e) {
        error = std::string("api_key_command: ") + e.what();
    }
    last_error_ = error;
    refreshing_ = false;
    done_.cancel();
    co_return error;
}

asio::awaitable<void> KeySource::refresh_loop() {
    double retry_at = 0;  // after a failed run: not before then
    while (!stopped_) {
        const bool scheduled = refresh_s_ > 0 && !command_.empty();
        const double retry_s = std::clamp(refresh_s_ / 10, 1.0, 60.0);
        double due = std::max(refreshed_at_ + refresh_s_, retry_at);
        double wait = scheduled ? std::clamp(due - jobs::unix_now(), 0.0, 86400.0) : 86400.0;
        sleep_.expires_after(
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait)));
        co_await sleep_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopped_) break;
        // Woken by reconfigure, or a 401 refreshed the key meanwhile: compute again.
        if (!(refresh_s_ > 0 && !command_.empty())) continue;
        const double now = jobs::unix_now();
        if (now < std::max(refreshed_at_ + refresh_s_, retry_at) - 0.001) continue;
        auto error = co_await refresh_after(generation_, "schedule");
        retry_at = error ? jobs::unix_now() + retry_s : 0;
    }
}

namespace {

asio::awaitable<void> refresh_detached(KeySource* source, std::uint64_t used) {
    co_await source->refresh_after(used, "reload");
}

}  // namespace

void KeySource::reconfigure(const ProviderConfig& provider, std::string key) {
    command_ = provider.api_key_command;
    timeout_s_ = provider.api_key_command_timeout_s;
    refresh_s_ = provider.api_key_refresh_s;
    sleep_.cancel();  // refresh_loop computes its next run again
    if (command_.empty()) {
        if (key != key_) {
            key_ = std::move(key);
            ++generation_;
        }
        return;
    }
    asio::co_spawn(executor_, refresh_detached(this, generation_), asio::detached);
}

}  // namespace imgbatch::daemon
