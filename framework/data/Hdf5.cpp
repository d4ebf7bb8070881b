#include "framework/data/Hdf5.h"

#include <algorithm>

#include "framework/base/Error.h"

namespace gentrain::h5 {

std::recursive_mutex& hdf5Lock() {
  static std::recursive_mutex lock;
  return lock;
}

namespace {

// HDF5 prints its own error stack to stderr by default; we report errors ourselves.
struct SilenceHdf5 {
  SilenceHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

void silence() { static SilenceHdf5 once; }

Handle stringType() {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return Handle(type, H5Tclose);
}

std::vector<std::string> readStrings(hid_t attribute) {
  Handle type(H5Aget_type(attribute), H5Tclose);
  Handle space(H5Aget_space(attribute), H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.id());
  std::vector<std::string> out;
  if (H5Tget_class(type.id()) != H5T_STRING || count < 0) return out;
  // Note [untrusted sizes] (ImageFile.cpp): nothing is allocated from an unchecked count.
  constexpr hssize_t kMostStrings = hssize_t(1) << 20;
  constexpr std::size_t kMostBytes = std::size_t(1) << 28;
  const std::size_t fixed =
      H5Tis_variable_str(type.id()) > 0 ? sizeof(char*) : H5Tget_size(type.id());
  if (count > kMostStrings || fixed == 0 || fixed > kMostBytes / std::size_t(count ? count : 1)) {
    throw DataError("HDF5: a string attribute declares " + std::to_string(count) + " strings of " +
                    std::to_string(fixed) + " bytes, more than any gentrain file holds (at most " +
                    std::to_string(kMostStrings) + " strings, 256 MiB): the file is damaged");
  }
  if (H5Tis_variable_str(type.id()) > 0) {
    std::vector<char*> raw(static_cast<std::size_t>(count), nullptr);
    Handle memType = stringType();
    H5Tset_cset(memType.id(), H5Tget_cset(type.id()));
    if (H5Aread(attribute, memType.id(), raw.data()) < 0) return out;
    for (char* s : raw) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(memType.id(), space.id(), H5P_DEFAULT, raw.data());
  } else {
    const std::size_t size = H5Tget_size(type.id());
    std::vector<char> raw(size * static_cast<std::size_t>(count));
    if (H5Aread(attribute, type.id(), raw.data()) < 0) return out;
    for (hssize_t i = 0; i < count; ++i) {
      std::string s(raw.data() + i * size, size);
      s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) {
    std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
    closer_(id_);
  }
  id_ = -1;
}

Handle openFile(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  silence();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw DataError(path +
                    ": not an HDF5 file, or it does not exist (make one with `gentrain "
                    "data import-idx`; datasets/README.md gives the schema)");
  }
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw DataError(path + ": HDF5 could not open the file");
  return Handle(id, H5Fclose);
}

Handle createFile(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  silence();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw DataError(path + ": cannot create the file (is the folder writable?)");
  return Handle(id, H5Fclose);
}

bool exists(hid_t parent, const std::string& name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  return H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> children(hid_t group) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  std::vector<std::string> names;
  H5Literate(
      group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  return names;
}

std::vector<hsize_t> dims(hid_t dataset) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> out(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.id(), out.data(), nullptr);
  return out;
}

void writeStringAttribute(hid_t object, const std::string& name, const std::string& value) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle type = stringType();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(
      H5Acreate2(object, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* data = value.c_str();
  if (!attribute.valid() || H5Awrite(attribute.id(), type.id(), &data) < 0) {
    throw DataError("HDF5: cannot write attribute '" + name + "'");
  }
}

void writeStringListAttribute(hid_t object, const std::string& name,
                              const std::vector<std::string>& values) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle type = stringType();
  const hsize_t count = values.size();
  Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  Handle attribute(
      H5Acreate2(object, name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::vector<const char*> data;
  for (const std::string& v : values) data.push_back(v.c_str());
  if (!attribute.valid() || H5Awrite(attribute.id(), type.id(), data.data()) < 0) {
    throw DataError("HDF5: cannot write attribute '" + name + "'");
  }
}

void writeIntAttribute(hid_t object, const std::string& name, int64_t value) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(
      H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.id(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!attribute.valid() || H5Awrite(attribute.id(), H5T_NATIVE_INT64, &value) < 0) {
    throw DataError("HDF5: cannot write attribute '" + name + "'");
  }
}

std::string readStringAttribute(hid_t object, const std::string& name) {
  const std::vector<std::string> values = readStringListAttribute(object, name);
  return values.empty() ? "" : values.front();
}

std::vector<std::string> readStringListAttribute(hid_t object, const std::string& name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  if (H5Aexists(object, name.c_str()) <= 0) return {};
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  return readStrings(attribute.id());
}

int64_t readIntAttribute(hid_t object, const std::string& name, int64_t fallback) {
  std::lock_guard<std::recursive_mutex> lock(hdf5Lock());
  if (H5Aexists(object, name.c_str()) <= 0) return fallback;
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  int64_t value = fallback;
  if (H5Aread(attribute.id(), H5T_NATIVE_INT64, &value) < 0) return fallback;
  return value;
}

}  // namespace gentrain::h5
