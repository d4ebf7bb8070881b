#pragma once
/// @file Thin RAII layer over the HDF5 C API, with one process-wide lock.
///
/// HDF5 builds are not reliably thread-safe, and the loader reads on its own thread: every call
/// through this layer holds `hdf5Lock()`. Errors become DataError naming the file and object.

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace gentrain::h5 {

std::recursive_mutex& hdf5Lock();

/// Owns one hid_t and closes it with the right H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

/// Opens an existing file read-only; DataError if it is missing or not HDF5.
Handle openFile(const std::string& path);
/// Creates (truncating) a file for writing.
Handle createFile(const std::string& path);
bool exists(hid_t parent, const std::string& name);
/// Names of the links directly under a group, sorted.
std::vector<std::string> children(hid_t group);
std::vector<hsize_t> dims(hid_t dataset);

void writeStringAttribute(hid_t object, const std::string& name, const std::string& value);
void writeStringListAttribute(hid_t object, const std::string& name,
                              const std::vector<std::string>& values);
void writeIntAttribute(hid_t object, const std::string& name, int64_t value);
/// Reads a string attribute (variable- or fixed-length, as h5py may write); "" if absent.
std::string readStringAttribute(hid_t object, const std::string& name);
std::vector<std::string> readStringListAttribute(hid_t object, const std::string& name);
/// Reads an integer attribute; `fallback` if absent.
int64_t readIntAttribute(hid_t object, const std::string& name, int64_t fallback);

}  // namespace gentrain::h5
