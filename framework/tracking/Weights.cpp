#include "framework/tracking/Weights.h"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <filesystem>
#include <iomanip>
#include <mutex>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/config/Spec.h"
#include "framework/data/Hdf5.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

/// FNV-1a over bytes: a digest of exactly what was written, so that two exports can be compared
/// bit for bit from their one-line summaries.
void mix(uint64_t& hash, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
}

void writeTensor(hid_t group, const std::string& name, const at::Tensor& value,
                 const std::string& file, uint64_t& digest) {
  at::Tensor t = value.detach().to(at::kCPU).contiguous();
  hid_t type = H5T_NATIVE_FLOAT;
  if (t.scalar_type() == at::kDouble) {
    type = H5T_NATIVE_DOUBLE;
  } else if (t.scalar_type() == at::kLong) {
    type = H5T_NATIVE_INT64;
  } else if (t.scalar_type() == at::kInt) {
    type = H5T_NATIVE_INT32;
  } else {
    t = t.to(at::kFloat);  // float32 as is; bf16/fp16/bool widened
  }
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  h5::Handle space(dims.empty()
                       ? H5Screate(H5S_SCALAR)
                       : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                   H5Sclose);
  h5::Handle dataset(
      H5Dcreate2(group, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  if (!dataset.valid() || (t.numel() > 0 && H5Dwrite(dataset.id(), type, H5S_ALL, H5S_ALL,
                                                     H5P_DEFAULT, t.data_ptr()) < 0)) {
    throw DataError(file + ": cannot write dataset '" + name + "' (disk full?)");
  }
  mix(digest, name.data(), name.size());
  mix(digest, t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
}

}  // namespace

std::string exportWeights(const WeightsToExport& weights, const std::string& path, bool overwrite) {
  if (fs::exists(path) && !overwrite) {
    throw UsageError(path + " exists; pass --force to replace it, or choose another --out");
  }
  const std::string partial = path + ".partial";
  int64_t tensors = 0, values = 0;
  uint64_t digest = 14695981039346656037ull;
  {
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5Lock());
    h5::Handle file = h5::createFile(partial);
    h5::writeStringAttribute(file.id(), "gentrain_format", "gentrain-weights");
    h5::writeStringAttribute(file.id(), "model", weights.spec.text("model.name"));
    h5::writeStringAttribute(file.id(), "spec", weights.spec.resolvedYaml());
    h5::writeIntAttribute(file.id(), "step", weights.step);
    for (const auto& [name, net] : weights.networks) {
      h5::Handle group(H5Gcreate2(file.id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       H5Gclose);
      if (!group.valid()) throw DataError(partial + ": cannot create group '" + name + "'");
      mix(digest, name.data(), name.size());
      for (const auto& item : net->named_parameters()) {
        writeTensor(group.id(), item.key(), item.value(), partial, digest);
        ++tensors;
        values += item.value().numel();
      }
      for (const auto& item : net->named_buffers()) {
        writeTensor(group.id(), item.key(), item.value(), partial, digest);
        ++tensors;
        values += item.value().numel();
      }
    }
  }
  std::error_code error;
  fs::rename(partial, path, error);
  if (error)
    throw DataError(path + ": cannot rename " + partial + " into place: " + error.message());
  std::ostringstream hex;
  hex << std::hex << std::setw(16) << std::setfill('0') << digest;
  return "wrote " + path + ": " + std::to_string(weights.networks.size()) + " network(s), " +
         std::to_string(tensors) + " tensors, " + std::to_string(values) + " values (step " +
         std::to_string(weights.step) + "), digest " + hex.str();
}

}  // namespace gentrain
