#include "framework/tracking/Weights.h"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <mutex>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Hash.h"
#include "framework/config/Spec.h"
#include "framework/data/Hdf5.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

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
  fnv1aMix(digest, name.data(), name.size());
  fnv1aMix(digest, t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
}

}  // namespace

std::string exportWeights(const WeightsToExport& weights, const std::string& path, bool overwrite) {
  if (fs::exists(path) && !overwrite) {
    throw UsageError(path + " exists; pass --force to replace it, or choose another --out");
  }
  const std::string partial = path + ".partial";
  int64_t tensors = 0, values = 0;
  uint64_t digest = kFnv1aOffset;  // of exactly what was written: equal digests, equal bits
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
      fnv1aMix(digest, name.data(), name.size());
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

namespace {

h5::Handle openWeights(const std::string& path) {
  h5::Handle file = h5::openFile(path);
  if (h5::readStringAttribute(file.id(), "gentrain_format") != "gentrain-weights") {
    throw DataError(path +
                    ": not a weights file of `gentrain export` (no gentrain_format "
                    "attribute 'gentrain-weights')");
  }
  return file;
}

std::vector<double> readValues(hid_t parent, const std::string& name, std::vector<hsize_t>& shape) {
  h5::Handle dataset(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) return {};
  shape = h5::dims(dataset.id());
  hsize_t count = 1;
  for (hsize_t d : shape) count *= d;
  std::vector<double> values(count);
  if (count > 0 &&
      H5Dread(dataset.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    throw DataError("cannot read dataset '" + name + "'");
  }
  return values;
}

}  // namespace

WeightsDifference compareWeights(const std::string& a, const std::string& b) {
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5Lock());
  h5::Handle fa = openWeights(a), fb = openWeights(b);
  WeightsDifference out;
  for (const std::string& net : h5::children(fa.id())) {
    if (!h5::exists(fb.id(), net)) {
      out.mismatch = b + " has no network '" + net + "'";
      return out;
    }
    h5::Handle ga(H5Gopen2(fa.id(), net.c_str(), H5P_DEFAULT), H5Gclose);
    h5::Handle gb(H5Gopen2(fb.id(), net.c_str(), H5P_DEFAULT), H5Gclose);
    for (const std::string& name : h5::children(ga.id())) {
      const std::string where = net + "/" + name;
      if (!h5::exists(gb.id(), name)) {
        out.mismatch = b + " has no '" + where + "'";
        return out;
      }
      std::vector<hsize_t> sa, sb;
      const std::vector<double> va = readValues(ga.id(), name, sa);
      const std::vector<double> vb = readValues(gb.id(), name, sb);
      if (sa != sb) {
        out.mismatch = "'" + where + "' has different shapes in the two files";
        return out;
      }
      ++out.tensors;
      for (std::size_t i = 0; i < va.size(); ++i) {
        const double d = std::fabs(va[i] - vb[i]);
        if (d > out.largest || std::isnan(d)) {
          out.largest = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
          out.where = where;
        }
      }
    }
  }
  return out;
}

}  // namespace gentrain
