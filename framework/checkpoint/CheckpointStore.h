#pragma once
/// @file Versioned, checksummed, atomically written checkpoints in a run directory.
///
/// Layout: `<dir>/step-<12 digits>/state.bin` plus a `DONE` marker. state.bin is
///   "GTCKPT\r\n" | u32 format version | u64 step | u32 world size | u64 payload bytes |
///   payload | u32 CRC-32 of the payload      (integers little-endian)
/// Writing (rank 0): state.bin and DONE into step-N.tmp, fsync, rename to step-N (the commit
/// point: Note [checkpoint commit] in the .cpp), fsync the parent; then all ranks agree it
/// worked (one collective, so a failed write is an error on every rank, never a hang).
/// A checkpoint without DONE, or whose header, size or checksum is wrong, is reported and skipped
/// by loadLatest(), which falls back to the one before. The payload is opaque here.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "framework/comm/Communicator.h"

namespace gentrain {

struct LoadedCheckpoint {
  std::string path;
  uint64_t step = 0;
  uint32_t worldSize = 0;
  std::string payload;
};

class CheckpointStore {
 public:
  static constexpr uint32_t kFormatVersion = 1;

  CheckpointStore(std::string dir, Communicator& comm, int keep);

  /// Collective. `payload` matters on rank 0 only. Keeps the newest `keep` complete checkpoints.
  /// Throws CheckpointError on every rank if rank 0 could not write; older checkpoints stay.
  void save(uint64_t step, const std::string& payload);

  /// Collective. The newest complete, valid checkpoint (read by rank 0, sent to all ranks), or
  /// nothing when there is none. Damaged ones are reported and skipped, as are never-committed
  /// ones (no DONE: an older writer's); when every committed one is damaged, CheckpointError
  /// (starting afresh would train over the run).
  std::optional<LoadedCheckpoint> loadLatest();
  /// Rank 0, after loadLatest() resumed past damaged or never-committed folders, once the run
  /// directory's lock is held: renames them to step-N.corrupt (or .incomplete), so that only
  /// verified checkpoints count toward `keep`. Returns what it did, a line each.
  std::vector<std::string> setAsideSkipped();

  /// Rank 0 of a job holding the run directory's lock, at start: removes step-N.tmp folders a
  /// killed writer left and puts back a step-N.old an interrupted re-save left (Note
  /// [checkpoint commit]). Returns what it did, a line each.
  static std::vector<std::string> tidy(const std::string& dir);

  /// Collective: `path` is a checkpoint folder (holding state.bin) or a run directory (its newest
  /// complete checkpoint). Rank 0 reads, every rank receives. CheckpointError when there is none.
  static LoadedCheckpoint loadAny(const std::string& path, Communicator& comm);

  /// Reads and verifies one checkpoint folder; CheckpointError says what is wrong with it.
  static LoadedCheckpoint read(const std::string& folder);
  /// Checkpoint folders (complete or not), newest first.
  std::vector<std::string> list() const { return folders(dir_); }
  /// The checkpoint folders (complete or not) in `dir`, newest first; none when `dir` is
  /// missing or unreadable.
  static std::vector<std::string> folders(const std::string& dir);

  const std::string& dir() const { return dir_; }

 private:
  /// Renames the complete `temp` folder to `final`: the commit point (Note [checkpoint commit]).
  void commit(const std::filesystem::path& temp, const std::filesystem::path& final);

  std::string dir_;
  Communicator& comm_;
  int keep_;
  std::vector<std::pair<std::string, std::string>> skipped_;  // folder, suffix (rank 0)
};

}  // namespace gentrain
