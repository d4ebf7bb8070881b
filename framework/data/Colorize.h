#pragma once
/// @file Colored MNIST-style datasets: every grey image gets a foreground and a background colour.
///
/// Pixel = background + (foreground - background) * grey / 255. The colours of image i are drawn
/// from the palettes with counter-based noise keyed by (seed, split, i), and stored as one-hot
/// attributes `fg_<name>` and `bg_<name>`: the domains StarGAN translates between.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gentrain {

/// The colour names the palettes may use, with their RGB values.
const std::map<std::string, std::array<uint8_t, 3>>& namedColors();

struct ColorizeOptions {
  std::string in;
  std::string out;
  bool overwrite = false;
  uint64_t seed = 0;
  std::vector<std::string> foreground{"red", "green", "blue", "yellow", "magenta"};
  std::vector<std::string> background{"black", "navy", "grey"};
  /// Output side: 0 keeps the input size; larger pads with the background colour (centred);
  /// a divisor of the input side averages blocks (area downsampling).
  int64_t size = 0;
};

/// Writes the coloured copy of every split of `in` and returns a one-line summary.
std::string colorize(const ColorizeOptions& options);

}  // namespace gentrain
