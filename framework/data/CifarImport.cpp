#include "framework/data/CifarImport.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "framework/base/Error.h"
#include "framework/data/ImageFile.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kPixels = 3 * 32 * 32;

struct Layout {
  int64_t labelBytes;  // bytes before the pixels
  int64_t labelAt;     // which of them is the label we keep
  std::vector<std::string> train, test;
  std::string names;
};

std::vector<std::string> readNames(const fs::path& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

/// Appends every record of `files` to the writer's current split, 1000 at a time.
int64_t appendRecords(ImageFileWriter& writer, const fs::path& dir,
                      const std::vector<std::string>& files, const Layout& layout) {
  const int64_t record = layout.labelBytes + kPixels;
  int64_t total = 0;
  for (const std::string& name : files) {
    const fs::path path = dir / name;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path.string() + ": missing or unreadable");
    const auto size = static_cast<int64_t>(fs::file_size(path));
    if (size == 0 || size % record != 0) {
      throw DataError(path.string() + ": " + std::to_string(size) +
                      " bytes is not a whole number "
                      "of " +
                      std::to_string(record) +
                      "-byte records; is it the right CIFAR "
                      "variant, and complete?");
    }
    constexpr int64_t kBlock = 1000;
    std::vector<char> raw(static_cast<std::size_t>(kBlock * record));
    std::vector<uint8_t> images(static_cast<std::size_t>(kBlock * kPixels));
    std::vector<int64_t> labels(kBlock);
    for (int64_t done = 0; done < size / record; done += kBlock) {
      const int64_t count = std::min(kBlock, size / record - done);
      in.read(raw.data(), count * record);
      if (!in) throw DataError(path.string() + ": read failed at record " + std::to_string(done));
      for (int64_t k = 0; k < count; ++k) {
        const char* r = raw.data() + k * record;
        labels[k] = static_cast<uint8_t>(r[layout.labelAt]);
        std::copy_n(r + layout.labelBytes, kPixels, images.begin() + k * kPixels);
      }
      writer.append(images.data(), count, labels.data());
    }
    total += size / record;
  }
  return total;
}

}  // namespace

std::string importCifar(const CifarImportOptions& options) {
  const fs::path dir(options.dir);
  Layout layout;
  std::string kind;
  if (fs::exists(dir / "data_batch_1.bin")) {
    kind = "cifar-10";
    layout = {1, 0, {}, {"test_batch.bin"}, "batches.meta.txt"};
    for (int k = 1; k <= 5; ++k) layout.train.push_back("data_batch_" + std::to_string(k) + ".bin");
  } else if (fs::exists(dir / "train.bin")) {
    kind = "cifar-100";
    layout = {2, 1, {"train.bin"}, {"test.bin"}, "fine_label_names.txt"};
  } else {
    throw DataError(options.dir +
                    ": neither CIFAR-10 (data_batch_1.bin ...) nor CIFAR-100 "
                    "(train.bin, test.bin) binary files; point --dir at the extracted folder");
  }
  ImageFileWriter writer(options.out, options.overwrite);
  writer.setFileAttribute("source", kind + ":" + fs::absolute(dir).string());
  writer.setFileAttribute("binarize", std::string("none"));
  const std::vector<std::string> names = readNames(dir / layout.names);
  if (!names.empty()) writer.setFileAttribute("label_names", names);
  writer.beginSplit("train", 3, 32, 32, true);
  const int64_t train = appendRecords(writer, dir, layout.train, layout);
  writer.beginSplit("test", 3, 32, 32, true);
  const int64_t test = appendRecords(writer, dir, layout.test, layout);
  writer.commit();
  return "wrote " + options.out + " (" + kind + ": train " + std::to_string(train) + ", test " +
         std::to_string(test) + " images of 3x32x32, " + std::to_string(names.size()) +
         " label names)";
}

}  // namespace gentrain
