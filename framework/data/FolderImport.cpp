#include "framework/data/FolderImport.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"
#include "framework/base/ParallelFor.h"
#include "framework/base/ProgressLog.h"
#include "framework/base/System.h"
#include "framework/data/ImageCodec.h"
#include "framework/data/ImageFile.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

/// An attribute table's file column holds file names (CelebA's list_attr_celeba.txt) or, when
/// any row has a '/', paths relative to the folder; a table of paths is the index of the
/// dataset: exactly the images it lists are imported (as with --only-listed).
struct AttributeTable {
  std::vector<std::string> names;
  std::map<std::string, std::vector<uint8_t>> rows;  // file name or path -> 0/1 values
  bool byPath = false;
  /// The row key of image `file` in folder `dir`.
  std::string key(const fs::path& file, const fs::path& dir) const {
    return byPath ? file.lexically_relative(dir).generic_string() : file.filename().string();
  }
};

std::vector<std::string> splitFields(const std::string& line, char separator) {
  std::vector<std::string> fields;
  if (separator == ' ') {
    std::istringstream in(line);
    for (std::string field; in >> field;) fields.push_back(field);
  } else {
    std::stringstream in(line);
    for (std::string field; std::getline(in, field, separator);) {
      while (!field.empty() && (field.back() == '\r' || field.back() == ' ')) field.pop_back();
      fields.push_back(field);
    }
  }
  return fields;
}

AttributeTable readAttributes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": attribute table missing or unreadable");
  AttributeTable table;
  const bool csv = fs::path(path).extension() == ".csv";
  std::string line;
  int lineNumber = 0;
  if (!csv) {  // CelebA: a count line, a names line, then "file v1 v2 ..."
    std::getline(in, line);
    ++lineNumber;
  }
  if (!std::getline(in, line)) throw DataError(path + ": no header line of attribute names");
  ++lineNumber;
  table.names = splitFields(line, csv ? ',' : ' ');
  if (csv && !table.names.empty()) table.names.erase(table.names.begin());  // the "file" column
  while (std::getline(in, line)) {
    ++lineNumber;
    const std::vector<std::string> fields = splitFields(line, csv ? ',' : ' ');
    if (fields.empty()) continue;
    if (fields.size() != table.names.size() + 1) {
      throw DataError(path + ":" + std::to_string(lineNumber) + ": " +
                      std::to_string(fields.size() - 1) + " values for " +
                      std::to_string(table.names.size()) + " attributes");
    }
    std::vector<uint8_t> values;
    for (std::size_t j = 1; j < fields.size(); ++j) {
      if (fields[j] != "1" && fields[j] != "-1" && fields[j] != "0") {
        throw DataError(path + ":" + std::to_string(lineNumber) + ": value '" + fields[j] +
                        "' of " + table.names[j - 1] + " is not 1, 0 or -1");
      }
      values.push_back(fields[j] == "1" ? 1 : 0);
    }
    std::string name = fields[0];
    if (name.rfind("./", 0) == 0) name.erase(0, 2);
    table.byPath = table.byPath || name.find('/') != std::string::npos;
    if (!table.rows.emplace(name, std::move(values)).second) {
      throw DataError(path + ":" + std::to_string(lineNumber) + ": a second row for '" + name +
                      "'; give each image one row");
    }
  }
  return table;
}

/// CelebA's list_eval_partition.txt: "000001.jpg 0" a line; 0 train, 1 valid, 2 test.
std::map<std::string, std::string> readPartition(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": partition list missing or unreadable");
  std::map<std::string, std::string> splits;
  std::string line;
  for (int lineNumber = 1; std::getline(in, line); ++lineNumber) {
    const std::vector<std::string> fields =
        splitFields(line, line.find(',') != std::string::npos ? ',' : ' ');
    if (fields.empty()) continue;
    if (lineNumber == 1 && fields[0] == "image_id") continue;  // the CSV copies' header
    if (fields.size() != 2 || (fields[1] != "0" && fields[1] != "1" && fields[1] != "2")) {
      throw DataError(path + ":" + std::to_string(lineNumber) + ": '" + line +
                      "' is not 'file 0|1|2' (0 train, 1 valid, 2 test)");
    }
    static const char* names[] = {"train", "valid", "test"};
    if (!splits.emplace(fields[0], names[fields[1][0] - '0']).second) {
      throw DataError(path + ":" + std::to_string(lineNumber) + ": a second row for '" + fields[0] +
                      "'");
    }
  }
  if (splits.empty()) throw DataError(path + ": no rows");
  return splits;
}

std::vector<fs::path> imageFiles(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw DataError(dir.string() + ": not a folder");
  std::vector<fs::path> found;
  for (const std::string& file : files::listFilesRecursive(dir.string())) {
    std::string ext = fs::path(file).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") found.push_back(file);
  }
  std::sort(found.begin(), found.end());
  if (found.empty()) throw DataError(dir.string() + ": no .png, .jpg or .jpeg files");
  return found;
}

/// RGBA -> 3 x size x size: flatten onto the background, crop the centre square, scale it to
/// `size`. Plain loops for the common case (already the right size); tensors only to resize.
void toSquare(const DecodedImage& image, int64_t size, const std::array<uint8_t, 3>& bg,
              uint8_t* out) {
  const int64_t side = std::min(image.height, image.width);
  const int64_t top = (image.height - side) / 2, left = (image.width - side) / 2;
  std::vector<float> planes(static_cast<std::size_t>(3 * side * side));
  for (int64_t y = 0; y < side; ++y) {
    for (int64_t x = 0; x < side; ++x) {
      const uint8_t* p = &image.pixels[((top + y) * image.width + left + x) * 4];
      const float alpha = p[3] / 255.0f;
      for (int c = 0; c < 3; ++c) {
        planes[(c * side + y) * side + x] = p[c] * alpha + bg[c] * (1.0f - alpha);
      }
    }
  }
  at::Tensor rgb = at::from_blob(planes.data(), {1, 3, side, side}, at::kFloat);
  if (side > size) {
    rgb = at::adaptive_avg_pool2d(rgb, {size, size});  // area averaging
  } else if (side < size) {
    rgb = at::upsample_bilinear2d(rgb, {size, size}, false);
  }
  rgb = rgb.contiguous();
  const float* values = rgb.data_ptr<float>();
  for (int64_t i = 0; i < 3 * size * size; ++i) {
    out[i] = static_cast<uint8_t>(std::clamp(std::lround(values[i]), 0L, 255L));
  }
}

}  // namespace

std::array<uint8_t, 3> parseColour(const std::string& text) {
  std::array<uint8_t, 3> colour{};
  const std::vector<std::string> fields = splitFields(text, ',');
  bool ok = fields.size() == 3;
  for (std::size_t c = 0; ok && c < 3; ++c) {
    try {
      const int v = std::stoi(fields[c]);
      ok = v >= 0 && v <= 255;
      colour[c] = static_cast<uint8_t>(v);
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok) throw UsageError("--background '" + text + "': give R,G,B with values 0..255");
  return colour;
}

namespace {

/// Every row of the table names an image of the folder, and every image has a row.
void checkAttributeTable(const AttributeTable& table, const std::vector<fs::path>& files,
                         const FolderImportOptions& options, bool onlyListed) {
  std::map<std::string, const fs::path*> present;
  for (const fs::path& f : files) {
    const auto [at, added] = present.emplace(table.key(f, options.dir), &f);
    if (!added && table.rows.count(at->first)) {
      throw DataError(options.attributes + ": row '" + at->first + "' could be " +
                      at->second->string() + " or " + f.string() +
                      "; name the images by their path in the folder (sub/name.png)");
    }
  }
  for (const auto& [name, values] : table.rows) {
    if (!present.count(name)) {
      throw DataError(options.attributes + ": row for '" + name +
                      "', which is not an image "
                      "in " +
                      options.dir + "; remove the row or add the file");
    }
  }
  if (onlyListed) return;
  for (const fs::path& f : files) {
    if (!table.rows.count(table.key(f, options.dir))) {
      throw DataError(f.string() + ": no row in " + options.attributes +
                      " (--only-listed imports just the images the table lists)");
    }
  }
}

/// The first-level sub-folder of `file` under `dir`; "" when it lies in `dir` itself. The
/// listing spells every file as dir + "/" + its path below, so this is string work: fs::relative
/// resolved both paths on disk for every file, a dozen syscalls each.
std::string firstFolder(const fs::path& file, const fs::path& dir) {
  const std::string path = file.string(), base = dir.string() + "/";
  const std::string below = path.rfind(base, 0) == 0 ? path.substr(base.size())
                                                     : fs::relative(file, dir).generic_string();
  const std::size_t slash = below.find('/');
  return slash == std::string::npos ? std::string() : below.substr(0, slash);
}

/// Class indices by first-level sub-folder name, in sorted order.
std::map<std::string, int64_t> folderClasses(const std::vector<fs::path>& files,
                                             const fs::path& dir) {
  std::map<std::string, int64_t> classes;
  for (const fs::path& f : files) {
    const std::string folder = firstFolder(f, dir);
    if (folder.empty()) {
      throw DataError(f.string() +
                      ": not in a sub-folder, so it has no label (labels come "
                      "from sub-folder names)");
    }
    classes.emplace(folder, 0);
  }
  int64_t next = 0;
  for (auto& [name, index] : classes) index = next++;
  return classes;
}

/// Decodes and resizes `files` on all cores into `decoded` (one image after the other); errors
/// are kept per file, in file order, so the outcome does not depend on the thread count.
std::vector<std::string> decodeBlock(const std::vector<fs::path>& files,
                                     const FolderImportOptions& options,
                                     std::vector<uint8_t>& decoded) {
  const int64_t imageBytes = 3 * options.size * options.size;
  const int64_t n = static_cast<int64_t>(files.size());
  decoded.assign(static_cast<std::size_t>(n * imageBytes), 0);
  std::vector<std::string> errors(files.size());
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      try {
        toSquare(decodeImage(files[k].string(), options.maxPixels), options.size,
                 options.background, decoded.data() + k * imageBytes);
      } catch (const DataError& e) {
        errors[k] = e.what();
      }
    }
  });
  return errors;
}

/// "in 2.1 s, 3810 images/s": the import's own throughput (launch/bench/import-folder.sh reads
/// it; the process start, ~0.5 s of loading LibTorch, is not the importer's).
std::string rateOf(int64_t images, double seconds) {
  char text[80];
  std::snprintf(text, sizeof(text), "in %.2f s, %.0f images/s", seconds,
                double(images) / std::max(seconds, 1e-9));
  return text;
}

/// What the import knows of the folder: its files, attribute table and classes.
struct FolderContents {
  std::vector<fs::path> files;
  AttributeTable table;
  std::map<std::string, int64_t> classes;
};

/// Writes one split's images (with labels and attributes) in blocks; returns images written,
/// adds unreadable files skipped to `skipped`.
int64_t writeSplit(ImageFileWriter& writer, const std::string& split,
                   const std::vector<fs::path>& mine, const FolderContents& folder,
                   const FolderImportOptions& options, int64_t& skipped, ProgressLog& progress,
                   int64_t& done) {
  const int64_t imageBytes = 3 * options.size * options.size;
  writer.beginSplit(split, 3, options.size, options.size, options.labelsFromFolders,
                    folder.table.names);
  constexpr std::size_t kBlock = 256;
  int64_t written = 0;
  for (std::size_t first = 0; first < mine.size(); first += kBlock) {
    const std::vector<fs::path> block(mine.begin() + first,
                                      mine.begin() + std::min(mine.size(), first + kBlock));
    std::vector<uint8_t> decoded;
    const std::vector<std::string> errors = decodeBlock(block, options, decoded);
    std::vector<uint8_t> images, attributes;
    std::vector<int64_t> labels;
    for (std::size_t k = 0; k < block.size(); ++k) {
      if (!errors[k].empty()) {
        if (!options.skipBad) throw DataError(errors[k] + " (pass --skip-bad to skip such files)");
        log::warn("skipped " + errors[k]);
        ++skipped;
        continue;
      }
      images.insert(images.end(), decoded.begin() + k * imageBytes,
                    decoded.begin() + (k + 1) * imageBytes);
      if (options.labelsFromFolders) {
        labels.push_back(folder.classes.at(firstFolder(block[k], options.dir)));
      }
      if (!folder.table.names.empty()) {
        const auto& row = folder.table.rows.at(folder.table.key(block[k], options.dir));
        attributes.insert(attributes.end(), row.begin(), row.end());
      }
    }
    const int64_t count = static_cast<int64_t>(images.size()) / imageBytes;
    writer.append(images.data(), count, labels.empty() ? nullptr : labels.data(),
                  attributes.empty() ? nullptr : attributes.data());
    written += count;
    done += static_cast<int64_t>(block.size());
    progress.update(done);
  }
  return written;
}

}  // namespace

std::string importFolder(const FolderImportOptions& options) {
  const double start = monotonicSeconds();
  if (options.size < 1) throw UsageError("--size must be at least 1");
  const fs::path dir(options.dir);
  FolderContents folder;
  folder.files = imageFiles(dir);
  if (options.onlyListed && options.attributes.empty()) {
    throw UsageError("--only-listed keeps the images an --attributes table lists: give one");
  }
  if (!options.attributes.empty()) folder.table = readAttributes(options.attributes);
  const bool onlyListed = options.onlyListed || folder.table.byPath;
  if (!options.attributes.empty()) {
    checkAttributeTable(folder.table, folder.files, options, onlyListed);
  }
  int64_t leftOut = 0;
  if (onlyListed) {
    std::vector<fs::path> listed;
    for (const fs::path& f : folder.files) {
      if (folder.table.rows.count(folder.table.key(f, options.dir))) listed.push_back(f);
    }
    leftOut = static_cast<int64_t>(folder.files.size() - listed.size());
    folder.files = std::move(listed);
  }
  if (options.labelsFromFolders) folder.classes = folderClasses(folder.files, dir);
  std::vector<std::string> labelNames;
  for (const auto& [name, index] : folder.classes) labelNames.push_back(name);

  if (!options.partition.empty() && options.testEvery > 0) {
    throw UsageError("--partition and --test-every both choose the splits: give one");
  }
  // The split of each file: every n-th to test, or the partition list's.
  std::map<std::string, std::vector<fs::path>> bySplit;
  if (options.partition.empty()) {
    for (int64_t k = 0; k < static_cast<int64_t>(folder.files.size()); ++k) {
      const bool test = options.testEvery > 0 && k % options.testEvery == options.testEvery - 1;
      bySplit[test ? "test" : "train"].push_back(folder.files[k]);
    }
  } else {
    const std::map<std::string, std::string> splits = readPartition(options.partition);
    std::map<std::string, const fs::path*> present;
    for (const fs::path& f : folder.files) present.emplace(f.filename().string(), &f);
    for (const auto& [name, split] : splits) {
      if (!present.count(name) && !onlyListed) {
        throw DataError(options.partition + ": row for '" + name + "', which is not an image in " +
                        options.dir + "; remove the row or add the file");
      }
    }
    for (const fs::path& f : folder.files) {
      const auto found = splits.find(f.filename().string());
      if (found == splits.end()) {
        throw DataError(f.string() + ": no row in " + options.partition +
                        " (every image needs its split)");
      }
      bySplit[found->second].push_back(f);
    }
  }

  ImageFileWriter writer(options.out, options.overwrite, options.writer);
  writer.setFileAttribute("source", "folder:" + fs::absolute(dir).string());
  writer.setFileAttribute("binarize", std::string("none"));
  if (!labelNames.empty()) writer.setFileAttribute("label_names", labelNames);
  int64_t skipped = 0, done = 0;
  ProgressLog progress("import-folder", static_cast<int64_t>(folder.files.size()));
  std::map<std::string, int64_t> splitCounts;
  for (const char* split : {"train", "valid", "test"}) {
    const std::vector<fs::path>& mine = bySplit[split];
    if (!mine.empty()) {
      splitCounts[split] =
          writeSplit(writer, split, mine, folder, options, skipped, progress, done);
    }
  }
  writer.commit();
  std::string summary = "wrote " + options.out + " (";
  for (const char* split : {"train", "valid", "test"}) {
    if (splitCounts.count(split))
      summary += split + (" " + std::to_string(splitCounts[split])) + ", ";
  }
  return summary + "3x" + std::to_string(options.size) + "x" + std::to_string(options.size) + ", " +
         std::to_string(labelNames.size()) + " labels, " +
         std::to_string(folder.table.names.size()) + " attributes; " + std::to_string(skipped) +
         " unreadable file(s) skipped" +
         (onlyListed ? ", " + std::to_string(leftOut) + " not in the table left out" : "") + ") " +
         rateOf(done, monotonicSeconds() - start);
}

std::string importCelebA(FolderImportOptions options) {
  const fs::path dir(options.dir);
  // The first of `candidates` (relative to the folder) that exists.
  const auto find = [&dir](std::initializer_list<const char*> candidates, bool folder) {
    for (const char* c : candidates) {
      const fs::path p = dir / c;
      if (folder ? fs::is_directory(p) : fs::is_regular_file(p)) return p.string();
    }
    std::string tried;
    for (const char* c : candidates) tried += (tried.empty() ? "" : ", ") + (dir / c).string();
    throw UsageError("CelebA: none of " + tried +
                     " exists; --dir must hold CelebA as distributed (Img/, Anno/, Eval/) or "
                     "those files side by side");
  };
  options.dir = find({"img_align_celeba", "Img/img_align_celeba"}, true);
  options.attributes = find({"list_attr_celeba.txt", "Anno/list_attr_celeba.txt"}, false);
  options.partition = find({"list_eval_partition.txt", "Eval/list_eval_partition.txt"}, false);
  return importFolder(options);
}

}  // namespace gentrain
