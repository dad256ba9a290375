// The output writer's directories: the start-up check of output_dir, the per-owner
// temporary directories and their locks, and the files a crash left behind.
#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "daemon/engine/output_files.hpp"
#include "daemon/engine/output_writer.hpp"

namespace imgbatch::daemon {
namespace fs = std::filesystem;
using namespace output_files;

namespace {

int flock_retry(int fd, int op) {
    while (::flock(fd, op) != 0) {
        if (errno != EINTR) return errno;
    }
    return 0;
}

// Opens dir and takes LOCK_EX without waiting: the fd, or -1 (errno set; EWOULDBLOCK when
// a live process holds it).
int lock_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (int err = flock_retry(fd, LOCK_EX | LOCK_NB); err != 0) {
        ::close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

// Whether fd still refers to the directory at path (not removed or replaced meanwhile).
bool still_there(int fd, const std::string& path) {
    struct stat a {
    }, b{};
    return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

// Removes everything below dir; returns how many files (not directories) went.
int remove_contents(const std::string& dir) {
    int files = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code e2;
        if (!it->is_directory(e2)) ++files;
    }
    for (const auto& f : fs::directory_iterator(dir, ec)) {
        std::error_code rm;
        fs::remove_all(f.path(), rm);
    }
    return files;
}

}  // namespace

std::optional<std::string> OutputWriter::start() {
    std::error_code ec;
    fs::create_directories(output_dir_, ec);
    if (ec) return "cannot create output_dir " + output_dir_ + ": " + ec.message();
    const std::string probe = output_dir_ + "/.imgbatch-probe-" + owner_tag_;
    if (int err = write_synced(probe, "probe"); err != 0)
        return "output_dir " + output_dir_ + " is not writable: " + errno_text(err) + " (writing " +
               probe + ")";
    if (::unlink(probe.c_str()) != 0)
        return "output_dir " + output_dir_ + " is not writable: " + errno_text(errno) +
               " (removing " + probe + ")";

    const std::string root = tmp_root();
    if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST)
        return "cannot create " + root + ": " + errno_text(errno);
    // The lock of .imgbatch-tmp itself: every running instance holds it shared; the one that
    // gets it exclusively at start is alone on this output_dir (and others wait at start
    // until it shares it).
    live_fd_ = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (live_fd_ < 0) return "cannot open " + root + ": " + errno_text(errno);
    if (flock_retry(live_fd_, LOCK_EX | LOCK_NB) == 0) {
        exclusive_ = true;
    } else if (int err = flock_retry(live_fd_, LOCK_SH); err != 0) {
        return "cannot lock " + root + ": " + errno_text(err);
    }

    // This instance's directory: <tag>, or <tag>-2, ... if a live instance holds that one.
    for (int n = 1;; ++n) {
        std::string dir = root + "/" + owner_tag_ + (n > 1 ? "-" + std::to_string(n) : "");
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
            return "cannot create " + dir + ": " + errno_text(errno);
        int fd = lock_dir(dir);
        if (fd < 0 && errno == ENOENT) {  // removed by another instance's start meanwhile
            --n;
            continue;
        }
        if (fd < 0) {
            if (errno != EWOULDBLOCK || n >= 100)
                return "cannot lock " + dir + ": " + errno_text(errno);
            continue;
        }
        if (!still_there(fd, dir)) {  // removed by another instance's start meanwhile
            ::close(fd);
            --n;
            continue;
        }
        owner_fd_ = fd;
        owner_dir_ = dir;
        stale_removed_ += remove_contents(dir);  // left by a dead owner with the same tag
        break;
    }
    for (int shard = 0; shard < kTmpShards; ++shard) {
        std::string sub = owner_dir_ + "/" + std::to_string(shard);
        if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST)
            return "cannot create " + sub + ": " + errno_text(errno);
    }

    // Directories of owners that are gone: their lock is free.
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        std::error_code e2;
        if (!entry.is_directory(e2) || entry.path().string() == owner_dir_) continue;
        std::string dir = entry.path().string();
        int fd = lock_dir(dir);
        if (fd < 0) continue;  // held by a live instance
        if (still_there(fd, dir)) {
            stale_removed_ += remove_contents(dir);
            ::rmdir(dir.c_str());
        }
        ::close(fd);
    }
    return std::nullopt;
}

void OutputWriter::share() {
    if (!exclusive_) return;
    flock_retry(live_fd_, LOCK_SH);
    exclusive_ = false;
}

int OutputWriter::remove_orphans(jobs::Store& store) {
    if (!exclusive_) return 0;
    int removed = 0;
    // Temporary files of versions before .imgbatch-tmp: ".<final>.<tag>.<attempt>.tmp".
    std::error_code ec;
    for (const auto& batch : fs::directory_iterator(output_dir_, ec)) {
        std::error_code e2;
        if (!batch.is_directory(e2) || batch.path().filename() == kTmpDirName) continue;
        for (const auto& f : fs::directory_iterator(batch.path(), e2)) {
            std::string name = f.path().filename().string();
            if (name.size() > 5 && name[0] == '.' && name.ends_with(".tmp")) {
                std::error_code rm;
                if (fs::remove(f.path(), rm)) ++removed;
            }
        }
    }
    // Final files of indexes still to produce, of requests already attempted (queued again, or
    // still in a vendor batch whose output is applied again: no daemon applies it now).
    auto& db = store.db();
    SQLite::Statement open_requests(
        db,
        "SELECT r.job_id, r.first_index + r.images_done, r.first_index + r.n, "
        "coalesce(j.key, ''), coalesce(b.name, ''), j.model, j.prompt, j.created_at "
        "FROM requests r "
        "JOIN jobs j ON j.id = r.job_id LEFT JOIN batches b ON b.id = j.batch_id "
        "WHERE (r.state = 'queued' OR (r.state = 'running' AND r.lease_owner LIKE 'vbatch:%')) "
        "AND r.attempt_no > 0 AND r.images_done < r.n");
    SQLite::Statement recorded(
        db, "SELECT 1 FROM outputs WHERE path = ?1 OR (job_id = ?2 AND idx = ?3) LIMIT 1");
    while (open_requests.executeStep()) {
        const std::int64_t job_id = open_requests.getColumn(0).getInt64();
        const int from = open_requests.getColumn(1).getInt();
        const int to = open_requests.getColumn(2).getInt();
        const std::string key = open_requests.getColumn(3).getString();
        const std::string batch = open_requests.getColumn(4).getString();
        const std::string model = open_requests.getColumn(5).getString();
        const std::string prompt = open_requests.getColumn(6).getString();
        const double created_at = open_requests.getColumn(7).getDouble();
        for (int idx = from; idx < to; ++idx) {
            for (const char* ext : {"png", "jpg", "webp"}) {
                const std::string base =
                    final_path(NameFields{batch, key, model, prompt, job_id, idx, created_at}, ext);
                for (int k = 1; k <= kMaxAlternatives; ++k) {
                    std::string path = k == 1 ? base : alternative(base, k);
                    struct stat st {};
                    if (::lstat(path.c_str(), &st) != 0) break;
                    if (!S_ISREG(st.st_mode)) continue;
                    recorded.reset();
                    recorded.bind(1, path);
                    recorded.bind(2, job_id);
                    recorded.bind(3, idx);
                    if (recorded.executeStep()) continue;
                    if (::unlink(path.c_str()) == 0) {
                        ::unlink(sidecar_path(path).c_str());  // its sidecar, if any
                        ++removed;
                        mark_dirty(dir_of(path));
                    }
                }
            }
        }
    }
    share();
    return removed;
}

}  // namespace imgbatch::daemon
