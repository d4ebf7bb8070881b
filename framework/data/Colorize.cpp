#include "framework/data/Colorize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <numeric>

#include "framework/base/Error.h"
#include "framework/data/ImageFile.h"
#include "framework/random/CounterRng.h"

namespace gentrain {

const std::map<std::string, std::array<uint8_t, 3>>& namedColors() {
  static const std::map<std::string, std::array<uint8_t, 3>> colors{
      {"red", {230, 25, 75}},     {"green", {60, 180, 75}},    {"blue", {0, 130, 200}},
      {"yellow", {255, 225, 25}}, {"orange", {245, 130, 48}},  {"purple", {145, 30, 180}},
      {"cyan", {70, 240, 240}},   {"magenta", {240, 50, 230}}, {"white", {255, 255, 255}},
      {"black", {0, 0, 0}},       {"grey", {128, 128, 128}},   {"navy", {0, 0, 128}},
      {"olive", {128, 128, 0}},   {"teal", {0, 128, 128}},     {"maroon", {128, 0, 0}}};
  return colors;
}

namespace {

std::vector<std::array<uint8_t, 3>> palette(const std::vector<std::string>& names,
                                            const char* flag) {
  if (names.empty()) throw UsageError(std::string(flag) + " needs at least one colour");
  std::vector<std::array<uint8_t, 3>> out;
  for (const std::string& name : names) {
    auto it = namedColors().find(name);
    if (it == namedColors().end()) {
      std::string known;
      for (const auto& [n, rgb] : namedColors()) known += (known.empty() ? "" : ", ") + n;
      throw UsageError(std::string(flag) + ": unknown colour '" + name + "'; use: " + known);
    }
    out.push_back(it->second);
  }
  return out;
}

/// One grey image [h, w] -> RGB planes [3, side, side] in `out`.
void paint(const uint8_t* grey, int64_t h, int64_t w, int64_t side,
           const std::array<uint8_t, 3>& fg, const std::array<uint8_t, 3>& bg, uint8_t* out) {
  const int64_t factor = side < h ? h / side : 1;
  const int64_t padTop = side > h ? (side - h) / 2 : 0, padLeft = side > w ? (side - w) / 2 : 0;
  for (int c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < side; ++y) {
      for (int64_t x = 0; x < side; ++x) {
        double value = 0;  // mean grey over the source footprint, in [0, 1]
        const int64_t sy = y - padTop, sx = x - padLeft;
        if (side >= h) {
          if (sy >= 0 && sy < h && sx >= 0 && sx < w) value = grey[sy * w + sx] / 255.0;
        } else {
          for (int64_t dy = 0; dy < factor; ++dy) {
            for (int64_t dx = 0; dx < factor; ++dx)
              value += grey[(y * factor + dy) * w + x * factor + dx];
          }
          value /= 255.0 * double(factor * factor);
        }
        out[(c * side + y) * side + x] =
            static_cast<uint8_t>(std::lround(bg[c] + (double(fg[c]) - bg[c]) * value));
      }
    }
  }
}

}  // namespace

std::string colorize(const ColorizeOptions& options) {
  const auto fg = palette(options.foreground, "--fg");
  const auto bg = palette(options.background, "--bg");
  h5::Handle source = h5::openFile(options.in);
  const std::vector<std::string> splits = h5::children(source.id());
  ImageFileWriter writer(options.out, options.overwrite);
  writer.setFileAttribute("source",
                          "colorized:" + options.in + " seed " + std::to_string(options.seed));
  writer.setFileAttribute("binarize", std::string("none"));
  const auto labelNames = h5::readStringListAttribute(source.id(), "label_names");
  if (!labelNames.empty()) writer.setFileAttribute("label_names", labelNames);
  std::vector<std::string> attributeNames;
  for (const auto& n : options.foreground) attributeNames.push_back("fg_" + n);
  for (const auto& n : options.background) attributeNames.push_back("bg_" + n);
  const int64_t a = static_cast<int64_t>(attributeNames.size());

  int64_t total = 0;
  for (std::size_t s = 0; s < splits.size(); ++s) {
    ImageDataset data(options.in, splits[s], 0);
    if (data.channels() != 1) {
      throw DataError(options.in + ":/" + splits[s] + " has " + std::to_string(data.channels()) +
                      " channels; colorize takes grey (1-channel) images");
    }
    const int64_t h = data.height(), w = data.width();
    const int64_t side = options.size > 0 ? options.size : h;
    if (h != w || (side < h && h % side != 0)) {
      throw UsageError("--size " + std::to_string(side) + " for " + std::to_string(h) + "x" +
                       std::to_string(w) +
                       " images: give square images and a size that is at "
                       "least the side (padding) or divides it (area downsampling)");
    }
    writer.beginSplit(splits[s], 3, side, side, data.hasLabels(), attributeNames);
    data.forEachBlock(1024, [&](int64_t first, int64_t count, const uint8_t* grey) {
      const uint32_t stream = static_cast<uint32_t>(2 * s);
      const at::Tensor pickFg = counterUniform({options.seed, stream, 0}, first, count, {1});
      const at::Tensor pickBg = counterUniform({options.seed, stream + 1, 0}, first, count, {1});
      std::vector<uint8_t> rgb(static_cast<std::size_t>(count * 3 * side * side));
      std::vector<uint8_t> attributes(static_cast<std::size_t>(count * a), 0);
      const float* uf = pickFg.data_ptr<float>();
      const float* ub = pickBg.data_ptr<float>();
      for (int64_t k = 0; k < count; ++k) {
        const auto f = std::min(fg.size() - 1, static_cast<std::size_t>(uf[k] * fg.size()));
        const auto b = std::min(bg.size() - 1, static_cast<std::size_t>(ub[k] * bg.size()));
        paint(grey + k * h * w, h, w, side, fg[f], bg[b], rgb.data() + k * 3 * side * side);
        attributes[k * a + f] = 1;
        attributes[k * a + fg.size() + b] = 1;
      }
      writer.append(rgb.data(), count, data.hasLabels() ? data.labels().data() + first : nullptr,
                    attributes.data());
    });
    total += data.size();
  }
  writer.commit();
  return "wrote " + options.out + " (" + std::to_string(total) + " images coloured with " +
         std::to_string(fg.size()) + " foreground and " + std::to_string(bg.size()) +
         " background colours)";
}

}  // namespace gentrain
