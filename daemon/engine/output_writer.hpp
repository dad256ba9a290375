#pragma once
// Image files: {output_dir}/{batch}/{key, or job-<id>}-{idx}.{ext}, names made readable and
// injective by name_component() (see output_names.cpp for the rules and the proof), or named
// by the config's output_name template (always ending in -{job}-{idx}), with an optional
// sidecar {image}.json beside each (staged and renamed with its image). Staged in
// this instance's own temporary directory {output_dir}/.imgbatch-tmp/<owner tag>/ (held with
// flock for the process lifetime, on the same file system as the final files) and fsynced on
// the writer pool; renamed into place, never over an existing file, inside the transaction
// that records them (on the DB thread). Blocking calls, no Asio.
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/image.hpp"
#include "daemon/output_template.hpp"
#include "jobs/error.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

// One valid image of an answer, ready to write.
struct StagedImage {
    std::string bytes;
    ImageInfo info;
    std::string revised_prompt;
    std::optional<double> cost_usd;  // its share of the call's cost, for its sidecar
};

struct StageResult {
    std::vector<jobs::OutputRecord> outputs;  // final paths; the files are still temporary
    std::optional<jobs::Error> error;         // local error: nothing is left staged
};

// How files are named and what goes beside them (config: output_name, sidecar).
struct OutputOptions {
    NameTemplate name_template;  // empty: the default names
    bool sidecar = false;        // write {image path}.json beside each image
};

// What a file name may be made of: the job's facts and the image index.
struct NameFields {
    std::string_view batch, key, model, prompt;
    std::int64_t job_id = 0;
    int idx = 0;
    double created_at = 0;  // the job's enqueue time ({date}, UTC)
};

class OutputWriter {
  public:
    // owner_tag: a short token of this daemon instance, the name of its temporary directory.
    OutputWriter(std::string output_dir, std::string owner_tag, OutputOptions options = {});
    ~OutputWriter();  // releases the locks
    OutputWriter(const OutputWriter&) = delete;
    OutputWriter& operator=(const OutputWriter&) = delete;

    // ---- names (the one place that decides file names) ----
    // The readable form of a name: valid UTF-8 kept as it is; '/', control characters (C0,
    // DEL, C1), every byte of an invalid UTF-8 sequence and leading dots become '_'.
    static std::string escape(std::string_view name);
    // A directory or file name stem for a batch name or a job key: the name itself when it is
    // "plain" (escape() leaves it unchanged, no '~', not empty, at most kMaxStem bytes and,
    // with reserve_job_names, not of the form job-<digits>); otherwise its escaped form, cut
    // at a character boundary, + '~' + 16 hex digits of the SHA-256 of the original name.
    static std::string name_component(std::string_view name, bool reserve_job_names);
    static constexpr std::size_t kMaxStem = 200;  // bytes; a whole file name stays < 255
    // 16 hex digits derived from an owner id.
    static std::string tag_for(std::string_view owner);

    const std::string& owner_tag() const { return owner_tag_; }
    std::string final_path(const jobs::ClaimedRequest& req, int idx, std::string_view ext) const;
    std::string final_path(std::string_view batch, std::string_view key, std::int64_t job_id,
                           int idx, std::string_view ext) const;
    std::string final_path(const NameFields& f, std::string_view ext) const;
    // "a-red-fox-at-dawn": lower-case ASCII letters and digits of the prompt, words joined
    // by '-', at most 60 bytes; "prompt" when none is left.
    static std::string prompt_slug(std::string_view prompt);
    // The sidecar of an image: "<image path>.json".
    static std::string sidecar_path(const std::string& image_path) { return image_path + ".json"; }
    // "<owner dir>/<request id % kTmpShards>/<request id>-<attempt>-<idx>.tmp".
    std::string temp_path(std::int64_t request_id, int attempt_no, int idx) const;
    bool sidecars() const { return options_.sidecar; }

    // ---- start-up ----
    // Checks that output_dir exists or can be created and is writable (a probe file is
    // created, fsynced and removed), takes this instance's temporary directory (flock) and
    // removes the temporary directories of owners that are gone (whose lock it can take).
    // Returns an error text naming the path and the errno text, or nullopt.
    std::optional<std::string> start();
    // Temporary files removed by start() (of owners that are gone).
    int stale_removed() const { return stale_removed_; }
    // True when start() found no other live instance on this output_dir: then
    // remove_orphans() may run. Until it has run (or share() is called), other instances
    // wait at their start().
    bool exclusive() const { return exclusive_; }
    // Only when exclusive(): removes final files left by a crash between the rename and the
    // commit (the request was run again): files at the final names of queued requests that
    // were already attempted (or still running in a vendor batch), for indexes no output
    // records, and no output records their path. Also removes temporary files of versions
    // before the per-owner directories. Then lets other instances start (share()). Returns how
    // many files. Call on the DB thread.
    int remove_orphans(jobs::Store& store);
    void share();

    // ---- staging and placing ----
    // Writes images as temporary files (fsynced). idx = first_index + images_done + i.
    // Any write error removes what was staged and returns a local error with the errno text.
    StageResult stage(const jobs::ClaimedRequest& req,
                      const std::vector<StagedImage>& images) const;

    // Renames c's temporary files to their final names (inside the transaction that records
    // them, see Store::apply), never over an existing file: a taken name becomes
    // "<stem>-<idx>~2.<ext>" (~3, ...) and c's path is updated. If one cannot be renamed, the
    // ones already renamed go back to their temporary names and std::runtime_error says why:
    // c stays staged, to be retried. The directories touched are remembered for sync_dirs().
    void place(jobs::Completion& c);
    // Undoes place(c) (the transaction did not commit): each file place() renamed (its
    // temporary name is free and the final file has c's content) goes back to its temporary
    // name.
    void unplace(const jobs::Completion& c);
    // fsyncs the directories of the renames since the last call; throws std::runtime_error
    // naming the directory and the errno text if one cannot be synced: those renames may not
    // be durable, the commit must not happen. The directories stay remembered for the next
    // call.
    void sync_dirs();
    // Removes c's temporary files (stale or abandoned completions).
    void discard(const jobs::Completion& c) const;

  private:
    std::string tmp_root() const;
    void mark_dirty(const std::string& dir) const;
    // Creates dir and the levels above it up to output_dir, marking the parent of each level
    // it created dirty; false if one cannot be made.
    bool make_dirs(const std::string& dir) const;

    std::string templated_path(const NameFields& f, std::string_view ext) const;

    std::string output_dir_;
    std::string owner_tag_;
    OutputOptions options_;
    std::string owner_dir_;
    int owner_fd_ = -1;  // flock LOCK_EX on owner_dir_, for the process lifetime
    int live_fd_ = -1;   // flock on .imgbatch-tmp: LOCK_EX while exclusive_, then LOCK_SH
    bool exclusive_ = false;
    int stale_removed_ = 0;
    mutable std::mutex dirs_mutex_;
    mutable std::set<std::string> dirty_dirs_;  // directories whose entries changed
};

}  // namespace imgbatch::daemon
