#include "framework/base/Files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "framework/base/Error.h"

namespace gentrain::files {
namespace {

/// The entries of a folder other than "." and "..".
bool entries(const std::string& dir, std::vector<std::string>& names, std::string& error) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    error = dir + ": cannot read the folder: " + std::strerror(errno);
    return false;
  }
  while (const dirent* entry = ::readdir(handle)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(handle);
  return true;
}

void walk(const std::string& dir, std::vector<std::string>& out) {
  std::vector<std::string> names;
  std::string error;
  if (!entries(dir, names, error)) throw DataError(error);
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat self {
    }, target{};
    if (::lstat(path.c_str(), &self) != 0) continue;  // vanished meanwhile
    if (S_ISDIR(self.st_mode)) {
      walk(path, out);
    } else if (S_ISREG(self.st_mode) ||
               (S_ISLNK(self.st_mode) && ::stat(path.c_str(), &target) == 0 &&
                S_ISREG(target.st_mode))) {
      out.push_back(path);
    }
  }
}

}  // namespace

std::vector<std::string> listFolder(const std::string& dir) {
  std::vector<std::string> names;
  std::string error;
  if (!entries(dir, names, error)) throw DataError(error);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> listFilesRecursive(const std::string& dir) {
  std::vector<std::string> out;
  walk(dir, out);
  return out;
}

bool writeAtomically(const std::string& path, const std::string& text, std::error_code& error) {
  {
    std::ofstream out(path + ".tmp");
    out << text;
    if (!out.flush()) {
      error = std::make_error_code(std::errc::io_error);
      return false;
    }
  }
  std::filesystem::rename(path + ".tmp", path, error);
  return !error;
}

bool removeTree(const std::string& path, std::string* error) {
  struct stat self {};
  if (::lstat(path.c_str(), &self) != 0) {
    if (errno == ENOENT) return true;
    if (error) *error = path + ": " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(self.st_mode)) {
    std::vector<std::string> names;
    std::string why;
    if (!entries(path, names, why)) {
      if (error) *error = why;
      return false;
    }
    for (const std::string& name : names) {
      if (!removeTree(path + "/" + name, error)) return false;
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
      if (error) *error = path + ": cannot remove: " + std::strerror(errno);
      return false;
    }
    return true;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    if (error) *error = path + ": cannot remove: " + std::strerror(errno);
    return false;
  }
  return true;
}

std::unique_ptr<FileLock> FileLock::tryLock(const std::string& path, const std::string& holder,
                                            std::string& held) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw DataError(path + ": cannot open the lock file: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char text[512] = "";
    const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
    held.assign(text, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!held.empty() && (held.back() == '\n' || held.back() == ' ')) held.pop_back();
    ::close(fd);
    return nullptr;
  }
  if (::ftruncate(fd, 0) == 0) {
    const std::string line = holder + "\n";
    [[maybe_unused]] const ssize_t written = ::pwrite(fd, line.data(), line.size(), 0);
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

FileLock::~FileLock() { ::close(fd_); }  // closing the last descriptor releases the lock

}  // namespace gentrain::files
