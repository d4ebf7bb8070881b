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

#include <string>
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

}  // namespace gentrain::files
