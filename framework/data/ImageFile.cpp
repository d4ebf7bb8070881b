#include "framework/data/ImageFile.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Hash.h"

namespace gentrain {
namespace fs = std::filesystem;
using h5::Handle;
using h5::hdf5Lock;

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

Handle openDataset(hid_t group, const std::string& name) {
  return Handle(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
}

bool isUint8(hid_t dataset) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  return H5Tget_class(type.id()) == H5T_INTEGER && H5Tget_size(type.id()) == 1 &&
         H5Tget_sign(type.id()) == H5T_SGN_NONE;
}

void readAll(hid_t dataset, hid_t memType, void* out, const std::string& what) {
  if (H5Dread(dataset, memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    throw DataError(what + ": HDF5 read failed (is the file truncated?)");
  }
}

}  // namespace

// Note [untrusted sizes]
// An HDF5 file declares the sizes of its datasets, and a chunked dataset may declare far more
// than it stores (chunks never written read back as zeros), so a file of a few KB can declare
// terabytes of images, labels or attributes. Nothing is allocated from a declared size before it
// is checked: every size product is computed with overflow checks, and what a split declares
// (images, labels, attributes) must fit in the file at deflate's best ratio (1032:1, plus a
// little for tiny files); a file declaring more was never written that way. Attribute names are
// capped the same way in h5::readStringListAttribute.
namespace {

constexpr int64_t kDeflateBest = 1032;

/// The product of `dims` and `elementBytes`, or -1 when it does not fit in int64.
int64_t bytesOf(const std::vector<hsize_t>& dims, int64_t elementBytes) {
  int64_t bytes = elementBytes;
  for (hsize_t d : dims) {
    if (d > hsize_t(INT64_MAX) || __builtin_mul_overflow(bytes, int64_t(d), &bytes)) return -1;
  }
  return bytes;
}

/// Throws DataError unless `declared` bytes (-1: overflowed) can come from a file of `fileBytes`.
void checkDeclared(const std::string& where, int64_t declared, int64_t fileBytes) {
  const int64_t most = kDeflateBest * fileBytes + (int64_t(1) << 20);
  if (declared >= 0 && declared <= most) return;
  throw DataError(where + " declares " +
                  (declared < 0 ? std::string("more bytes than fit in 64 bits")
                                : std::to_string(declared) + " bytes of data") +
                  ", more than its " + std::to_string(fileBytes) +
                  "-byte file can hold even compressed: the file is damaged or was not written "
                  "completely; import it again");
}

}  // namespace

ImageDataset::ImageDataset(const std::string& path, const std::string& split, int64_t cacheBytes)
    : path_(path), split_(split) {
  file_ = h5::openFile(path);
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  const std::string where = path + ":/" + split;
  if (!h5::exists(file_.id(), split)) {
    throw DataError(path + ": no split '" + split +
                    "' (the file has: " + joined(h5::children(file_.id())) +
                    "); set data.train_split / data.test_split to one of them");
  }
  Handle group(H5Gopen2(file_.id(), split.c_str(), H5P_DEFAULT), H5Gclose);
  if (!group.valid() || !h5::exists(group.id(), "images")) {
    throw DataError(where + ": no 'images' dataset; datasets/README.md gives the schema");
  }
  // A chunk cache that holds a few chunks of images, for the per-batch reading path.
  Handle access(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  H5Pset_chunk_cache(access.id(), 10007, 64u << 20, 1.0);
  images_ = Handle(H5Dopen2(group.id(), "images", access.id()), H5Dclose);
  const std::vector<hsize_t> shape =
      images_.valid() ? h5::dims(images_.id()) : std::vector<hsize_t>{};
  if (shape.size() != 4 || !isUint8(images_.id())) {
    throw DataError(where +
                    "/images must be uint8 [N, C, H, W]; re-import it with `gentrain "
                    "data` or see datasets/README.md");
  }
  std::error_code noSize;
  const int64_t fileBytes = static_cast<int64_t>(fs::file_size(path, noSize));
  int64_t declared = bytesOf(shape, 1);  // Note [untrusted sizes]
  checkDeclared(where + "/images", declared, noSize ? 0 : fileBytes);
  size_ = static_cast<int64_t>(shape[0]);
  channels_ = static_cast<int64_t>(shape[1]);
  height_ = static_cast<int64_t>(shape[2]);
  width_ = static_cast<int64_t>(shape[3]);
  if (size_ == 0) throw DataError(where + " is empty: it holds no images");
  if (imageBytes() == 0) throw DataError(where + "/images has images of 0 pixels");
  {
    Handle create(H5Dget_create_plist(images_.id()), H5Pclose);
    hsize_t chunk[4] = {0, 0, 0, 0};
    if (create.valid() && H5Pget_layout(create.id()) == H5D_CHUNKED &&
        H5Pget_chunk(create.id(), 4, chunk) == 4 && chunk[0] > 0) {
      chunkRows_ = static_cast<int64_t>(chunk[0]);
      // Whole-image chunks, stored plain or deflated: readChunk can take them as they are.
      const int filters = H5Pget_nfilters(create.id());
      unsigned flags = 0;
      std::size_t values = 0;
      const H5Z_filter_t first = filters == 1 ? H5Pget_filter2(create.id(), 0, &flags, &values,
                                                               nullptr, 0, nullptr, nullptr)
                                              : H5Z_FILTER_NONE;
      rawChunks_ = chunk[1] == shape[1] && chunk[2] == shape[2] && chunk[3] == shape[3] &&
                   (filters == 0 || first == H5Z_FILTER_DEFLATE);
      deflatedChunks_ = rawChunks_ && filters == 1;
      if (rawChunks_) raw_.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } else if (imageBytes() > 0) {
      chunkRows_ = std::max<int64_t>(1, (int64_t(256) << 10) / imageBytes());
    }
  }

  Handle labels, attributes;
  if (h5::exists(group.id(), "labels")) {
    labels = openDataset(group.id(), "labels");
    const std::vector<hsize_t> n = h5::dims(labels.id());
    if (n.size() != 1 || static_cast<int64_t>(n[0]) != size_) {
      throw DataError(where + "/labels must be [N] with N = " + std::to_string(size_) +
                      " (the number of images)");
    }
    declared += size_ * int64_t(sizeof(int64_t));  // below the images' bytes times 8: no overflow
  }
  if (h5::exists(group.id(), "attributes")) {
    attributes = openDataset(group.id(), "attributes");
    const std::vector<hsize_t> n = h5::dims(attributes.id());
    if (n.size() != 2 || static_cast<int64_t>(n[0]) != size_) {
      throw DataError(where + "/attributes must be [N, A] with N = " + std::to_string(size_) +
                      " and a 'names' attribute of A strings");
    }
    const int64_t bytes = bytesOf(n, 1);
    declared = bytes < 0 || __builtin_add_overflow(declared, bytes, &declared) ? -1 : declared;
    checkDeclared(where + " (images, labels and attributes)", declared, noSize ? 0 : fileBytes);
    attributeNames_ = h5::readStringListAttribute(attributes.id(), "names");
    if (n[1] != attributeNames_.size()) {
      throw DataError(where + "/attributes must be [N, A] with N = " + std::to_string(size_) +
                      " and a 'names' attribute of A strings");
    }
  }
  checkDeclared(where + " (images, labels and attributes)", declared, noSize ? 0 : fileBytes);
  if (labels.valid()) {
    labels_.resize(static_cast<std::size_t>(size_));
    readAll(labels.id(), H5T_NATIVE_INT64, labels_.data(), where + "/labels");
  }
  if (attributes.valid()) {
    attributes_.resize(static_cast<std::size_t>(size_) * attributeNames_.size());
    readAll(attributes.id(), H5T_NATIVE_UINT8, attributes_.data(), where + "/attributes");
  }
  if (size_ * imageBytes() <= cacheBytes) {
    cache_.resize(static_cast<std::size_t>(size_ * imageBytes()));
    readAll(images_.id(), H5T_NATIVE_UINT8, cache_.data(), where + "/images");
  }
}

// Note [same data]
// On many nodes each node often reads its own copy of the dataset (a local disk, a staged
// copy). A copy imported from other files, truncated, or of another resolution trains silently
// wrong: every rank would shard a different set of images. The fingerprint catches that at
// start without reading the data: the shape and names, the labels and attributes whole, and
// three images. Two imports of the same source agree (HDF5 object headers carry times, so the
// file's own bytes would not); a copy with one image changed in the middle may pass.
std::string ImageDataset::fingerprint() const {
  uint64_t hash = kFnv1aOffset;
  fnv1aMix(hash, labels_.data(), labels_.size() * sizeof(int64_t));
  fnv1aMix(hash, attributes_.data(), attributes_.size());
  std::vector<int64_t> probes;
  if (size_ > 0) probes = {0, size_ / 2, size_ - 1};
  std::vector<uint8_t> pixels(probes.size() * static_cast<std::size_t>(imageBytes()));
  readImages(probes, pixels.data());
  fnv1aMix(hash, pixels.data(), pixels.size());
  std::ostringstream out;
  out << split_ << ": " << size_ << " images " << channels_ << "x" << height_ << "x" << width_
      << (hasLabels() ? ", labels" : ", no labels") << ", chunks of " << chunkRows_;
  for (const std::string& name : attributeNames_)
    out << (&name == &attributeNames_[0] ? ", attributes " : ",") << name;
  out << ", checksum " << std::hex << std::setw(16) << std::setfill('0') << hash;
  return out.str();
}

std::string ImageDataset::fileAttribute(const std::string& name) const {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  return h5::readStringAttribute(file_.id(), name);
}

ImageDataset::Descriptor::~Descriptor() {
  if (fd >= 0) ::close(fd);
}

bool ImageDataset::readChunk(int64_t chunk, int64_t count, uint8_t* out) const {
  if (!rawChunks_ || raw_.fd < 0 || !rows_.empty() || chunk < 0 || count < 1 ||
      count > chunkRows_ || chunk * chunkRows_ + count > size_) {
    return false;
  }
  const std::string where = path_ + ":/" + split_ + "/images";
  const int64_t wholeBytes = chunkRows_ * imageBytes();  // a chunk is stored whole, even the last
  const hsize_t offset[4] = {hsize_t(chunk * chunkRows_), 0, 0, 0};
  unsigned mask = 0;
  haddr_t address = HADDR_UNDEF;
  hsize_t storedBytes = 0;
  {
    std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
    if (H5Dget_chunk_info_by_coord(images_.id(), offset, &mask, &address, &storedBytes) < 0) {
      return false;
    }
  }
  if (mask != 0) return false;  // a filter skipped for this chunk: let HDF5 decide
  // Note [untrusted sizes]: a stored chunk is at most its data plus deflate's overhead.
  if (address == HADDR_UNDEF || storedBytes == 0 ||
      storedBytes > hsize_t(wholeBytes) + hsize_t(wholeBytes) / 1000 + 4096) {
    throw DataError(where + ": chunk " + std::to_string(chunk) + " is stored with " +
                    std::to_string(storedBytes) + " bytes for " + std::to_string(wholeBytes) +
                    " bytes of images: the file is damaged or was not written completely; "
                    "import it again");
  }
  const auto readStored = [&](uint8_t* into) {
    std::size_t done = 0;
    while (done < storedBytes) {
      const ssize_t got = ::pread(raw_.fd, into + done, storedBytes - done, off_t(address + done));
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        throw DataError(where + ": read failed at chunk " + std::to_string(chunk) +
                        " (is the file truncated?)");
      }
      done += static_cast<std::size_t>(got);
    }
  };
  const std::size_t want = static_cast<std::size_t>(count * imageBytes());
  if (!deflatedChunks_ && storedBytes == hsize_t(wholeBytes) && count == chunkRows_) {
    readStored(out);  // plain and whole: straight into the caller's buffer
    return true;
  }
  std::vector<uint8_t> stored(static_cast<std::size_t>(storedBytes));
  readStored(stored.data());
  if (!deflatedChunks_) {
    if (storedBytes != hsize_t(wholeBytes)) {
      throw DataError(where + ": chunk " + std::to_string(chunk) + " has " +
                      std::to_string(storedBytes) + " bytes, not " + std::to_string(wholeBytes) +
                      ": the file is damaged; import it again");
    }
    std::memcpy(out, stored.data(), want);
    return true;
  }
  // Inflate into a whole-chunk buffer unless the caller's holds the whole chunk.
  std::vector<uint8_t> whole;
  uint8_t* target = out;
  if (count < chunkRows_) {
    whole.resize(static_cast<std::size_t>(wholeBytes));
    target = whole.data();
  }
  uLongf produced = static_cast<uLongf>(wholeBytes);
  if (uncompress(target, &produced, stored.data(), static_cast<uLong>(stored.size())) != Z_OK ||
      produced != uLongf(wholeBytes)) {
    throw DataError(where + ": chunk " + std::to_string(chunk) +
                    " does not inflate to its size: the file is damaged; import it again");
  }
  if (target != out) std::memcpy(out, target, want);
  return true;
}

void ImageDataset::setChunkCache(int64_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle access(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  H5Pset_chunk_cache(access.id(), 10007, static_cast<std::size_t>(std::max<int64_t>(0, bytes)),
                     1.0);
  Handle reopened(H5Dopen2(file_.id(), (split_ + "/images").c_str(), access.id()), H5Dclose);
  if (!reopened.valid()) throw DataError(path_ + ":/" + split_ + "/images: cannot reopen");
  images_ = std::move(reopened);
}

void ImageDataset::keepOnly(const std::vector<int64_t>& rows) {
  for (std::size_t k = 0; k < rows.size(); ++k) {
    if (rows[k] < 0 || rows[k] >= size_ || (k > 0 && rows[k] <= rows[k - 1])) {
      throw DataError(path_ + ":/" + split_ + ": keepOnly needs increasing image indices below " +
                      std::to_string(size_));
    }
  }
  const auto compact = [&rows](auto& values, std::size_t width) {
    if (values.empty()) return;
    for (std::size_t k = 0; k < rows.size(); ++k) {
      std::copy_n(values.begin() + rows[k] * width, width, values.begin() + k * width);
    }
    values.resize(rows.size() * width);
  };
  compact(labels_, 1);
  compact(attributes_, attributeNames_.size());
  compact(cache_, static_cast<std::size_t>(imageBytes()));
  std::vector<int64_t> fileRows(rows);
  if (!rows_.empty()) {
    for (int64_t& row : fileRows) row = rows_[row];
  }
  rows_ = std::move(fileRows);
  size_ = static_cast<int64_t>(rows.size());
}

void ImageDataset::readImages(const std::vector<int64_t>& wanted, uint8_t* out) const {
  const int64_t bytes = imageBytes();
  for (int64_t index : wanted) {
    if (index < 0 || index >= size_) {
      throw DataError(path_ + ":/" + split_ + ": image index " + std::to_string(index) +
                      " is out of range [0, " + std::to_string(size_) + ")");
    }
  }
  if (inMemory()) {
    for (std::size_t k = 0; k < wanted.size(); ++k) {
      std::memcpy(out + k * bytes, cache_.data() + wanted[k] * bytes, bytes);
    }
    return;
  }
  std::vector<int64_t> mapped;
  if (!rows_.empty()) {
    mapped.reserve(wanted.size());
    for (int64_t index : wanted) mapped.push_back(rows_[index]);
  }
  const std::vector<int64_t>& indices = rows_.empty() ? wanted : mapped;
  // One hyperslab read per run of consecutive indices.
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle fileSpace(H5Dget_space(images_.id()), H5Sclose);
  std::size_t k = 0;
  while (k < indices.size()) {
    std::size_t run = 1;
    while (k + run < indices.size() && indices[k + run] == indices[k] + int64_t(run)) ++run;
    const hsize_t start[4] = {hsize_t(indices[k]), 0, 0, 0};
    const hsize_t count[4] = {hsize_t(run), hsize_t(channels_), hsize_t(height_), hsize_t(width_)};
    H5Sselect_hyperslab(fileSpace.id(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle memSpace(H5Screate_simple(4, count, nullptr), H5Sclose);
    if (H5Dread(images_.id(), H5T_NATIVE_UINT8, memSpace.id(), fileSpace.id(), H5P_DEFAULT,
                out + k * bytes) < 0) {
      throw DataError(path_ + ":/" + split_ + "/images: read failed at image " +
                      std::to_string(indices[k]) + " (is the file truncated?)");
    }
    k += run;
  }
}

void ImageDataset::forEachBlock(
    int64_t block, const std::function<void(int64_t, int64_t, const uint8_t*)>& visit) const {
  std::vector<uint8_t> pixels(static_cast<std::size_t>(block * imageBytes()));
  for (int64_t first = 0; first < size_; first += block) {
    const int64_t count = std::min(block, size_ - first);
    std::vector<int64_t> indices(static_cast<std::size_t>(count));
    std::iota(indices.begin(), indices.end(), first);
    readImages(indices, pixels.data());
    visit(first, count, pixels.data());
  }
}

struct ImageFileWriter::Split {
  Handle group, images, labels, attributes;
  int64_t count = 0;
  int64_t imageBytes = 0;
  int64_t chunkRows = 1;
  int64_t flushed = 0;           // images written as whole chunks
  std::vector<uint8_t> pending;  // images after them, less than a chunk once append returns
  hsize_t shape[4] = {0, 0, 0, 0};
  std::size_t attributeCount = 0;
};

namespace {

Handle extensible(hid_t group, const char* name, hid_t type, std::vector<hsize_t> rowShape,
                  hsize_t chunkRows, bool compress) {
  std::vector<hsize_t> dims{0}, maxDims{H5S_UNLIMITED}, chunk{chunkRows};
  for (hsize_t d : rowShape) {
    dims.push_back(d);
    maxDims.push_back(d);
    chunk.push_back(d);
  }
  Handle space(H5Screate_simple(int(dims.size()), dims.data(), maxDims.data()), H5Sclose);
  Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(create.id(), int(chunk.size()), chunk.data());
  // Level 1: most of the size gain of higher levels at a fraction of the time (imports of
  // large folders spent most of their time in deflate at level 4).
  if (compress) H5Pset_deflate(create.id(), 1);
  Handle dataset(H5Dcreate2(group, name, type, space.id(), H5P_DEFAULT, create.id(), H5P_DEFAULT),
                 H5Dclose);
  if (!dataset.valid()) throw DataError(std::string("HDF5: cannot create dataset ") + name);
  return dataset;
}

void appendRows(hid_t dataset, hsize_t first, hsize_t rows, hid_t memType, const void* data) {
  std::vector<hsize_t> shape = h5::dims(dataset);
  shape[0] = first + rows;
  H5Dset_extent(dataset, shape.data());
  Handle fileSpace(H5Dget_space(dataset), H5Sclose);
  std::vector<hsize_t> start(shape.size(), 0), count = shape;
  start[0] = first;
  count[0] = rows;
  H5Sselect_hyperslab(fileSpace.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle memSpace(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
  if (H5Dwrite(dataset, memType, memSpace.id(), fileSpace.id(), H5P_DEFAULT, data) < 0) {
    throw DataError("HDF5: write failed (is the disk full?)");
  }
}

}  // namespace

ImageFileWriter::ImageFileWriter(std::string path, bool overwrite, ImageWriterOptions options)
    : path_(std::move(path)), partial_(path_ + ".partial"), options_(options) {
  if (!overwrite && fs::exists(path_)) {
    throw DataError(path_ +
                    " already exists; pass --force to replace it, or choose another "
                    "output name");
  }
  file_ = h5::createFile(partial_);
  setFileAttribute("gentrain_format", std::string("gentrain-images"));
  setFileAttribute("gentrain_version", int64_t{1});
}

ImageFileWriter::~ImageFileWriter() {
  if (!committed_) {
    split_.reset();
    file_.reset();
    std::error_code ignored;
    fs::remove(partial_, ignored);
  }
}

void ImageFileWriter::beginSplit(const std::string& name, int64_t channels, int64_t height,
                                 int64_t width, bool withLabels,
                                 const std::vector<std::string>& attributeNames) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  finishSplit();
  split_ = std::make_unique<Split>();
  split_->group =
      Handle(H5Gcreate2(file_.id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!split_->group.valid()) throw DataError(partial_ + ": cannot create split '" + name + "'");
  split_->imageBytes = channels * height * width;
  // 256 KiB of images per chunk by default: large enough to compress well and to read at disk
  // speed, small enough that a block order's G lanes fit in memory (Note [lanes of blocks]).
  const hsize_t rows =
      std::max<hsize_t>(1, hsize_t(options_.chunkBytes) / hsize_t(split_->imageBytes));
  split_->chunkRows = static_cast<int64_t>(rows);
  split_->images =
      extensible(split_->group.id(), "images", H5T_STD_U8LE,
                 {hsize_t(channels), hsize_t(height), hsize_t(width)}, rows, options_.compress);
  if (withLabels) {
    split_->labels = extensible(split_->group.id(), "labels", H5T_STD_I64LE, {}, 4096, true);
  }
  if (!attributeNames.empty()) {
    split_->attributeCount = attributeNames.size();
    split_->attributes = extensible(split_->group.id(), "attributes", H5T_STD_U8LE,
                                    {hsize_t(attributeNames.size())}, 4096, true);
    h5::writeStringListAttribute(split_->attributes.id(), "names", attributeNames);
  }
}

void ImageFileWriter::append(const uint8_t* images, int64_t count, const int64_t* labels,
                             const uint8_t* attributes) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  if (!split_) throw DataError("internal: append before beginSplit");
  if (count == 0) return;
  appendImages(images, count);
  if (split_->labels.valid()) {
    if (labels == nullptr) throw DataError("internal: split has labels but none were given");
    appendRows(split_->labels.id(), split_->count, count, H5T_NATIVE_INT64, labels);
  }
  if (split_->attributes.valid()) {
    if (attributes == nullptr) throw DataError("internal: split has attributes, none given");
    appendRows(split_->attributes.id(), split_->count, count, H5T_NATIVE_UINT8, attributes);
  }
  split_->count += count;
}

// Note [chunks deflated in parallel]
// Deflate at level 1 runs at ~50-100 MB/s on a core, so an import that decodes on all cores
// then waited on HDF5 deflating chunk after chunk on one. The writer now cuts the images into
// whole chunks itself, deflates them on every core (zlib's format, as HDF5's deflate filter
// writes it) and stores them with H5Dwrite_chunk; only the last, partial chunk of a split goes
// through HDF5's filter. Readers cannot tell the difference. The chunks are deflated by the
// OpenMP team that import-folder decodes with: a std::thread team of its own ran beside that
// team's threads, still spinning after the decode, and the deflate phase scaled 1.46x on two
// cores instead of 1.9x.
void ImageFileWriter::appendImages(const uint8_t* images, int64_t count) {
  Split& s = *split_;
  const std::size_t chunkBytes = static_cast<std::size_t>(s.chunkRows * s.imageBytes);
  s.pending.insert(s.pending.end(), images, images + count * s.imageBytes);
  const std::size_t whole = s.pending.size() / chunkBytes;
  if (whole == 0) return;
  std::vector<hsize_t> shape = h5::dims(s.images.id());
  shape[0] = hsize_t(s.flushed) + whole * hsize_t(s.chunkRows);
  H5Dset_extent(s.images.id(), shape.data());
  std::vector<std::vector<uint8_t>> stored(whole);
  if (options_.compress) {
#ifdef _OPENMP
    const int threads = options_.threads > 0 ? options_.threads : omp_get_max_threads();
#else
    const int threads = 1;  // the fuzz build compiles this file without OpenMP
#endif
    const int64_t chunks = static_cast<int64_t>(whole);
    int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(| : failed)
    for (int64_t k = 0; k < chunks; ++k) {
      try {
        uLongf size = compressBound(static_cast<uLong>(chunkBytes));
        stored[k].resize(size);
        failed |= compress2(stored[k].data(), &size, s.pending.data() + k * chunkBytes,
                            static_cast<uLong>(chunkBytes), 1) != Z_OK;
        stored[k].resize(size);
      } catch (const std::bad_alloc&) {
        failed = 1;  // nothing may leave an OpenMP region
      }
    }
    if (failed) throw DataError(partial_ + ": deflating images failed (out of memory?)");
  }
  for (std::size_t k = 0; k < whole; ++k) {
    const hsize_t offset[4] = {hsize_t(s.flushed) + k * hsize_t(s.chunkRows), 0, 0, 0};
    const uint8_t* bytes = options_.compress ? stored[k].data() : s.pending.data() + k * chunkBytes;
    const std::size_t size = options_.compress ? stored[k].size() : chunkBytes;
    if (H5Dwrite_chunk(s.images.id(), H5P_DEFAULT, 0, offset, size, bytes) < 0) {
      throw DataError("HDF5: write failed (is the disk full?)");
    }
  }
  s.flushed += static_cast<int64_t>(whole) * s.chunkRows;
  s.pending.erase(s.pending.begin(), s.pending.begin() + whole * chunkBytes);
}

void ImageFileWriter::finishSplit() {
  if (!split_ || split_->pending.empty()) return;
  Split& s = *split_;
  appendRows(s.images.id(), hsize_t(s.flushed), hsize_t(int64_t(s.pending.size()) / s.imageBytes),
             H5T_NATIVE_UINT8, s.pending.data());
  s.flushed += int64_t(s.pending.size()) / s.imageBytes;
  s.pending.clear();
}

void ImageFileWriter::setFileAttribute(const std::string& name, const std::string& value) {
  h5::writeStringAttribute(file_.id(), name, value);
}
void ImageFileWriter::setFileAttribute(const std::string& name, int64_t value) {
  h5::writeIntAttribute(file_.id(), name, value);
}
void ImageFileWriter::setFileAttribute(const std::string& name,
                                       const std::vector<std::string>& values) {
  h5::writeStringListAttribute(file_.id(), name, values);
}

void ImageFileWriter::commit() {
  {
    std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
    finishSplit();
  }
  split_.reset();
  {
    std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
    if (H5Fflush(file_.id(), H5F_SCOPE_GLOBAL) < 0) {
      throw DataError(partial_ + ": flush failed (is the disk full?)");
    }
  }
  file_.reset();
  std::error_code error;
  fs::rename(partial_, path_, error);
  if (error)
    throw DataError(path_ + ": cannot move the finished file into place: " + error.message());
  committed_ = true;
}

std::vector<double> channelMeans(const ImageDataset& data) {
  const int64_t c = data.channels(), plane = data.height() * data.width();
  std::vector<double> sums(static_cast<std::size_t>(c), 0.0);
  data.forEachBlock(1024, [&](int64_t, int64_t count, const uint8_t* pixels) {
    for (int64_t k = 0; k < count; ++k) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const uint8_t* p = pixels + (k * c + ch) * plane;
        sums[ch] += std::accumulate(p, p + plane, int64_t{0});
      }
    }
  });
  for (double& s : sums) s /= double(data.size() * plane);
  return sums;
}

std::string describeImageFile(const std::string& path) {
  Handle file = h5::openFile(path);
  std::ostringstream os;
  os << path << "\n";
  for (const char* name : {"gentrain_format", "source", "binarize"}) {
    const std::string value = h5::readStringAttribute(file.id(), name);
    if (!value.empty()) os << "  " << name << ": " << value << "\n";
  }
  const std::vector<std::string> labelNames = h5::readStringListAttribute(file.id(), "label_names");
  if (!labelNames.empty()) os << "  label_names: " << joined(labelNames) << "\n";
  for (const std::string& split : h5::children(file.id())) {
    ImageDataset data(path, split, 0);
    os << "  split '" << split << "': " << data.size() << " images, uint8 [" << data.size() << ", "
       << data.channels() << ", " << data.height() << ", " << data.width() << "]\n";
    if (data.hasLabels()) {
      std::map<int64_t, int64_t> counts;
      for (int64_t l : data.labels()) ++counts[l];
      os << "    labels: " << counts.size() << " classes (";
      bool first = true;
      for (auto [label, n] : counts) {
        os << (first ? "" : ", ") << label << ": " << n;
        first = false;
      }
      os << ")\n";
    }
    if (!data.attributeNames().empty()) {
      os << "    attributes:";
      const std::size_t a = data.attributeNames().size();
      for (std::size_t j = 0; j < a; ++j) {
        int64_t ones = 0;
        for (int64_t k = 0; k < data.size(); ++k) ones += data.attributes()[k * a + j];
        os << " " << data.attributeNames()[j] << " (" << ones << ")";
      }
      os << "\n";
    }
    os << "    per-channel mean:";
    for (double mean : channelMeans(data)) os << " " << std::fixed << std::setprecision(2) << mean;
    os << " (of 255)\n";
  }
  return os.str();
}

}  // namespace gentrain
