#pragma once
// Thumbnails of image files with libvips (the report's grid): made in parallel on a bounded
// number of threads, written atomically, and reused when already there.
#include <cstddef>
#include <string>
#include <vector>

namespace imgbatch::daemon {

struct ThumbnailJob {
    std::string source;  // the image file
    std::string target;  // the thumbnail file (its extension picks the format: .jpg, .webp)
};

struct ThumbnailResult {
    std::size_t made = 0;             // written now
    std::size_t reused = 0;           // already present
    std::vector<std::string> failed;  // "SOURCE: why" for each one that could not be made
};

// Makes a thumbnail, at most `size` pixels wide and high, for every job whose target does
// not exist yet, on at most `threads` threads (>= 1). A target is written under a temporary
// name and renamed into place, so one that exists is complete. Thread-safe; initialises
// libvips on first use.
ThumbnailResult make_thumbnails(const std::vector<ThumbnailJob>& jobs, int size, int threads);

}  // namespace imgbatch::daemon
