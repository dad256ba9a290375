#include "daemon/output_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <system_error>

namespace imgbatch::daemon {
namespace fs = std::filesystem;

namespace {

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

}  // namespace

OutputWriter::OutputWriter(std::string output_dir, std::string owner_tag)
    : output_dir_(std::move(output_dir)), owner_tag_(std::move(owner_tag)) {
    if (output_dir_.empty()) output_dir_ = ".";
}

std::string OutputWriter::sanitize(std::string_view name) {
    std::string out;
    out.reserve(name.size());
    for (char c : name) {
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        out.push_back(keep ? c : '_');
    }
    if (out.empty()) out = "_";
    if (out[0] == '.') out[0] = '_';  // no hidden files, no "." or ".."
    return out;
}

std::string OutputWriter::tag_for(std::string_view owner) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x",
                  static_cast<unsigned>(std::hash<std::string_view>{}(owner)&0xffffffffu));
    return buf;
}

std::string OutputWriter::final_path(const jobs::ClaimedRequest& req, int idx,
                                     std::string_view ext) const {
    std::string base = req.key.empty() ? std::to_string(req.job_id) : sanitize(req.key);
    return output_dir_ + "/" + sanitize(req.batch) + "/" + base + "-" + std::to_string(idx) + "." +
           std::string(ext);
}

std::string OutputWriter::temp_path(const std::string& final_path, int attempt_no) const {
    auto slash = final_path.rfind('/');
    std::string dir = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
    std::string name = slash == std::string::npos ? final_path : final_path.substr(slash + 1);
    return dir + "." + name + "." + owner_tag_ + "." + std::to_string(attempt_no) + ".tmp";
}

StageResult OutputWriter::stage(const jobs::ClaimedRequest& req,
                                const std::vector<StagedImage>& images) const {
    StageResult result;
    if (images.empty()) return result;
    std::string dir = output_dir_ + "/" + sanitize(req.batch);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        result.error = jobs::Error{jobs::ErrorClass::local, "mkdir", 0,
                                   "create " + dir + ": " + ec.message(), std::nullopt};
        return result;
    }
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
        std::string tmp = temp_path(rec.path, req.attempt_no);
        if (int err = write_synced(tmp, img.bytes); err != 0) {
            for (const auto& done : result.outputs)
                ::unlink(temp_path(done.path, req.attempt_no).c_str());
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
        const auto& out = c.outputs[i];
        std::string tmp = temp_path(out.path, c.attempt_no);
        if (::rename(tmp.c_str(), out.path.c_str()) == 0) {
            std::lock_guard lock(dirs_mutex_);
            dirty_dirs_.insert(dir_of(out.path));
            continue;
        }
        int err = errno;
        // Nothing of this completion may look placed: what was renamed goes back, and every
        // image stays staged under its temporary name for the next try.
        for (std::size_t j = 0; j < i; ++j)
            ::rename(c.outputs[j].path.c_str(), temp_path(c.outputs[j].path, c.attempt_no).c_str());
        throw std::runtime_error("rename " + tmp + " -> " + out.path + ": " + errno_text(err));
    }
}

void OutputWriter::unplace(const jobs::Completion& c) {
    for (const auto& out : c.outputs)
        ::rename(out.path.c_str(), temp_path(out.path, c.attempt_no).c_str());
}

void OutputWriter::sync_dirs() {
    std::set<std::string> dirs;
    {
        std::lock_guard lock(dirs_mutex_);
        dirs.swap(dirty_dirs_);
    }
    for (const auto& d : dirs) {
        int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int err = fd < 0 ? errno : 0;
        if (fd >= 0 && ::fsync(fd) != 0) err = errno;
        if (fd >= 0) ::close(fd);
        if (err != 0) {
            // The renames are not durable: the commit must not happen. The directories stay
            // dirty for the next try.
            std::lock_guard lock(dirs_mutex_);
            dirty_dirs_.insert(dirs.begin(), dirs.end());
            throw std::runtime_error("fsync " + d + ": " + errno_text(err));
        }
    }
}

void OutputWriter::discard(const jobs::Completion& c) const {
    for (const auto& out : c.outputs) ::unlink(temp_path(out.path, c.attempt_no).c_str());
}

int OutputWriter::cleanup_stale() const {
    int removed = 0;
    std::error_code ec;
    fs::directory_iterator batches(output_dir_, ec);
    if (ec) return 0;
    for (const auto& batch : batches) {
        if (!batch.is_directory(ec)) continue;
        fs::directory_iterator files(batch.path(), ec);
        if (ec) continue;
        for (const auto& f : files) {
            std::string name = f.path().filename().string();
            if (name.size() < 6 || name[0] != '.' || !name.ends_with(".tmp")) continue;
            // ".<final>.<tag>.<attempt>.tmp": the tag is the second-to-last field.
            std::string stem = name.substr(0, name.size() - 4);
            auto a = stem.rfind('.');
            if (a == std::string::npos || a == 0) continue;
            auto t = stem.rfind('.', a - 1);
            if (t == std::string::npos) continue;
            if (stem.substr(t + 1, a - t - 1) == owner_tag_) continue;
            if (fs::remove(f.path(), ec)) ++removed;
        }
    }
    return removed;
}

}  // namespace imgbatch::daemon
