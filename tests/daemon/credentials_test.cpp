// api_key_command: running the command (output, exit status, stderr, timeout) and KeySource's
// refreshes (one run for concurrent 401s, failures keep the key, the scheduled refresh).
#include "daemon/engine/credentials.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using imgbatch::daemon::ConfigError;
using imgbatch::daemon::initial_api_key;
using imgbatch::daemon::KeySource;
using imgbatch::daemon::ProviderConfig;
using imgbatch::daemon::run_key_command;
namespace asio = boost::asio;

namespace {

std::vector<std::string> sh(const std::string& script) {
    return {"/bin/sh", "-c", script};
}

struct Dir {
    std::string path;
    Dir() {
        static int n = 0;
        path = (std::filesystem::temp_directory_path() /
                ("imgbatch-cred-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++)))
                   .string();
        std::filesystem::create_directories(path);
    }
    ~Dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string read(const std::string& name) const {
        std::ifstream in(path + "/" + name);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
};

// A command that counts its runs in DIR/count and prints tok-N.
std::vector<std::string> counting_command(const Dir& d, const std::string& extra = "") {
    return sh("f=" + d.path +
              "/count; n=$(cat $f 2>/dev/null || echo 0); n=$((n+1)); echo $n > $f; " + extra +
              " echo tok-$n");
}

asio::awaitable<void> refresh_into(KeySource* keys, std::uint64_t used,
                                   std::optional<std::string>* out, int* done) {
    *out = co_await keys->refresh_after(used, "401");
    ++*done;
}

// Stops io once the key was replaced `refreshes` times.
asio::awaitable<void> stop_after_refreshes(KeySource* keys, std::uint64_t refreshes,
                                           asio::io_context* io) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (int i = 0; i < 200 && keys->generation() < 1 + refreshes; ++i) {
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(asio::use_awaitable);
    }
    keys->stop();
    io->stop();
}

}  // namespace

TEST_CASE("run_key_command: trimmed standard output is the key") {
    auto r = run_key_command(sh("printf '  ya29.tok  \\n\\n'"), 10);
    CHECK(r.ok());
    CHECK(r.key == "ya29.tok");
    r = run_key_command({"echo", "argv-key"}, 10);  // found in PATH, no shell
    CHECK(r.ok());
    CHECK(r.key == "argv-key");
}

TEST_CASE("run_key_command: failures name the exit status and stderr's first line, never stdout") {
    auto r = run_key_command(
        sh("echo secret-out; echo; echo '  not logged in  ' >&2; echo more >&2; exit 3"), 10);
    CHECK_FALSE(r.ok());
    CHECK(r.error == "exit status 3: not logged in");
    CHECK(r.key.empty());
    CHECK(r.error.find("secret-out") == std::string::npos);

    r = run_key_command(sh("kill -9 $$"), 10);
    CHECK(r.error == "killed by signal 9");
    r = run_key_command(sh("true"), 10);
    CHECK(r.error == "printed nothing on standard output");
    r = run_key_command(sh("printf 'a\\nb\\n'"), 10);
    CHECK(r.error == "printed more than one line, or control characters");
    CHECK(r.key.empty());
    r = run_key_command({"/nonexistent/helper"}, 10);
    CHECK(r.error == "cannot run '/nonexistent/helper': No such file or directory");
    r = run_key_command(sh("head -c 70000 /dev/zero | tr '\\0' a"), 10);
    CHECK(r.error == "printed more than 64 KiB");
}

TEST_CASE("run_key_command: a command past its timeout is killed with what it started") {
    Dir d;
    // A child in the background, its pid written down: the whole group is killed.
    auto r =
        run_key_command(sh("sleep 30 & echo $! > " + d.path + "/pid; echo waiting >&2; wait"), 1);
    CHECK(r.error.rfind("timed out after 1 s (killed)", 0) == 0);
    CHECK(r.key.empty());
    const std::string pid_text = d.read("pid");
    if (!pid_text.empty()) {  // written before the timeout (always, but on a stalled machine)
        const pid_t child = std::stoi(pid_text);
        bool gone = false;
        for (int i = 0; i < 100 && !gone; ++i) {
            // Dead: no such process, or a zombie not reaped yet.
            std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
            std::string pid_field, comm, state;
            gone = ::kill(child, 0) != 0 || ((stat >> pid_field >> comm >> state) && state == "Z");
            if (!gone) ::usleep(50'000);
        }
        CHECK(gone);
    }
    std::atomic<bool> cancel{true};
    r = run_key_command(sh("sleep 30"), 60, &cancel);
    CHECK(r.error == "cancelled (the daemon is stopping)");
}

TEST_CASE("initial_api_key: the command's failure is a ConfigError naming the provider") {
    ProviderConfig p;
    p.name = "vertex";
    p.api_key_command = sh("echo tok-secret; echo 'ERROR: (gcloud) no credentials' >&2; exit 1");
    try {
        initial_api_key(p);
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              "provider 'vertex': api_key_command failed: exit status 1: ERROR: (gcloud) no "
              "credentials");
    }
    p.api_key_command = sh("echo tok-1");
    CHECK(initial_api_key(p) == "tok-1");
}

TEST_CASE("KeySource: concurrent 401s run the command once; a newer key is used at once") {
    Dir d;
    ProviderConfig p;
    p.name = "p";
    p.api_key_command = counting_command(d, "sleep 0.2;");
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    KeySource keys(io.get_executor(), p, "tok-0");
    CHECK(keys.refreshable());
    CHECK(keys.runs() == 1);  // the start's run
    const auto first = keys.generation();
    std::vector<std::optional<std::string>> results(5, std::string("unset"));
    int done = 0;
    for (auto& r : results)
        asio::co_spawn(io, refresh_into(&keys, first, &r, &done), asio::detached);
    while (done < 5 && io.run_one()) {
    }
    REQUIRE(done == 5);
    for (const auto& r : results) CHECK_FALSE(r.has_value());
    CHECK(d.read("count") == "1\n");
    CHECK(keys.key() == "tok-1");
    CHECK(keys.generation() == first + 1);
    CHECK(keys.runs() == 2);

    // A caller that used the old key gets the new one without a run.
    std::optional<std::string> again = std::string("unset");
    done = 0;
    asio::co_spawn(io, refresh_into(&keys, first, &again, &done), asio::detached);
    while (done < 1 && io.run_one()) {
    }
    CHECK_FALSE(again.has_value());
    CHECK(d.read("count") == "1\n");
}

TEST_CASE("KeySource: a failed run keeps the key and reports the command's error") {
    ProviderConfig p;
    p.name = "p";
    p.api_key_command = sh("echo new-secret; echo 'token service down' >&2; exit 2");
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    KeySource keys(io.get_executor(), p, "old");
    std::optional<std::string> result;
    int done = 0;
    asio::co_spawn(io, refresh_into(&keys, keys.generation(), &result, &done), asio::detached);
    while (done < 1 && io.run_one()) {
    }
    REQUIRE(result.has_value());
    CHECK(*result == "api_key_command failed: exit status 2: token service down");
    CHECK(keys.key() == "old");
    CHECK(keys.generation() == 1);
}

TEST_CASE("KeySource: api_key_refresh_s runs the command again while the key is in use") {
    Dir d;
    ProviderConfig p;
    p.name = "p";
    p.api_key_command = counting_command(d);
    p.api_key_refresh_s = 0.2;
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    KeySource keys(io.get_executor(), p, "tok-0");
    asio::co_spawn(io, keys.refresh_loop(), asio::detached);
    asio::co_spawn(io, stop_after_refreshes(&keys, 2, &io), asio::detached);
    io.run();
    CHECK(keys.generation() >= 3);
    CHECK(keys.runs() >= 3);
    CHECK(keys.key() == "tok-" + std::to_string(keys.generation() - 1));
}
