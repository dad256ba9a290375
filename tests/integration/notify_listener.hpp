#pragma once
// A stand-in for systemd's notification socket: a unix datagram socket the test binds; pass
// env() to the daemon (NOTIFY_SOCKET=...) and read what it sends with sd_notify.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace imgbatch::test {

class NotifyListener {
  public:
    // Binds dir/notify.sock (the path must fit in sun_path: keep dir short).
    explicit NotifyListener(const std::string& dir) : path_(dir + "/notify.sock") {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path_.size() >= sizeof addr.sun_path)
            throw std::runtime_error("notify socket path too long: " + path_);
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        ::unlink(path_.c_str());
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("bind " + path_ + ": " + std::strerror(errno));
    }
    ~NotifyListener() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    NotifyListener(const NotifyListener&) = delete;
    NotifyListener& operator=(const NotifyListener&) = delete;

    // The environment entry for the daemon.
    std::string env() const { return "NOTIFY_SOCKET=" + path_; }

    // The next message, or "" when none came within timeout_s. Every message is kept in
    // messages().
    std::string receive(double timeout_s) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
            if (left < 0) return {};
            pollfd p{fd_, POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return {};
            char buf[4096];
            ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                return {};
            }
            messages_.emplace_back(buf, static_cast<std::size_t>(n));
            return messages_.back();
        }
    }

    // Reads messages until one starts with prefix (returned) or timeout_s passes ("").
    std::string wait_for(const std::string& prefix, double timeout_s) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        for (;;) {
            double left =
                std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return {};
            std::string m = receive(left);
            if (m.empty()) return {};
            if (m.rfind(prefix, 0) == 0) return m;
        }
    }

    // Every message received so far, oldest first.
    const std::vector<std::string>& messages() const { return messages_; }
    // All of them on one line each, for failure messages.
    std::string log() const {
        std::string out;
        for (const auto& m : messages_) out += m + "\n";
        return out;
    }

  private:
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> messages_;
};

}  // namespace imgbatch::test
