#include "daemon/engine/owner_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace imgbatch::daemon {

namespace {

std::string file_name(std::string_view owner) {
    std::string name;
    for (char c : owner) {
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':';
        name.push_back(keep ? c : '_');
    }
    if (!name.empty() && name[0] == '.') name[0] = '_';
    return name + ".lock";
}

std::runtime_error errno_error(const std::string& what, int err) {
    return std::runtime_error(what + ": " + std::generic_category().message(err));
}

}  // namespace

std::string OwnerLock::dir_for(const std::string& database) {
    return database + ".daemons";
}

OwnerLock::OwnerLock(std::string dir, std::string owner) {
    if (::mkdir(dir.c_str(), 0775) != 0 && errno != EEXIST)
        throw errno_error("create " + dir, errno);
    path_ = dir + "/" + file_name(owner);
    // Locked under a temporary name and then renamed, so that nobody can find the file
    // unlocked and take this live daemon for gone.
    std::string tmp = path_ + ".new";
    fd_ = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0664);
    if (fd_ < 0) throw errno_error("create " + tmp, errno);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
        int err = errno;
        ::close(fd_);
        ::unlink(tmp.c_str());
        throw errno_error("lock " + path_, err);
    }
    std::string line = owner + "\n";
    [[maybe_unused]] auto w = ::write(fd_, line.data(), line.size());
}

OwnerLock::~OwnerLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());
    ::close(fd_);
}

Liveness OwnerLock::probe(const std::string& dir, std::string_view owner) {
    std::string path = dir + "/" + file_name(owner);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Liveness::unknown;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        return Liveness::alive;
    }
    ::unlink(path.c_str());  // while holding the lock: its owner cannot come back
    ::close(fd);
    return Liveness::gone;
}

}  // namespace imgbatch::daemon
