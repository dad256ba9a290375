#include "daemon/thumbnail.hpp"

#include <unistd.h>
#include <vips/vips.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace imgbatch::daemon {
namespace {

void init_vips() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (VIPS_INIT("imgbatch") != 0) throw std::runtime_error("libvips: cannot initialise");
        // Thumbnails run on our own threads: one libvips worker each, and no operation cache
        // (every file is read once).
        vips_concurrency_set(1);
        vips_cache_set_max(0);
    });
}

std::string vips_error_text() {
    std::string e = vips_error_buffer();
    vips_error_clear();
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    for (auto& c : e)
        if (c == '\n') c = ' ';
    return e.empty() ? "unknown libvips error" : e;
}

// Makes one thumbnail; returns an error text or "".
std::string make_one(const ThumbnailJob& job, int size) {
    VipsImage* thumb = nullptr;
    // Fits in size x size, keeping the aspect, never enlarged; decodes at reduced size where
    // the format allows (shrink-on-load).
    if (vips_thumbnail(job.source.c_str(), &thumb, size, "height", size, "size", VIPS_SIZE_DOWN,
                       nullptr) != 0)
        return vips_error_text();
    // A temporary name unique over threads and processes, in the target's directory.
    auto ext = std::filesystem::path(job.target).extension().string();
    std::string tmp = job.target + ".tmp-" + std::to_string(::getpid()) + "-" +
                      std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())) +
                      ext;
    int rc = ext == ".webp" ? vips_webpsave(thumb, tmp.c_str(), "Q", 75, nullptr)
                            : vips_jpegsave(thumb, tmp.c_str(), "Q", 80, "strip", TRUE, nullptr);
    g_object_unref(thumb);
    if (rc != 0) {
        std::remove(tmp.c_str());
        return vips_error_text();
    }
    if (std::rename(tmp.c_str(), job.target.c_str()) != 0) {
        std::remove(tmp.c_str());
        return "rename to " + job.target + " failed";
    }
    return {};
}

}  // namespace

ThumbnailResult make_thumbnails(const std::vector<ThumbnailJob>& jobs, int size, int threads) {
    ThumbnailResult result;
    std::vector<const ThumbnailJob*> missing;
    for (const auto& j : jobs) {
        std::error_code ec;
        if (std::filesystem::exists(j.target, ec))
            ++result.reused;
        else
            missing.push_back(&j);
    }
    if (missing.empty()) return result;
    init_vips();
    std::atomic<std::size_t> next{0};
    std::mutex mutex;
    auto work = [&] {
        for (std::size_t i = next++; i < missing.size(); i = next++) {
            std::string err = make_one(*missing[i], size);
            std::lock_guard lock(mutex);
            if (err.empty())
                ++result.made;
            else
                result.failed.push_back(missing[i]->source + ": " + err);
        }
        vips_thread_shutdown();  // frees libvips' per-thread buffers
    };
    std::size_t n = std::min<std::size_t>(std::max(1, threads), missing.size());
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return result;
}

}  // namespace imgbatch::daemon
