#include "daemon/engine/output_writer.hpp"
#include "daemon/json_text.hpp"
#include "daemon/logfmt.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "daemon/engine/output_files.hpp"

namespace imgbatch::daemon {
namespace fs = std::filesystem;
using namespace output_files;

namespace output_files {

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

}  // namespace output_files

OutputWriter::OutputWriter(std::string output_dir, std::string owner_tag, OutputOptions options)
    : output_dir_(std::move(output_dir)),
      owner_tag_(std::move(owner_tag)),
      options_(std::move(options)) {
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

bool OutputWriter::make_dirs(const std::string& dir) const {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) return true;
    if (dir.size() <= output_dir_.size()) return false;  // output_dir itself is made at start
    if (!make_dirs(dir_of(dir))) return false;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
    mark_dirty(dir_of(dir));
    return fs::is_directory(dir, ec);
}

void OutputWriter::mark_dirty(const std::string& dir) const {
    std::lock_guard lock(dirs_mutex_);
    dirty_dirs_.insert(dir);
}

namespace {

// The sidecar of one image: what made it (the output's final name may still change to a
// "~k" form, so the file names no path; it sits beside its image).
std::string sidecar_json(const jobs::ClaimedRequest& req, const jobs::OutputRecord& rec,
                         std::optional<double> cost_usd) {
    boost::json::error_code ec;
    auto params = boost::json::parse(req.params_json, ec);
    boost::json::object o{
        {"job", req.job_id},
        {"key", req.key.empty() ? boost::json::value(nullptr) : boost::json::value(req.key)},
        {"batch", req.batch},
        {"index", rec.idx},
        {"prompt", req.prompt},
        {"model", req.model},
        {"provider", req.provider},
        {"params", !ec && params.is_object() ? params : boost::json::object{}},
        {"revised_prompt", rec.revised_prompt.empty() ? boost::json::value(nullptr)
                                                      : boost::json::value(rec.revised_prompt)},
        {"sha256", rec.sha256},
        {"bytes", rec.bytes},
        {"mime", rec.mime},
        {"width", rec.width},
        {"height", rec.height},
        {"attempt", req.attempt_no},
        {"cost_usd", cost_usd ? boost::json::value(std::round(*cost_usd * 1e9) / 1e9)
                              : boost::json::value(nullptr)}};
    return json_text(o) + "\n";
}

}  // namespace

StageResult OutputWriter::stage(const jobs::ClaimedRequest& req,
                                const std::vector<StagedImage>& images) const {
    StageResult result;
    if (images.empty()) return result;
    if (owner_fd_ < 0) throw std::logic_error("OutputWriter::stage before start()");
    for (std::size_t i = 0; i < images.size(); ++i) {
        const auto& img = images[i];
        int idx = req.first_index + req.images_done + static_cast<int>(i);
        jobs::OutputRecord rec;
        rec.idx = idx;
        rec.path = final_path(req, idx, img.info.ext);
        // The directory of the final name (a template may give each image its own): each
        // level created here has its entry in the level above, which must be durable too.
        if (std::string dir = dir_of(rec.path); !make_dirs(dir)) {
            std::error_code ec;
            fs::create_directories(dir, ec);
            std::string why = ec ? ec.message() : "not a directory";
            for (const auto& done : result.outputs) {
                std::string t = temp_path(req.request_id, req.attempt_no, done.idx);
                ::unlink(t.c_str());
                if (options_.sidecar) ::unlink(sidecar_path(t).c_str());
            }
            result.outputs.clear();
            result.error = jobs::Error{jobs::ErrorClass::local, "mkdir", 0,
                                       "create " + dir + ": " + why, std::nullopt};
            return result;
        }
        rec.bytes = static_cast<std::int64_t>(img.bytes.size());
        rec.sha256 = sha256_hex(img.bytes);
        rec.mime = img.info.mime;
        rec.width = img.info.width;
        rec.height = img.info.height;
        rec.revised_prompt = img.revised_prompt;
        std::string tmp = temp_path(req.request_id, req.attempt_no, idx);
        int err = write_synced(tmp, img.bytes);
        if (err == 0 && options_.sidecar) {
            err = write_synced(sidecar_path(tmp), sidecar_json(req, rec, img.cost_usd));
            if (err != 0) {
                ::unlink(tmp.c_str());
                tmp = sidecar_path(tmp);  // named in the error
            }
        }
        if (err != 0) {
            for (const auto& done : result.outputs) {
                std::string t = temp_path(req.request_id, req.attempt_no, done.idx);
                ::unlink(t.c_str());
                if (options_.sidecar) ::unlink(sidecar_path(t).c_str());
            }
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
        // The sidecar follows its image (replacing a stale one: only a recorded image's
        // sidecar is kept, and this name belongs to no recorded image).
        std::string failed = tmp;
        if (err == 0 && options_.sidecar &&
            ::rename(sidecar_path(tmp).c_str(), sidecar_path(target).c_str()) != 0) {
            err = errno;
            failed = sidecar_path(tmp);
            ::rename(target.c_str(), tmp.c_str());
        }
        if (err == 0) {
            if (target != out.path)
                spdlog::warn("event=output_name_taken request={} path={} written={}", c.request_id,
                             q(out.path), q(target));
            out.path = target;
            mark_dirty(dir_of(target));
            continue;
        }
        // Nothing of this completion may look placed: what was renamed goes back, and every
        // image stays staged under its temporary name for the next try.
        for (std::size_t j = 0; j < i; ++j) {
            std::string back = temp_path(c.request_id, c.attempt_no, c.outputs[j].idx);
            ::rename(c.outputs[j].path.c_str(), back.c_str());
            if (options_.sidecar)
                ::rename(sidecar_path(c.outputs[j].path).c_str(), sidecar_path(back).c_str());
        }
        throw std::runtime_error("rename " + failed + " -> " + out.path + ": " + errno_text(err));
    }
}

void OutputWriter::unplace(const jobs::Completion& c) {
    for (const auto& out : c.outputs) {
        std::string tmp = temp_path(c.request_id, c.attempt_no, out.idx);
        struct stat st {};
        if (::stat(tmp.c_str(), &st) == 0) continue;  // not placed
        if (!same_content(out.path, out)) continue;   // not ours
        if (rename_noreplace(out.path, tmp) == 0 && options_.sidecar)
            ::rename(sidecar_path(out.path).c_str(), sidecar_path(tmp).c_str());
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
    for (const auto& out : c.outputs) {
        std::string tmp = temp_path(c.request_id, c.attempt_no, out.idx);
        ::unlink(tmp.c_str());
        if (options_.sidecar) ::unlink(sidecar_path(tmp).c_str());
    }
}

}  // namespace imgbatch::daemon
