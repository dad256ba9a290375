#include "daemon/output_writer.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace imgbatch::daemon {
namespace fs = std::filesystem;

// File names, and why two outputs never share one.
//
// A final path is D/B/F where D is output_dir, B = name_component(batch name, false) and
// F = S + "-" + idx + "." + ext, S = "job-<job id>" for a job without a key, else
// name_component(key, true). idx is a decimal number, ext is png, jpg or webp.
//
// 1. B and F are single path components that are never "", "." or ".." and never start with
//    a dot: escape() turns '/' and leading dots into '_', and a name_component() is never
//    empty (an empty name becomes "~<hash>"). So every final path stays below D/B, and no
//    batch directory is D/.imgbatch-tmp (the temporary directories). Each is at most
//    kMaxStem + 17 bytes (+ "-idx~k.ext" for F): below the 255-byte limit of file systems.
// 2. Batch directories are injective: a plain name maps to itself, and plain names are
//    distinct because batch names are; a non-plain name maps to a string containing '~',
//    which no plain name contains, ending in 64 bits of the SHA-256 of the name: two
//    distinct non-plain names share a directory only if their hashes collide.
// 3. Within a batch directory, stems are injective in the same way, over three disjoint
//    classes: key-less jobs ("job-<digits>", unique job ids), plain keys (never of the form
//    job-<digits>, never containing '~'; keys are UNIQUE in the jobs table) and hashed keys
//    (contain '~').
// 4. F determines (S, idx, ext): ext follows the last '.' (idx and ext contain none) and idx
//    is the run of digits after the last '-' before it (idx contains no '-').
// So two different (batch, job, idx) never get the same path, except for a 64-bit hash
// collision between two names that are not plain; even then nothing is lost: a rename never
// replaces an existing file (place() takes the name "<S>-<idx>~2.<ext>" instead, which no
// name above can take since it has a '~' after the last '-'), and outputs.path is UNIQUE.
//
// The same holds for names recorded by versions before this scheme (e.g. "a_b-0.png" for
// the key "a b"): place() never renames over them.

namespace {

constexpr const char* kTmpDirName = ".imgbatch-tmp";
constexpr int kMaxAlternatives = 1000;

std::string errno_text(int err) {
    return std::generic_category().message(err);
}

// Writes all bytes and fsyncs; returns 0 or the errno.
int write_synced(const std::string& path, std::string_view bytes) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    int err = 0;
    while (left > 0) {
        ssize_t w = ::write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        p += w;
        left -= static_cast<std::size_t>(w);
    }
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) ::unlink(path.c_str());
    return err;
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// Length of the valid UTF-8 sequence at s[i] (1..4), 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) -> unsigned {
        return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100u;
    };
    auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
        unsigned b = byte(k);
        return b >= lo && b <= hi;
    };
    unsigned c = byte(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return cont(1, lo, hi) && cont(2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
    }
    return 0;
}

bool is_job_name(std::string_view s) {
    if (!s.starts_with("job-") || s.size() == 4) return false;
    for (char c : s.substr(4))
        if (c < '0' || c > '9') return false;
    return true;
}

// "<dir>/<stem>-<idx>~<k>.<ext>" for "<dir>/<stem>-<idx>.<ext>".
std::string alternative(const std::string& path, int k) {
    auto dot = path.rfind('.');
    return path.substr(0, dot) + "~" + std::to_string(k) + path.substr(dot);
}

// rename(from, to) that fails with EEXIST instead of replacing an existing `to`.
int rename_noreplace(const std::string& from, const std::string& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    int err = errno;
    if (err != EINVAL && err != ENOSYS) return err;
    // The file system lacks RENAME_NOREPLACE: link() fails with EEXIST just the same.
    if (::link(from.c_str(), to.c_str()) == 0) {
        ::unlink(from.c_str());
        return 0;
    }
    return errno;
}

bool same_content(const std::string& path, const jobs::OutputRecord& out) {
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec || static_cast<std::int64_t>(size) != out.bytes) return false;
    std::string data(size, '\0');
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::size_t got = 0;
    while (got < size) {
        ssize_t r = ::read(fd, data.data() + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    ::close(fd);
    return got == size && sha256_hex(data) == out.sha256;
}

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

int remove_contents(const std::string& dir) {
    int removed = 0;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir, ec)) {
        std::error_code rm;
        removed += static_cast<int>(fs::remove_all(f.path(), rm));
    }
    return removed;
}

}  // namespace

OutputWriter::OutputWriter(std::string output_dir, std::string owner_tag)
    : output_dir_(std::move(output_dir)), owner_tag_(std::move(owner_tag)) {
    if (output_dir_.empty()) output_dir_ = ".";
    while (output_dir_.size() > 1 && output_dir_.back() == '/') output_dir_.pop_back();
    owner_dir_ = tmp_root() + "/" + owner_tag_;
}

OutputWriter::~OutputWriter() {
    if (owner_fd_ >= 0) ::close(owner_fd_);
    if (live_fd_ >= 0) ::close(live_fd_);
}

std::string OutputWriter::tmp_root() const {
    return output_dir_ + "/" + kTmpDirName;
}

std::string OutputWriter::escape(std::string_view name) {
    std::string out;
    out.reserve(name.size());
    bool leading = true;
    std::size_t i = 0;
    while (i < name.size()) {
        std::size_t len = utf8_length(name, i);
        if (len == 0) {  // one invalid byte
            out.push_back('_');
            ++i;
            leading = false;
            continue;
        }
        auto c = static_cast<unsigned char>(name[i]);
        bool replace = false;
        if (len == 1) {
            replace = c < 0x20 || c == 0x7F || c == '/' || (leading && c == '.');
            leading = leading && c == '.';
        } else {
            // C1 controls U+0080..U+009F are encoded C2 80..C2 9F.
            replace = c == 0xC2 && static_cast<unsigned char>(name[i + 1]) < 0xA0;
            leading = false;
        }
        if (replace)
            out.push_back('_');
        else
            out.append(name.substr(i, len));
        i += len;
    }
    return out;
}

std::string OutputWriter::name_component(std::string_view name, bool reserve_job_names) {
    std::string esc = escape(name);
    bool plain = !name.empty() && esc == name && name.find('~') == std::string_view::npos &&
                 name.size() <= kMaxStem && !(reserve_job_names && is_job_name(name));
    if (plain) return esc;
    // Cut at a character boundary (esc is valid UTF-8: never inside a sequence).
    std::size_t keep = kMaxStem - 17;
    if (esc.size() > keep) {
        while (keep > 0 && (static_cast<unsigned char>(esc[keep]) & 0xC0) == 0x80) --keep;
        esc.resize(keep);
    }
    return esc + "~" + sha256_hex(name).substr(0, 16);
}

std::string OutputWriter::tag_for(std::string_view owner) {
    return sha256_hex(owner).substr(0, 16);
}

std::string OutputWriter::final_path(const jobs::ClaimedRequest& req, int idx,
                                     std::string_view ext) const {
    return final_path(req.batch, req.key, req.job_id, idx, ext);
}

std::string OutputWriter::final_path(std::string_view batch, std::string_view key,
                                     std::int64_t job_id, int idx, std::string_view ext) const {
    std::string stem = key.empty() ? "job-" + std::to_string(job_id) : name_component(key, true);
    return output_dir_ + "/" + name_component(batch, false) + "/" + stem + "-" +
           std::to_string(idx) + "." + std::string(ext);
}

std::string OutputWriter::temp_path(std::int64_t request_id, int attempt_no, int idx) const {
    return owner_dir_ + "/" + std::to_string(request_id) + "-" + std::to_string(attempt_no) + "-" +
           std::to_string(idx) + ".tmp";
}

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
    // Final files of indexes still to produce, of requests already attempted.
    auto& db = store.db();
    SQLite::Statement open_requests(
        db,
        "SELECT r.job_id, r.first_index + r.images_done, r.first_index + r.n, "
        "coalesce(j.key, ''), coalesce(b.name, '') FROM requests r "
        "JOIN jobs j ON j.id = r.job_id LEFT JOIN batches b ON b.id = j.batch_id "
        "WHERE r.state = 'queued' AND r.attempt_no > 0 AND r.images_done < r.n");
    SQLite::Statement recorded(
        db, "SELECT 1 FROM outputs WHERE path = ?1 OR (job_id = ?2 AND idx = ?3) LIMIT 1");
    while (open_requests.executeStep()) {
        const std::int64_t job_id = open_requests.getColumn(0).getInt64();
        const int from = open_requests.getColumn(1).getInt();
        const int to = open_requests.getColumn(2).getInt();
        const std::string key = open_requests.getColumn(3).getString();
        const std::string batch = open_requests.getColumn(4).getString();
        for (int idx = from; idx < to; ++idx) {
            for (const char* ext : {"png", "jpg", "webp"}) {
                const std::string base = final_path(batch, key, job_id, idx, ext);
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

void OutputWriter::mark_dirty(const std::string& dir) const {
    std::lock_guard lock(dirs_mutex_);
    dirty_dirs_.insert(dir);
}

StageResult OutputWriter::stage(const jobs::ClaimedRequest& req,
                                const std::vector<StagedImage>& images) const {
    StageResult result;
    if (images.empty()) return result;
    if (owner_fd_ < 0) throw std::logic_error("OutputWriter::stage before start()");
    std::string dir = output_dir_ + "/" + name_component(req.batch, false);
    std::error_code ec;
    bool created = fs::create_directories(dir, ec);
    if (ec) {
        result.error = jobs::Error{jobs::ErrorClass::local, "mkdir", 0,
                                   "create " + dir + ": " + ec.message(), std::nullopt};
        return result;
    }
    if (created) mark_dirty(output_dir_);  // the new directory's entry must be durable too
    for (std::size_t i = 0; i < images.size(); ++i) {
        const auto& img = images[i];
        int idx = req.first_index + req.images_done + static_cast<int>(i);
        jobs::OutputRecord rec;
        rec.idx = idx;
        rec.path = final_path(req, idx, img.info.ext);
        rec.bytes = static_cast<std::int64_t>(img.bytes.size());
        rec.sha256 = sha256_hex(img.bytes);
        rec.mime = img.info.mime;
        rec.width = img.info.width;
        rec.height = img.info.height;
        rec.revised_prompt = img.revised_prompt;
        std::string tmp = temp_path(req.request_id, req.attempt_no, idx);
        if (int err = write_synced(tmp, img.bytes); err != 0) {
            for (const auto& done : result.outputs)
                ::unlink(temp_path(req.request_id, req.attempt_no, done.idx).c_str());
            result.outputs.clear();
            result.error = jobs::Error{jobs::ErrorClass::local, "write", 0,
                                       "write " + tmp + ": " + errno_text(err), std::nullopt};
            return result;
        }
        result.outputs.push_back(std::move(rec));
    }
    return result;
}

void OutputWriter::place(jobs::Completion& c) {
    for (std::size_t i = 0; i < c.outputs.size(); ++i) {
        auto& out = c.outputs[i];
        std::string tmp = temp_path(c.request_id, c.attempt_no, out.idx);
        std::string target = out.path;
        int err = 0;
        for (int k = 2;; ++k) {
            err = rename_noreplace(tmp, target);
            if (err != EEXIST || k > kMaxAlternatives) break;
            target = alternative(out.path, k);
        }
        if (err == 0) {
            if (target != out.path)
                spdlog::warn("event=output_name_taken request={} path=\"{}\" written=\"{}\"",
                             c.request_id, out.path, target);
            out.path = target;
            mark_dirty(dir_of(target));
            continue;
        }
        // Nothing of this completion may look placed: what was renamed goes back, and every
        // image stays staged under its temporary name for the next try.
        for (std::size_t j = 0; j < i; ++j)
            ::rename(c.outputs[j].path.c_str(),
                     temp_path(c.request_id, c.attempt_no, c.outputs[j].idx).c_str());
        throw std::runtime_error("rename " + tmp + " -> " + out.path + ": " + errno_text(err));
    }
}

void OutputWriter::unplace(const jobs::Completion& c) {
    for (const auto& out : c.outputs) {
        std::string tmp = temp_path(c.request_id, c.attempt_no, out.idx);
        struct stat st {};
        if (::stat(tmp.c_str(), &st) == 0) continue;  // not placed
        if (!same_content(out.path, out)) continue;   // not ours
        rename_noreplace(out.path, tmp);
    }
}

void OutputWriter::sync_dirs() {
    std::set<std::string> dirs;
    {
        std::lock_guard lock(dirs_mutex_);
        dirs.swap(dirty_dirs_);
    }
    for (const auto& d : dirs) {
        int err = 0;
        int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
        } else {
            if (::fsync(fd) != 0) err = errno;
            ::close(fd);
        }
        if (err != 0) {
            std::lock_guard lock(dirs_mutex_);
            dirty_dirs_.insert(dirs.begin(), dirs.end());
            throw std::runtime_error("fsync " + d + ": " + errno_text(err));
        }
    }
}

void OutputWriter::discard(const jobs::Completion& c) const {
    for (const auto& out : c.outputs)
        ::unlink(temp_path(c.request_id, c.attempt_no, out.idx).c_str());
}

}  // namespace imgbatch::daemon
