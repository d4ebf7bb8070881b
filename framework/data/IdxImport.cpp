#include "framework/data/IdxImport.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <filesystem>
#include <memory>
#include <numeric>

#include "framework/base/Error.h"
#include "framework/data/ImageFile.h"
#include "framework/random/CounterRng.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

// Fashion-MNIST and MNIST name their files the same way; some mirrors use a dot, some gzip.
std::string findIdx(const std::string& dir, const std::string& stem, const std::string& kind) {
  std::string dotted = kind;
  dotted[dotted.find('-')] = '.';  // "images-idx3-ubyte" -> "images.idx3-ubyte"
  for (const std::string& name : {stem + "-" + kind, stem + "-" + kind + ".gz", stem + "-" + dotted,
                                  stem + "-" + dotted + ".gz"}) {
    const fs::path candidate = fs::path(dir) / name;
    if (fs::exists(candidate)) return candidate.string();
  }
  throw DataError(dir + ": no " + stem + "-" + kind +
                  "[.gz]; point --dir at a folder with the "
                  "four MNIST-style IDX files (Fashion-MNIST: /usr/share/datasets/fashion-mnist)");
}

uint32_t bigEndian(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

IdxArray readIdx(const std::string& path) {
  // Read in steps, never more than the header promises (+1 to notice padding): a damaged or
  // hostile header must not make us inflate a gzip stream without bound.
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw DataError(path + ": cannot open the IDX file");
  const auto read = [&](uint8_t* into, std::size_t count) {
    std::size_t done = 0;
    while (done < count) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(count - done, 1u << 20));
      const int got = gzread(file.get(), into + done, chunk);
      if (got < 0) {
        throw DataError(path + ": the file is damaged (gzip read error); download it again");
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  };
  uint8_t header[4 + 4 * 4];
  if (read(header, 4) < 4 || header[0] != 0 || header[1] != 0 || header[2] != 0x08) {
    throw DataError(path + ": not an unsigned-byte IDX file (bad magic number)");
  }
  const int rank = header[3];
  if (rank < 1 || rank > 4 || read(header + 4, 4 * std::size_t(rank)) < 4 * std::size_t(rank)) {
    throw DataError(path + ": IDX header is truncated or has " + std::to_string(rank) +
                    " dimensions");
  }
  IdxArray array;
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;
  uint64_t expected = 1;
  for (int d = 0; d < rank; ++d) {
    const uint64_t dim = static_cast<uint64_t>(bigEndian(&header[4 + 4 * d]));
    array.dims.push_back(static_cast<int64_t>(dim));
    if (dim != 0 && expected > kMaxBytes / dim) {
      throw DataError(path +
                      ": the IDX header's dimensions promise more than 2^40 bytes; the "
                      "file is damaged or not IDX");
    }
    expected *= dim;
  }
  // Grown as data arrives: memory follows the file, not what its header claims.
  uint64_t have = 0;
  while (have < expected) {
    const std::size_t step = static_cast<std::size_t>(std::min<uint64_t>(expected - have, 1 << 24));
    array.data.resize(static_cast<std::size_t>(have) + step);
    const std::size_t got = read(array.data.data() + have, step);
    have += got;
    if (got < step) break;
  }
  if (have == expected) {  // count what follows, if anything
    uint8_t rest[1 << 12];
    for (std::size_t got; (got = read(rest, sizeof(rest))) > 0;) have += got;
  }
  if (have != expected) {
    throw DataError(path + ": truncated or padded: the header promises " +
                    std::to_string(expected) + " bytes of data but " + std::to_string(have) +
                    " follow");
  }
  return array;
}

Binarization Binarization::parse(const std::string& text) {
  Binarization how;
  const auto colon = text.find(':');
  how.mode = text.substr(0, colon);
  const std::string argument = colon == std::string::npos ? "" : text.substr(colon + 1);
  try {
    if (how.mode == "none" && argument.empty()) return how;
    if (how.mode == "threshold") {
      how.threshold = argument.empty() ? 128 : std::stoi(argument);
      if (how.threshold >= 1 && how.threshold <= 255) return how;
    } else if (how.mode == "stochastic" && !argument.empty()) {
      how.seed = std::stoull(argument);
      return how;
    }
  } catch (const std::exception&) {
  }
  throw UsageError("--binarize '" + text + "': use none, threshold:T (1..255) or stochastic:SEED");
}

std::string Binarization::describe() const {
  if (mode == "threshold") return "threshold:" + std::to_string(threshold);
  if (mode == "stochastic") return "stochastic:" + std::to_string(seed);
  return "none";
}

void binarize(const Binarization& how, uint8_t* images, int64_t count, int64_t imageBytes,
              int64_t firstIndex, uint32_t splitId) {
  if (how.mode == "threshold") {
    for (int64_t i = 0; i < count * imageBytes; ++i)
      images[i] = images[i] >= how.threshold ? 255 : 0;
  } else if (how.mode == "stochastic") {
    const at::Tensor u = counterUniform({how.seed, splitId, 0}, firstIndex, count, {imageBytes});
    const float* draws = u.data_ptr<float>();
    for (int64_t i = 0; i < count * imageBytes; ++i) {
      images[i] = draws[i] * 255.0f < images[i] ? 255 : 0;
    }
  }
}

std::string importIdx(const IdxImportOptions& options) {
  ImageFileWriter writer(options.out, options.overwrite);
  writer.setFileAttribute("source", "idx:" + fs::absolute(options.dir).string());
  writer.setFileAttribute("binarize", options.binarization.describe());
  if (!options.labelNames.empty()) writer.setFileAttribute("label_names", options.labelNames);
  std::string summary;
  uint32_t splitId = 0;
  for (const auto& [split, stem] : {std::pair{"train", "train"}, std::pair{"test", "t10k"}}) {
    const std::string imagesPath = findIdx(options.dir, stem, "images-idx3-ubyte");
    const std::string labelsPath = findIdx(options.dir, stem, "labels-idx1-ubyte");
    IdxArray images = readIdx(imagesPath);
    const IdxArray labels = readIdx(labelsPath);
    if (images.dims.size() != 3) {
      throw DataError(imagesPath + ": expected [N, H, W] images, got " +
                      std::to_string(images.dims.size()) + " dimensions");
    }
    if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0]) {
      throw DataError(labelsPath + ": expected " + std::to_string(images.dims[0]) +
                      " labels to match " + imagesPath);
    }
    const int64_t n = images.dims[0], h = images.dims[1], w = images.dims[2];
    binarize(options.binarization, images.data.data(), n, h * w, 0, splitId++);
    std::vector<int64_t> labelValues(labels.data.begin(), labels.data.end());
    writer.beginSplit(split, 1, h, w, true);
    writer.append(images.data.data(), n, labelValues.data());
    summary += (summary.empty() ? "" : ", ") + std::string(split) + " " + std::to_string(n);
  }
  writer.commit();
  return "wrote " + options.out + " (" + summary + " images of 1 channel, binarize " +
         options.binarization.describe() + ")";
}

std::string binarizeFile(const std::string& in, const std::string& out, bool overwrite,
                         const Binarization& how) {
  if (fs::exists(out) && fs::equivalent(in, out)) {
    throw UsageError(out + " is the input file; write the binarized copy to another name");
  }
  h5::Handle source = h5::openFile(in);
  ImageFileWriter writer(out, overwrite);
  writer.setFileAttribute("source", "binarized:" + fs::absolute(in).string());
  writer.setFileAttribute("binarize", how.describe());
  const std::vector<std::string> names = h5::readStringListAttribute(source.id(), "label_names");
  if (!names.empty()) writer.setFileAttribute("label_names", names);
  uint32_t splitId = 0;
  for (const std::string& split : h5::children(source.id())) {
    ImageDataset data(in, split, 0);
    writer.beginSplit(split, data.channels(), data.height(), data.width(), data.hasLabels(),
                      data.attributeNames());
    data.forEachBlock(1024, [&](int64_t first, int64_t count, const uint8_t* pixels) {
      std::vector<uint8_t> images(pixels, pixels + count * data.imageBytes());
      binarize(how, images.data(), count, data.imageBytes(), first, splitId);
      const int64_t* labels = data.hasLabels() ? data.labels().data() + first : nullptr;
      const uint8_t* attributes =
          data.attributeNames().empty()
              ? nullptr
              : data.attributes().data() + first * int64_t(data.attributeNames().size());
      writer.append(images.data(), count, labels, attributes);
    });
    ++splitId;
  }
  writer.commit();
  return "wrote " + out + " (binarize " + how.describe() + ")";
}

}  // namespace gentrain
