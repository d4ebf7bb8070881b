#pragma once
/// @file Reading and writing image datasets in the gentrain HDF5 schema (datasets/README.md).
///
///   /<split>/images      uint8  [N, C, H, W], chunked
///   /<split>/labels      int64  [N]            (optional)
///   /<split>/attributes  uint8  [N, A] of 0/1  (optional; attribute `names`: A strings)
///   root attributes: gentrain_format="gentrain-images", gentrain_version=1, source, binarize...

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/data/Hdf5.h"

namespace gentrain {

/// Read access to one split. Small splits are read into memory once; large ones are read per
/// batch through a chunk cache. Methods are safe to call from the loader thread.
class ImageDataset {
 public:
  /// Opens `split` of `path`; splits of at most `cacheBytes` of images are held in memory.
  ImageDataset(const std::string& path, const std::string& split, int64_t cacheBytes);

  int64_t size() const { return size_; }
  int64_t channels() const { return channels_; }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  int64_t imageBytes() const { return channels_ * height_ * width_; }
  bool inMemory() const { return !cache_.empty(); }
  /// Images per HDF5 chunk of the stored images (what one chunk read decompresses); for a file
  /// stored unchunked, the images in 256 KiB.
  int64_t chunkRows() const { return chunkRows_; }
  /// Reads the `count` images of chunk `chunk` (images chunk*chunkRows() ..) into `out`, past
  /// HDF5's chunk machinery: HDF5 only says where the chunk is stored; one pread of it and, for
  /// a deflated one, one inflate follow outside the HDF5 lock (reader threads overlap). False when
  /// this split cannot be read that way (other filters, a narrowed split, not chunked): use
  /// readImages.
  bool readChunk(int64_t chunk, int64_t count, uint8_t* out) const;
  /// Sets the HDF5 chunk cache of the images (64 MiB at open). The streaming path reads whole
  /// chunks into blocks of its own and sets it to 0, so nothing is held twice.
  void setChunkCache(int64_t bytes);
  const std::string& path() const { return path_; }
  const std::string& split() const { return split_; }

  bool hasLabels() const { return !labels_.empty(); }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<std::string>& attributeNames() const { return attributeNames_; }
  /// Row-major [N, A] of 0/1; empty when the split has no attributes.
  const std::vector<uint8_t>& attributes() const { return attributes_; }
  /// What two copies of this split must share to train as one dataset: size, image shape, label
  /// and attribute names, and a checksum of the labels, attributes and a few images spread over
  /// the split (first, middle, last). One line, cheap to compute; see Note [same data].
  std::string fingerprint() const;
  /// A root attribute of the file (e.g. "binarize"), "" when absent.
  std::string fileAttribute(const std::string& name) const;

  /// Narrows the split to the images at `rows` (increasing, in range): from then on image i is
  /// the file's image rows[i], with its label and attributes. DataError for bad rows.
  void keepOnly(const std::vector<int64_t>& rows);

  /// Copies the images at `indices`, in that order, to `out` (indices.size() * imageBytes()).
  void readImages(const std::vector<int64_t>& indices, uint8_t* out) const;
  /// Streams the whole split in order, `block` images at a time: visit(first, count, pixels).
  void forEachBlock(int64_t block,
                    const std::function<void(int64_t, int64_t, const uint8_t*)>& visit) const;

 private:
  /// The file opened once more, plainly: readChunk reads stored chunks with pread, outside
  /// the HDF5 lock, so that reads of several threads are in flight at once.
  struct Descriptor {
    int fd = -1;
    Descriptor() = default;
    explicit Descriptor(int f) : fd(f) {}
    ~Descriptor();
    Descriptor(Descriptor&& other) noexcept : fd(other.fd) { other.fd = -1; }
    Descriptor& operator=(Descriptor&&) = delete;
  };

  std::string path_;
  std::string split_;
  h5::Handle file_;
  h5::Handle images_;
  Descriptor raw_;
  int64_t size_ = 0, channels_ = 0, height_ = 0, width_ = 0;
  int64_t chunkRows_ = 0;
  bool rawChunks_ = false;       // chunks readable by readChunk
  bool deflatedChunks_ = false;  // ... and stored deflated
  std::vector<uint8_t> cache_;
  std::vector<int64_t> labels_;
  std::vector<std::string> attributeNames_;
  std::vector<uint8_t> attributes_;
  std::vector<int64_t> rows_;  // keepOnly(): the file's index of each image; empty: identity
};

/// Writes a file in the schema, split by split, streaming (nothing is held whole in memory).
/// It writes to `<path>.partial` and renames on commit(), so an existing file is never left
/// half-written; without `overwrite`, an existing `path` is refused up front.
struct ImageWriterOptions {
  /// Bytes of images per HDF5 chunk (rounded to whole images): the unit a streaming reader
  /// reads and decompresses, and the block of the block shuffle order.
  int64_t chunkBytes = 256 << 10;
  /// Deflate (level 1) the images; off where the disk reads faster than one core inflates.
  bool compress = true;
  /// Threads that deflate whole chunks (Note [chunks deflated in parallel]); 0: OpenMP's count
  /// (runtime.threads or OMP_NUM_THREADS, else every core this process may run on).
  int threads = 0;
};

class ImageFileWriter {
 public:
  ImageFileWriter(std::string path, bool overwrite, ImageWriterOptions options = {});
  ~ImageFileWriter();
  ImageFileWriter(const ImageFileWriter&) = delete;
  ImageFileWriter& operator=(const ImageFileWriter&) = delete;

  /// Starts a split; the previous one (if any) is finished.
  void beginSplit(const std::string& name, int64_t channels, int64_t height, int64_t width,
                  bool withLabels, const std::vector<std::string>& attributeNames = {});
  /// Appends `count` images (and labels / attributes when the split has them).
  void append(const uint8_t* images, int64_t count, const int64_t* labels = nullptr,
              const uint8_t* attributes = nullptr);
  void setFileAttribute(const std::string& name, const std::string& value);
  void setFileAttribute(const std::string& name, int64_t value);
  void setFileAttribute(const std::string& name, const std::vector<std::string>& values);
  /// Flushes, closes and renames into place.
  void commit();

 private:
  struct Split;
  void appendImages(const uint8_t* images, int64_t count);
  /// Writes the split's last, partial chunk.
  void finishSplit();
  std::string path_;
  std::string partial_;
  ImageWriterOptions options_;
  h5::Handle file_;
  std::unique_ptr<Split> split_;
  bool committed_ = false;
};

/// Mean pixel value (0..255) of each channel over a whole split.
std::vector<double> channelMeans(const ImageDataset& data);

/// A multi-line, human-readable summary of a file: splits, shapes, labels, attributes, means.
std::string describeImageFile(const std::string& path);

}  // namespace gentrain
