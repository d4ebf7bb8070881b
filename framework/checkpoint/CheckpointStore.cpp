#include "framework/checkpoint/CheckpointStore.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'G', 'T', 'C', 'K', 'P', 'T', '\r', '\n'};
constexpr std::size_t kHeaderBytes = 8 + 4 + 8 + 4 + 8;

template <typename T>
void put(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out.push_back(char((uint64_t(value) >> (8 * i)) & 0xff));
}

template <typename T>
T get(const std::string& in, std::size_t offset) {
  uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) value |= uint64_t(uint8_t(in[offset + i])) << (8 * i);
  return static_cast<T>(value);
}

uint32_t checksum(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t done = 0; done < bytes.size();) {
    const uInt chunk = static_cast<uInt>(std::min<std::size_t>(bytes.size() - done, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + done), chunk);
    done += chunk;
  }
  return static_cast<uint32_t>(crc);
}

std::string folderName(uint64_t step) {
  std::ostringstream os;
  os << "step-" << std::setw(12) << std::setfill('0') << step;
  return os.str();
}

/// Writes `bytes` to `path` and fsyncs it; throws CheckpointError naming the file.
void writeDurably(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    throw CheckpointError(path.string() + ": cannot create: " + std::strerror(errno) +
                          " (is checkpoint folder writable, and is there space?)");
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw CheckpointError(path.string() + ": write failed: " + why + " (disk full?)");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    throw CheckpointError(path.string() + ": fsync failed: " + std::strerror(errno));
  }
}

void syncFolder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// Note [checkpoint commit]
// A checkpoint is committed by one atomic step: the rename of its complete folder (state.bin
// and DONE, both synced) from step-N.tmp to step-N. A writer killed before it leaves only
// step-N.tmp, which is never read and which tidy() removes. Saving a step that exists already
// (the non-finite stop saves the state before the step again) moves the complete copy to
// step-N.old first and removes it only after the new one is in place; tidy() puts an .old back
// when a crash came between the two renames.
void CheckpointStore::commit(const fs::path& temp, const fs::path& final) {
  std::error_code error;
  const fs::path old = final.string() + ".old";
  if (fs::exists(final)) {
    files::removeTree(old.string());
    fs::rename(final, old, error);
    if (error) throw CheckpointError(final.string() + ": rename failed: " + error.message());
  }
  fs::rename(temp, final, error);
  if (error) throw CheckpointError(final.string() + ": rename failed: " + error.message());
  syncFolder(dir_);
  files::removeTree(old.string());
}

std::vector<std::string> CheckpointStore::setAsideSkipped() {
  std::vector<std::string> done;
  for (const auto& [folder, suffix] : skipped_) {
    std::error_code error;
    fs::rename(folder, folder + suffix, error);
    if (!error) done.push_back("moved " + folder + " aside to " + folder + suffix);
  }
  skipped_.clear();
  return done;
}

std::vector<std::string> CheckpointStore::tidy(const std::string& dir) {
  std::vector<std::string> done;
  std::error_code error;
  if (!fs::is_directory(dir, error)) return done;
  const auto endsWith = [](const std::string& name, const std::string& end) {
    return name.size() > end.size() && name.compare(name.size() - end.size(), end.size(), end) == 0;
  };
  for (const std::string& name : files::listFolder(dir)) {
    if (name.rfind("step-", 0) != 0) continue;
    const fs::path path = fs::path(dir) / name;
    if (endsWith(name, ".tmp")) {
      files::removeTree(path.string());
      done.push_back("removed " + path.string() +
                     ", a checkpoint whose writer did not finish "
                     "(never committed)");
    } else if (endsWith(name, ".old")) {
      const fs::path base = fs::path(dir) / name.substr(0, name.size() - 4);
      if (fs::exists(base)) {
        files::removeTree(path.string());
      } else {
        fs::rename(path, base, error);
        done.push_back("restored " + base.string() + " from " + name +
                       " (a save of the same step was interrupted)");
      }
    }
  }
  return done;
}

CheckpointStore::CheckpointStore(std::string dir, Communicator& comm, int keep)
    : dir_(std::move(dir)), comm_(comm), keep_(std::max(1, keep)) {}

void CheckpointStore::save(uint64_t step, const std::string& payload) {
  std::string failure;
  const fs::path final = fs::path(dir_) / folderName(step);
  const fs::path temp = fs::path(dir_) / (folderName(step) + ".tmp");
  if (comm_.rank() == 0) {
    try {
      std::string bytes(kMagic, sizeof(kMagic));
      put<uint32_t>(bytes, kFormatVersion);
      put<uint64_t>(bytes, step);
      put<uint32_t>(bytes, static_cast<uint32_t>(comm_.size()));
      put<uint64_t>(bytes, payload.size());
      bytes += payload;
      put<uint32_t>(bytes, checksum(payload));

      std::error_code error;
      fs::create_directories(dir_, error);
      if (error) {
        throw CheckpointError(dir_ + ": cannot create the checkpoint folder: " + error.message());
      }
      files::removeTree(temp.string());  // Note [no std::filesystem walks]
      fs::create_directory(temp, error);
      if (error) throw CheckpointError(temp.string() + ": cannot create: " + error.message());
      writeDurably(temp / "state.bin", bytes);
      writeDurably(temp / "DONE",
                   std::to_string(payload.size()) + " " + std::to_string(checksum(payload)) + "\n");
      syncFolder(temp);
      commit(temp, final);
    } catch (const std::exception& e) {
      failure = e.what();
      files::removeTree(temp.string());  // a partial copy only takes space (a full disk's, say)
    }
  }
  // Every rank learns whether rank 0 succeeded before anyone goes on (no rank waits forever).
  if (comm_.allReduceScalar(failure.empty() ? 1.0 : 0.0, ReduceOp::Min) < 1.0) {
    throw CheckpointError(
        comm_.rank() == 0 ? failure : "rank 0 could not write checkpoint " + final.string());
  }
  if (comm_.rank() != 0) return;
  std::vector<std::string> complete;
  for (const std::string& folder : list()) {
    if (fs::exists(fs::path(folder) / "DONE")) complete.push_back(folder);
  }
  for (std::size_t k = static_cast<std::size_t>(keep_); k < complete.size(); ++k) {
    files::removeTree(complete[k]);
  }
}

std::vector<std::string> CheckpointStore::folders(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code error;
  if (!fs::is_directory(dir, error)) return out;
  std::vector<std::string> names;
  try {
    names = files::listFolder(dir);  // Note [no std::filesystem walks]
  } catch (const DataError&) {
    return out;  // unreadable: no checkpoints to offer
  }
  for (const std::string& name : names) {
    const fs::path path = fs::path(dir) / name;
    if (name.rfind("step-", 0) == 0 && name.find('.') == std::string::npos &&
        fs::is_directory(path, error)) {
      out.push_back(path.string());
    }
  }
  std::sort(out.rbegin(), out.rend());  // zero-padded steps: text order is step order
  return out;
}

LoadedCheckpoint CheckpointStore::read(const std::string& folder) {
  if (!fs::exists(fs::path(folder) / "DONE")) {
    throw CheckpointError(folder + ": incomplete (no DONE marker; the writer was interrupted)");
  }
  std::ifstream in(fs::path(folder) / "state.bin", std::ios::binary);
  if (!in) throw CheckpointError(folder + "/state.bin: missing or unreadable");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kHeaderBytes + 4 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    throw CheckpointError(folder + "/state.bin: not a gentrain checkpoint (bad header)");
  }
  LoadedCheckpoint loaded;
  loaded.path = folder;
  const uint32_t version = get<uint32_t>(bytes, 8);
  if (version != kFormatVersion) {
    throw CheckpointError(folder + "/state.bin: format version " + std::to_string(version) +
                          ", this build reads version " + std::to_string(kFormatVersion));
  }
  loaded.step = get<uint64_t>(bytes, 12);
  loaded.worldSize = get<uint32_t>(bytes, 20);
  const uint64_t length = get<uint64_t>(bytes, 24);
  if (bytes.size() != kHeaderBytes + length + 4) {
    throw CheckpointError(folder + "/state.bin: truncated (" + std::to_string(bytes.size()) +
                          " bytes, the header promises " +
                          std::to_string(kHeaderBytes + length + 4) + ")");
  }
  loaded.payload = bytes.substr(kHeaderBytes, length);
  if (checksum(loaded.payload) != get<uint32_t>(bytes, kHeaderBytes + length)) {
    throw CheckpointError(folder + "/state.bin: checksum mismatch (the file is corrupt)");
  }
  return loaded;
}

LoadedCheckpoint CheckpointStore::loadAny(const std::string& path, Communicator& comm) {
  if (fs::exists(fs::path(path) / "state.bin")) {
    std::string failure;
    LoadedCheckpoint loaded;
    if (comm.rank() == 0) {
      try {
        loaded = read(path);
      } catch (const CheckpointError& e) {
        failure = e.what();
      }
    }
    comm.broadcastBytes(failure, 0);
    if (!failure.empty()) throw CheckpointError(failure);
    comm.broadcastBytes(loaded.payload, 0);
    loaded.path = path;
    std::string header = std::to_string(loaded.step) + " " + std::to_string(loaded.worldSize);
    comm.broadcastBytes(header, 0);
    std::istringstream(header) >> loaded.step >> loaded.worldSize;
    return loaded;
  }
  const std::string dir = (fs::path(path) / "checkpoints").string();
  CheckpointStore store(dir, comm, 1);
  if (auto latest = store.loadLatest()) return *latest;
  throw CheckpointError(path +
                        ": neither a checkpoint folder (with state.bin) nor a run "
                        "directory with a complete checkpoint in checkpoints/");
}

std::optional<LoadedCheckpoint> CheckpointStore::loadLatest() {
  LoadedCheckpoint found;
  double outcome = 0;  // rank 0: 0 none, 1 found, 2 every complete checkpoint unreadable
  if (comm_.rank() == 0) {
    std::size_t unreadable = 0;
    skipped_.clear();
    for (const std::string& folder : list()) {
      if (!fs::exists(fs::path(folder) / "DONE")) {
        // An older writer's folder, renamed before its DONE: never committed, no checkpoint.
        log::warn(folder +
                  ": never committed (no DONE marker; its writer was interrupted); "
                  "not a checkpoint");
        skipped_.emplace_back(folder, ".incomplete");
        continue;
      }
      try {
        found = read(folder);
        outcome = 1;
        break;
      } catch (const CheckpointError& e) {
        log::warn(std::string(e.what()) + "; skipping it and trying the one before");
        skipped_.emplace_back(folder, ".corrupt");
        ++unreadable;
      }
    }
    if (outcome == 0 && unreadable > 0) outcome = 2;
    if (outcome == 2) skipped_.clear();  // nothing to set aside: the run stops here
  }
  outcome = comm_.allReduceScalar(outcome, ReduceOp::Max);
  if (outcome == 2) {
    // Starting afresh here would train over a run the user still has: let them decide.
    throw CheckpointError(dir_ +
                          ": every checkpoint is unreadable (see the warnings above); "
                          "move the folder away to start the run afresh");
  }
  if (outcome == 0) return std::nullopt;
  std::string header =
      found.path + "\n" + std::to_string(found.step) + "\n" + std::to_string(found.worldSize);
  comm_.broadcastBytes(header, 0);
  comm_.broadcastBytes(found.payload, 0);
  std::istringstream fields(header);
  std::string step, world;
  std::getline(fields, found.path);
  std::getline(fields, step);
  std::getline(fields, world);
  found.step = std::stoull(step);
  found.worldSize = static_cast<uint32_t>(std::stoul(world));
  return found;
}

}  // namespace gentrain
