#include "framework/tracking/EventFile.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "framework/base/Error.h"
#include "framework/base/System.h"
#include "gentrain_summary.pb.h"

namespace gentrain {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::array<uint32_t, 256> makeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected
    table[i] = c;
  }
  return table;
}

void putLittle64(char* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

void putLittle32(char* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t getLittle(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t(uint8_t(in[i])) << (8 * i);
  return value;
}

/// An event at `step` holding one summary value tagged `tag`; returns that value.
tb::Summary::Value* summaryValue(tb::Event& event, int64_t step, const std::string& tag) {
  event.set_wall_time(now());
  event.set_step(step);
  tb::Summary::Value* value = event.mutable_summary()->add_value();
  value->set_tag(tag);
  return value;
}

/// Times the enclosing scope into `seconds`.
struct Timed {
  double& seconds;
  double start = monotonicSeconds();
  ~Timed() { seconds += monotonicSeconds() - start; }
};

}  // namespace

uint32_t crc32c(const char* data, std::size_t size) {
  static const std::array<uint32_t, 256> table = makeTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ uint8_t(data[i])) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t maskedCrc32c(const char* data, std::size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  Timed timed{seconds_};
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now())) + "." +
          hostName() + "." + std::to_string(::getpid());
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) {
    throw Error(path_ +
                ": cannot create the TensorBoard event file (is the run directory "
                "writable?); set log.tensorboard=false to train without it");
  }
  tb::Event event;
  event.set_wall_time(now());
  event.set_file_version("brain.Event:2");
  writeRecord(event.SerializeAsString());
  flush();
}

EventWriter::~EventWriter() {
  if (out_.is_open()) out_.flush();
}

void EventWriter::writeRecord(const std::string& payload) {
  char header[12];
  putLittle64(header, payload.size());
  putLittle32(header + 8, maskedCrc32c(header, 8));
  char footer[4];
  putLittle32(footer, maskedCrc32c(payload.data(), payload.size()));
  out_.write(header, sizeof(header));
  out_.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  out_.write(footer, sizeof(footer));
  ++records_;
}

void EventWriter::scalars(int64_t step, const std::string& prefix,
                          const std::map<std::string, double>& values) {
  Timed timed{seconds_};
  tb::Event event;
  event.set_wall_time(now());
  event.set_step(step);
  for (const auto& [name, value] : values) {
    tb::Summary::Value* entry = event.mutable_summary()->add_value();
    entry->set_tag(prefix.empty() ? name : prefix + "/" + name);
    entry->set_simple_value(static_cast<float>(value));
  }
  writeRecord(event.SerializeAsString());
  flush();
}

void EventWriter::image(int64_t step, const std::string& tag, const std::string& png, int height,
                        int width, int channels) {
  Timed timed{seconds_};
  tb::Event event;
  tb::Summary::Image* image = summaryValue(event, step, tag)->mutable_image();
  image->set_height(height);
  image->set_width(width);
  image->set_colorspace(channels);
  image->set_encoded_image_string(png);
  writeRecord(event.SerializeAsString());
  flush();
}

void EventWriter::text(int64_t step, const std::string& tag, const std::string& markdown) {
  Timed timed{seconds_};
  tb::Event event;
  tb::Summary::Value* entry = summaryValue(event, step, tag);
  entry->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  tb::TensorProto* tensor = entry->mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape()->add_dim()->set_size(1);
  tensor->add_string_val(markdown);
  writeRecord(event.SerializeAsString());
  flush();
}

void EventWriter::flush() { out_.flush(); }

std::vector<std::string> readEventRecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the event file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const auto where = [&](const std::string& what) {
      return DataError(path + ": " + what + " at byte " + std::to_string(at));
    };
    if (bytes.size() - at < 12) throw where("truncated record header");
    const uint64_t length = getLittle(bytes.data() + at, 8);
    if (getLittle(bytes.data() + at + 8, 4) != maskedCrc32c(bytes.data() + at, 8)) {
      throw where("bad length checksum");
    }
    if (bytes.size() - at - 12 < length + 4) throw where("truncated record");
    const char* payload = bytes.data() + at + 12;
    if (getLittle(payload + length, 4) != maskedCrc32c(payload, length)) {
      throw where("bad payload checksum");
    }
    records.emplace_back(payload, length);
    at += 12 + length + 4;
  }
  return records;
}

bool pngSize(const std::string& png, int& width, int& height, int& channels) {
  static const char kSignature[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  if (png.size() < 26 || std::memcmp(png.data(), kSignature, 8) != 0 ||
      png.compare(12, 4, "IHDR") != 0) {
    return false;
  }
  const auto big = [&](std::size_t at) {
    return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
           (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
  };
  width = static_cast<int>(big(16));
  height = static_cast<int>(big(20));
  switch (uint8_t(png[25])) {  // colour type
    case 0:
      channels = 1;
      break;
    case 4:
      channels = 2;
      break;
    case 2:
      channels = 3;
      break;
    case 6:
      channels = 4;
      break;
    default:
      channels = 3;
      break;
  }
  return true;
}

}  // namespace gentrain
