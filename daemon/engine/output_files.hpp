#pragma once
// File helpers shared by the output writer's parts (output_writer.cpp, output_dirs.cpp,
// output_names.cpp). Internal: not for other modules.
#include <string>
#include <string_view>

#include "jobs/store.hpp"

namespace imgbatch::daemon::output_files {

// The directory of the per-owner temporary directories, below output_dir.
inline constexpr const char* kTmpDirName = ".imgbatch-tmp";
// Subdirectories of an owner's temporary directory, chosen by request id: the writer threads
// create files in one while the DB thread renames out of another, instead of all of them
// taking the one directory's lock.
inline constexpr int kTmpShards = 16;
// How many "~N" names a taken final name may get.
inline constexpr int kMaxAlternatives = 1000;

std::string errno_text(int err);
// Writes all bytes and fsyncs; returns 0 or the errno (the file is removed then).
int write_synced(const std::string& path, std::string_view bytes);
std::string dir_of(const std::string& path);
// "<dir>/<stem>-<idx>~<k>.<ext>" for "<dir>/<stem>-<idx>.<ext>".
std::string alternative(const std::string& path, int k);
// rename(from, to) that fails with EEXIST instead of replacing an existing `to`; returns 0
// or the errno.
int rename_noreplace(const std::string& from, const std::string& to);
// Whether the file at path has out's size and sha256.
bool same_content(const std::string& path, const jobs::OutputRecord& out);

}  // namespace imgbatch::daemon::output_files
