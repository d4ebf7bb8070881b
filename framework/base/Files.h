#pragma once
/// @file Folder walks and recursive removal through POSIX calls.
///
/// Note [no std::filesystem walks]
/// PyTorch's pip LibTorch 2.x exports the std::filesystem directory iterators of the libstdc++ it
/// links statically (pytorch/pytorch#133437). A program linking it binds its own
/// fs::remove_all and fs::recursive_directory_iterator to those copies, made for another
/// libstdc++, and crashes in them (seen on the GPU machine: a segfault in the first
/// checkpoint pruning). Walks and recursive removals therefore go through opendir/readdir here;
/// the rest of std::filesystem (paths, create, rename, status) is safe to use.

#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace gentrain::files {

/// The names in folder `dir` (not "." and ".."), sorted. Throws DataError when it cannot be read.
std::vector<std::string> listFolder(const std::string& dir);

/// Regular files under `dir` (symlinks to files too), recursively, without following symlinked
/// folders; in no particular order. Throws DataError when `dir` cannot be read.
std::vector<std::string> listFilesRecursive(const std::string& dir);

/// Removes `path` and everything under it (symlinks themselves, never their targets). A missing
/// path is not an error. On failure returns false and, when given, sets `error`.
bool removeTree(const std::string& path, std::string* error = nullptr);

/// Writes `text` to `path` through `path.tmp` and a rename, so that a reader sees the old file or
/// the new one, never a part. On failure returns false and sets `error`.
bool writeAtomically(const std::string& path, const std::string& text, std::error_code& error);

/// An exclusive lock on a file (flock), held while the object lives and released by the kernel
/// when the process dies, however it dies. The file says who holds it.
class FileLock {
 public:
  /// Creates `path` if needed and locks it without waiting; on success writes `holder` into it.
  /// Returns null when another open file holds the lock, with `held` set to what the file says
  /// of its holder; throws DataError when the file cannot be opened.
  static std::unique_ptr<FileLock> tryLock(const std::string& path, const std::string& holder,
                                           std::string& held);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace gentrain::files
