// libFuzzer target: an HDF5 dataset file as gentrain opens it for training (ImageDataset), with
// the sizes, types, shapes and names it declares chosen by the input (Note [untrusted sizes]).
//
// The input does not become the file's bytes: libhdf5's own parser is not ours to fuzz (and is
// not hardened against arbitrary bytes), so the target writes a well-formed HDF5 file through
// the library whose *declarations* come from the input: dimensions up to 2^63, chunked datasets
// whose chunks are only partly written (what makes a small file declare terabytes), element
// types, labels and attribute tables that disagree with the images, attribute names of any
// count. ImageDataset must refuse what does not fit with a DataError, and read what it accepts
// without allocating more than the file could hold.
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "FuzzUtil.h"
#include "framework/base/Error.h"
#include "framework/data/Hdf5.h"
#include "framework/data/ImageFile.h"

namespace fs = std::filesystem;
namespace h5 = gentrain::h5;

namespace {

/// Reads the input front to back; past its end every read gives 0.
struct Input {
  const uint8_t* data;
  std::size_t size;
  std::size_t at = 0;
  uint8_t byte() { return at < size ? data[at++] : 0; }
  /// A size: a small value mostly, sometimes shifted up to near 2^63.
  hsize_t dimension() {
    const uint8_t kind = byte();
    const hsize_t small = byte() % 9;
    if (kind < 200) return small;
    return (hsize_t(byte()) + 1) << (kind % 56);
  }
};

/// Declares `name` with `dims` of `type`, chunked by rows, and writes the first rows it can
/// (at most `bytes` bytes of values), leaving the rest of the chunks unwritten.
void declare(hid_t group, const char* name, hid_t type, const std::vector<hsize_t>& dims,
             Input& in) {
  h5::Handle space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
  if (!space.valid()) return;
  h5::Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  std::vector<hsize_t> chunk(dims.size());
  constexpr hsize_t kMostWritten = hsize_t(1) << 16;  // elements of a row the target writes
  hsize_t rowElements = 1;  // saturates above kMostWritten: such rows are left unwritten
  for (std::size_t d = 0; d < dims.size(); ++d) {
    chunk[d] = std::max<hsize_t>(1, std::min<hsize_t>(dims[d], d == 0 ? 4 : 64));
    if (d == 0) continue;
    rowElements = dims[d] > kMostWritten ? kMostWritten + 1
                                         : std::min(kMostWritten + 1, rowElements * dims[d]);
  }
  if (!dims.empty() && H5Pset_chunk(create.id(), int(chunk.size()), chunk.data()) < 0) return;
  h5::Handle dataset(
      H5Dcreate2(group, name, type, space.id(), H5P_DEFAULT, create.id(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid() || dims.empty() || dims[0] == 0 || rowElements > kMostWritten) return;
  // libhdf5 1.10 itself crashes writing the first chunk of a dataset of ~2^60 elements (a null
  // read in its chunk B-tree, H5D__chunk_lookup): such datasets stay declared and unwritten, as
  // the reader must refuse or bound them either way.
  constexpr hsize_t kMostDeclaredWritten = hsize_t(1) << 48;
  if (rowElements > 0 && dims[0] > kMostDeclaredWritten / rowElements) return;
  // Write up to 3 rows of values taken from the input.
  const hsize_t rows = std::min<hsize_t>(dims[0], 1 + in.byte() % 3);
  std::vector<uint8_t> values(rows * rowElements * H5Tget_size(type));
  for (uint8_t& v : values) v = in.byte();
  std::vector<hsize_t> start(dims.size(), 0), count(dims);
  count[0] = rows;
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  h5::Handle memory(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
  H5Dwrite(dataset.id(), type, memory.id(), space.id(), H5P_DEFAULT, values.data());
}

void writeNames(hid_t dataset, Input& in) {
  const hsize_t count = in.byte() % 4 == 0 ? in.dimension() : in.byte() % 6;
  h5::Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  const std::size_t length = 1 + in.byte() % 8;
  H5Tset_size(type.id(), length);
  h5::Handle attribute(
      H5Acreate2(dataset, "names", type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attribute.valid() || count > 64) return;
  std::vector<char> text(count * length);
  for (char& c : text) c = static_cast<char>('a' + in.byte() % 26);
  H5Awrite(attribute.id(), type.id(), text.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the library's own error stack stays quiet
  Input in{data, size};
  const fs::path path = gentrain::fuzz::scratch() / "fuzz.h5";
  fs::remove(path);
  const uint8_t flags = in.byte();
  {
    h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file.valid()) return 0;
    h5::Handle group(H5Gcreate2(file.id(), "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     H5Gclose);
    const std::size_t rank = flags & 1 ? 1 + in.byte() % 5 : 4;
    std::vector<hsize_t> images(rank);
    for (hsize_t& d : images) d = in.dimension();
    declare(group.id(), "images", flags & 2 ? H5T_STD_U16LE : H5T_STD_U8LE, images, in);
    if (flags & 4) {
      std::vector<hsize_t> labels{flags & 8 ? in.dimension() : images[0]};
      declare(group.id(), "labels", H5T_STD_I64LE, labels, in);
    }
    if (flags & 16) {
      std::vector<hsize_t> table{flags & 32 ? in.dimension() : images[0], in.dimension()};
      declare(group.id(), "attributes", H5T_STD_U8LE, table, in);
      h5::Handle attributes(H5Dopen2(group.id(), "attributes", H5P_DEFAULT), H5Dclose);
      if (attributes.valid()) writeNames(attributes.id(), in);
    }
  }
  try {
    gentrain::ImageDataset dataset(path.string(), "train", flags & 64 ? 1 << 20 : 0);
    // What it accepted, it reads: a few images, and all of them when there are few.
    const int64_t n = std::min<int64_t>(dataset.size(), 3);
    std::vector<int64_t> indices;
    for (int64_t k = 0; k < n; ++k) indices.push_back(dataset.size() - 1 - k);
    std::vector<uint8_t> pixels(static_cast<std::size_t>(n * dataset.imageBytes()));
    dataset.readImages(indices, pixels.data());
    if (dataset.size() <= 64 && dataset.imageBytes() <= (1 << 16)) {
      dataset.forEachBlock(16, [](int64_t, int64_t, const uint8_t*) {});
    }
    if (dataset.size() > 2) dataset.keepOnly({0, dataset.size() - 1});
  } catch (const gentrain::Error&) {
  }
  return 0;
}
