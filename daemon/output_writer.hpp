#pragma once
// Image files: {output_dir}/{batch}/{key or job id}-{idx}.{ext}. Staged under a temporary
// name in the same directory and fsynced (on the writer pool), renamed into place inside the
// transaction that records them (on the DB thread). Blocking calls, no Asio.
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/image.hpp"
#include "jobs/error.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

// One valid image of an answer, ready to write.
struct StagedImage {
    std::string bytes;
    ImageInfo info;
    std::string revised_prompt;
};

struct StageResult {
    std::vector<jobs::OutputRecord> outputs;  // final paths; the files are still temporary
    std::optional<jobs::Error> error;         // local error: nothing is left staged
};

class OutputWriter {
  public:
    // owner_tag: a short token of this daemon instance, part of every temporary name.
    OutputWriter(std::string output_dir, std::string owner_tag);

    // Keeps [A-Za-z0-9._-], turns every other byte into '_', and a leading '.' into '_'.
    static std::string sanitize(std::string_view name);
    // 8 hex digits derived from an owner id.
    static std::string tag_for(std::string_view owner);

    const std::string& owner_tag() const { return owner_tag_; }
    std::string final_path(const jobs::ClaimedRequest& req, int idx, std::string_view ext) const;
    // ".<final name>.<owner tag>.<attempt>.tmp" next to the final path.
    std::string temp_path(const std::string& final_path, int attempt_no) const;

    // Writes images as temporary files (fsynced). idx = first_index + images_done + i.
    // Any write error removes what was staged and returns a local error with the errno text.
    StageResult stage(const jobs::ClaimedRequest& req,
                      const std::vector<StagedImage>& images) const;

    // Renames c's temporary files to their final names (inside the transaction that records
    // them, see Store::apply). If one cannot be renamed, the ones already renamed go back to
    // their temporary names and std::runtime_error says why: c stays staged, to be retried.
    // The directories touched are remembered for sync_dirs().
    void place(jobs::Completion& c);
    // Undoes place(c) (the transaction did not commit): the files go back to their temporary
    // names.
    void unplace(const jobs::Completion& c);
    // fsyncs the directories of the renames since the last call; throws std::runtime_error
    // if one cannot be synced (the commit must not happen then).
    void sync_dirs();
    // Removes c's temporary files (stale or abandoned completions).
    void discard(const jobs::Completion& c) const;
    // Removes ".*.tmp" files in the batch directories left by other (dead) instances.
    // Returns how many.
    int cleanup_stale() const;

  private:
    std::string output_dir_;
    std::string owner_tag_;
    std::mutex dirs_mutex_;
    std::set<std::string> dirty_dirs_;
};

}  // namespace imgbatch::daemon
