#pragma once
// Proof of life of a daemon on this machine: a lock file per daemon instance in a directory
// beside the database ({database}.daemons/{owner}.lock), held with flock(LOCK_EX) for as long
// as the process lives. The kernel drops the lock when the process dies (kill -9 included), in
// whatever PID namespace it ran, so another daemon can tell "gone" from "alive" without
// guessing from a pid. Blocking calls, no Asio.
#include <string>
#include <string_view>

namespace imgbatch::daemon {

enum class Liveness {
    alive,    // its lock is held
    gone,     // its lock file exists and nobody holds it: the process ended
    unknown,  // no lock file (another machine, or a daemon of an older version)
};

class OwnerLock {
  public:
    // Creates dir if needed and takes the lock of owner. Throws std::runtime_error (with the
    // path and errno text) if it cannot.
    OwnerLock(std::string dir, std::string owner);
    // Releases the lock and removes the file (a clean stop).
    ~OwnerLock();
    OwnerLock(const OwnerLock&) = delete;
    OwnerLock& operator=(const OwnerLock&) = delete;

    const std::string& path() const { return path_; }

    // The directory for a database file.
    static std::string dir_for(const std::string& database);
    // Whether owner is alive, by its lock file in dir. A file found unlocked is removed.
    static Liveness probe(const std::string& dir, std::string_view owner);

  private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace imgbatch::daemon
