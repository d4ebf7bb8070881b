#include "framework/data/Synth.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"

namespace gentrain {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct SplitPlan {
  const char* name;
  int64_t count;
  uint64_t salt;
  bool sorted;
};

int64_t labelOf(const SynthOptions& o, const SplitPlan& split, int64_t k) {
  if (split.sorted) return k * o.classes / split.count;
  return static_cast<int64_t>(mix(o.seed ^ split.salt ^ (uint64_t(k) << 1)) % uint64_t(o.classes));
}

/// Image k of a split into `out` (channels x size x size).
void drawImage(const SynthOptions& o, const SplitPlan& split, int64_t k, int64_t label,
               uint8_t* out) {
  const int64_t s = o.size;
  uint64_t h = mix(o.seed ^ split.salt ^ (uint64_t(k) << 1 | 1));
  const auto next = [&h] { return h = mix(h); };
  // The label's colour: a hue around the circle, at full saturation.
  const double hue = 6.0 * double(label) / double(o.classes);
  const double base[3] = {std::clamp(std::fabs(hue - 3.0) - 1.0, 0.0, 1.0),
                          std::clamp(2.0 - std::fabs(hue - 2.0), 0.0, 1.0),
                          std::clamp(2.0 - std::fabs(hue - 4.0), 0.0, 1.0)};
  const double cx = double(next() % uint64_t(s)), cy = double(next() % uint64_t(s));
  const double radius = double(s) / 8 + double(next() % uint64_t(std::max<int64_t>(1, s / 4)));
  const uint64_t disc = next();
  for (int64_t c = 0; c < o.channels; ++c) {
    const double ground = o.channels == 1 ? 0.3 + 0.06 * double(label) : base[c];
    const double ink = double((disc >> (8 * c)) & 0xFF);
    uint8_t* plane = out + c * s * s;
    for (int64_t y = 0; y < s; ++y) {
      const double shade = 40.0 + 160.0 * ground * (0.6 + 0.4 * double(y) / double(s));
      uint64_t noise = next();
      for (int64_t x = 0; x < s; ++x) {
        if ((x & 15) == 0 && x > 0) noise = next();
        const double dx = double(x) - cx, dy = double(y) - cy;
        const double value = dx * dx + dy * dy < radius * radius ? ink : shade;
        const int jitter = int((noise >> (4 * (x & 15))) & 15) - 8;
        plane[y * s + x] = uint8_t(std::clamp(int(value) + jitter, 0, 255));
      }
    }
  }
}

void writeSplit(ImageFileWriter& writer, const SynthOptions& o, const SplitPlan& split, int threads,
                ProgressLog& progress, int64_t& done) {
  writer.beginSplit(split.name, o.channels, o.size, o.size, true);
  const int64_t imageBytes = o.channels * o.size * o.size;
  const int64_t block = std::max<int64_t>(64, (int64_t(16) << 20) / imageBytes);
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (int64_t first = 0; first < split.count; first += block) {
    const int64_t count = std::min(block, split.count - first);
    pixels.resize(static_cast<std::size_t>(count * imageBytes));
    labels.resize(static_cast<std::size_t>(count));
    std::vector<std::thread> team;
    for (int t = 0; t < threads; ++t) {
      team.emplace_back([&, t] {
        for (int64_t k = t; k < count; k += threads) {
          labels[k] = labelOf(o, split, first + k);
          drawImage(o, split, first + k, labels[k], pixels.data() + k * imageBytes);
        }
      });
    }
    for (std::thread& thread : team) thread.join();
    writer.append(pixels.data(), count, labels.data());
    done += count;
    progress.update(done);
  }
}

}  // namespace

std::string synthesize(const SynthOptions& options) {
  SynthOptions o = options;
  if (o.images < 1) throw UsageError("--images must be at least 1");
  if (o.size < 1 || o.size > 4096) throw UsageError("--size must be 1..4096");
  if (o.channels != 1 && o.channels != 3) throw UsageError("--channels must be 1 or 3");
  if (o.classes < 1 || o.classes > 100000) throw UsageError("--classes must be 1..100000");
  if (o.writer.chunkBytes < 1) throw UsageError("--chunk-kb must be at least 1");
  if (o.testImages < 0)
    o.testImages = std::min<int64_t>(10000, std::max<int64_t>(1, o.images / 10));
  const int threads = o.threads > 0
                          ? o.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ImageFileWriter writer(o.out, o.overwrite, o.writer);
  writer.setFileAttribute("source",
                          std::string("gentrain data synth (seed ") + std::to_string(o.seed) + ")");
  ProgressLog progress("data synth", o.images + o.testImages);
  int64_t done = 0;
  writeSplit(writer, o, {"train", o.images, 0x7472616eull, o.sortedByLabel}, threads, progress,
             done);
  if (o.testImages > 0) {
    writeSplit(writer, o, {"test", o.testImages, 0x74657374ull, false}, threads, progress, done);
  }
  writer.commit();
  const double megabytes = double((o.images + o.testImages) * o.channels * o.size * o.size) / 1e6;
  char line[300];
  std::snprintf(line, sizeof(line),
                "wrote %s (train %lld%s, test %lld; %lldx%lldx%lld, %lld classes; %.0f MB of "
                "images%s)",
                o.out.c_str(), static_cast<long long>(o.images),
                o.sortedByLabel ? " sorted by label" : "", static_cast<long long>(o.testImages),
                static_cast<long long>(o.channels), static_cast<long long>(o.size),
                static_cast<long long>(o.size), static_cast<long long>(o.classes), megabytes,
                o.writer.compress ? ", deflated" : ", uncompressed");
  return line;
}

}  // namespace gentrain
