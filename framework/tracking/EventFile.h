#pragma once
/// @file TensorBoard event files: the writer rank 0 uses during training, and a reader that
/// checks the framing (tests, tools).
///
/// A file is a sequence of records: uint64 length (little endian), the masked CRC32C of those 8
/// bytes, the payload (a serialized Event), and the payload's masked CRC32C. The first record
/// holds the file version; then each record one Summary of scalars, an image or a text.

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace gentrain {

/// CRC32C (Castagnoli), and TensorBoard's masking of it.
uint32_t crc32c(const char* data, std::size_t size);
uint32_t maskedCrc32c(const char* data, std::size_t size);

class EventWriter {
 public:
  /// Creates `dir` if needed and a new events.out.tfevents.<seconds>.<host>.<pid> file in it.
  /// Throws Error naming the file when it cannot be created.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  /// Scalars under `prefix/name` (e.g. train/loss), one record.
  void scalars(int64_t step, const std::string& prefix,
               const std::map<std::string, double>& values);
  /// A PNG image (grey, RGB or RGBA as `channels` says).
  void image(int64_t step, const std::string& tag, const std::string& png, int height, int width,
             int channels);
  /// Text (Markdown) for TensorBoard's text plugin.
  void text(int64_t step, const std::string& tag, const std::string& markdown);
  /// Pushes what was written to the file, so that a running TensorBoard sees it.
  void flush();

  const std::string& path() const { return path_; }
  int64_t records() const { return records_; }
  /// Wall seconds spent in this writer (for the cost of summaries).
  double seconds() const { return seconds_; }

 private:
  void writeRecord(const std::string& payload);

  std::string path_;
  std::ofstream out_;
  int64_t records_ = 0;
  double seconds_ = 0;
};

/// The payloads of an event file's records, in order. Throws DataError naming the file and the
/// offset at a bad length or checksum, or at a truncated record.
std::vector<std::string> readEventRecords(const std::string& path);

/// Width, height and channels from a PNG's header; false when `png` is not a PNG.
bool pngSize(const std::string& png, int& width, int& height, int& channels);

}  // namespace gentrain
