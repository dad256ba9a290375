#pragma once
// Shared helpers for the store tests: a fresh temporary directory and job builders.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "jobs/store.hpp"

namespace imgbatch::jobs::testing {

// A fresh directory under the system temp dir, removed with everything in it at the end.
class TempDir {
  public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "imgbatch-store-XXXXXX");
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

// A job of n images split into requests of at most per_request images.
inline EnqueueItem item(const std::string& prompt, int n = 1, int per_request = 1,
                        const std::string& key = "", int priority = 0,
                        const std::string& provider = "p1") {
    EnqueueItem it;
    it.spec.prompt = prompt;
    it.spec.model = "gpt-image-1";
    it.spec.n = n;
    it.spec.key = key;
    it.spec.priority = priority;
    it.spec.params["size"] = "1024x1024";
    it.provider = provider;
    for (int seq = 0, first = 0; first < n; ++seq, first += per_request)
        it.plan.push_back({seq, first, std::min(per_request, n - first)});
    return it;
}

inline OutputRecord output(int idx) {
    OutputRecord o;
    o.idx = idx;
    o.path = "out/b/" + std::to_string(idx) + ".png";
    o.bytes = 100 + idx;
    o.sha256 = std::string(64, 'a');
    o.mime = "image/png";
    o.width = 1024;
    o.height = 1024;
    return o;
}

// A completion for a claimed request producing images [first, first + images).
inline Completion completion(const ClaimedRequest& r, const std::string& owner, int images,
                             Next next = Next::done) {
    Completion c;
    c.request_id = r.request_id;
    c.attempt_no = r.attempt_no;
    c.owner = owner;
    c.started_at = 1000;
    c.finished_at = 1001.5;
    for (int i = 0; i < images; ++i) {
        c.outputs.push_back(output(r.first_index + r.images_done + i));
        // Paths are UNIQUE across outputs: one per job and index.
        c.outputs.back().path = "out/b/" + std::to_string(r.job_id) + "-" +
                                std::to_string(c.outputs.back().idx) + ".png";
    }
    c.next = next;
    c.count_attempt = true;
    return c;
}

inline Error error(ErrorClass cls, const std::string& message, int http_status = 0,
                   const std::string& code = "") {
    Error e;
    e.cls = cls;
    e.message = message;
    e.http_status = http_status;
    e.code = code;
    return e;
}

// A single value from SQL, for checking rows directly.
inline std::string sql_text(Store& s, const std::string& sql) {
    auto v = s.db().execAndGet(sql);
    return v.isNull() ? std::string("NULL") : v.getString();
}
inline long long sql_int(Store& s, const std::string& sql) {
    return s.db().execAndGet(sql).getInt64();
}

}  // namespace imgbatch::jobs::testing
