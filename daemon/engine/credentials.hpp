#pragma once
// A provider's key or token: read once (api_key_env, api_key_file, credentials directory), or
// the standard output of api_key_command, run at start, again when the key is
// api_key_refresh_s old, and after a 401. The command runs on a thread of its own, never on
// the network thread. The key is never logged; command failures report the exit status and
// the first line of standard error, never standard output.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"

namespace imgbatch::daemon {

struct KeyCommandResult {
    std::string key;    // standard output, white space trimmed at both ends
    std::string error;  // "" on success: "exit status 3: <stderr's first line>", "timed out
                        // after 30 s", "printed nothing", ...
    bool ok() const { return error.empty(); }
};

// Runs argv (argv[0] searched in PATH) with standard input from /dev/null, in a process group
// of its own, and waits for it. After timeout_s, or as soon as *cancel is set, the whole group
// is killed. Blocking: call it off the network thread. Standard output above 64 KiB, output
// with a line break or another control character inside, and empty output are errors.
KeyCommandResult run_key_command(const std::vector<std::string>& argv, double timeout_s,
                                 const std::atomic<bool>* cancel = nullptr);

// The key of a provider at start: api_key_command's output (a failure is a ConfigError naming
// the provider, the exit status and stderr's first line), else resolve_api_key.
std::string initial_api_key(const ProviderConfig& provider);

// The key of one provider on the network thread, and its refreshes.
class KeySource {
  public:
    KeySource(boost::asio::any_io_executor ex, const ProviderConfig& provider, std::string key);
    // Kills a command that still runs and waits for its thread.
    ~KeySource();
    KeySource(const KeySource&) = delete;
    KeySource& operator=(const KeySource&) = delete;

    const std::string& key() const { return key_; }
    // Grows by one each time the key is replaced.
    std::uint64_t generation() const { return generation_; }
    // The key comes from a command that can be run again.
    bool refreshable() const { return !command_.empty(); }
    // Times the command ran since start (the start's run included).
    std::uint64_t runs() const { return runs_; }

    // The key of generation `used` was refused: returns once a newer key is there, running the
    // command once for every caller that waits meanwhile (concurrent 401s make one run).
    // Returns the command's error when it failed (the key stays as it was).
    boost::asio::awaitable<std::optional<std::string>> refresh_after(std::uint64_t used,
                                                                     std::string reason);

    // Until stop(): while api_key_refresh_s > 0, runs the command each time the key is that
    // old (a failed run is tried again a tenth of it later, 1 to 60 s; the old key is kept).
    boost::asio::awaitable<void> refresh_loop();

    // A new configuration (SIGHUP): a key source without a command takes key as it is; one
    // with a command runs the new command (refresh_after in a coroutine of its own).
    void reconfigure(const ProviderConfig& provider, std::string key);
    // Ends refresh_loop.
    void stop();

  private:
    boost::asio::awaitable<std::optional<std::string>> run_once(std::string reason);

    boost::asio::any_io_executor executor_;
    std::string provider_;
    std::vector<std::string> command_;
    double refresh_s_ = 0;
    double timeout_s_ = 30;
    std::string key_;
    std::uint64_t generation_ = 1;
    std::uint64_t runs_ = 0;
    double refreshed_at_ = 0;  // unix time of the last successful run
    bool refreshing_ = false;
    bool stopped_ = false;
    std::optional<std::string> last_error_;
    boost::asio::steady_timer done_;   // cancelled when a run ends: wakes the waiters
    boost::asio::steady_timer sleep_;  // refresh_loop's wait
    std::shared_ptr<std::atomic<bool>> cancel_;
    std::unique_ptr<boost::asio::thread_pool> thread_;  // one thread, made for the first run
};

}  // namespace imgbatch::daemon
