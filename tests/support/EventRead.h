#pragma once
// TensorBoard event records parsed into plain structs, for tests. Its own library, built without
// LibTorch's include paths (see gentrain_tensorboard in CMakeLists.txt), so that tests that also
// use LibTorch never include the generated protobuf header.

#include <cstdint>
#include <string>
#include <vector>

namespace gentrain::test {

struct EventValue {
  std::string tag;
  bool hasSimple = false;
  float simple = 0;
  bool hasImage = false;
  int64_t height = 0, width = 0;
  std::string encodedImage;
  std::string plugin;                      ///< metadata.plugin_data.plugin_name
  std::vector<std::string> tensorStrings;  ///< tensor.string_val
};

struct Event {
  double wallTime = 0;
  int64_t step = 0;
  std::string fileVersion;
  std::vector<EventValue> values;
};

/// The events of records (as readEventRecords returns them); throws std::runtime_error on a
/// record that is not an Event.
std::vector<Event> parseEvents(const std::vector<std::string>& records);

}  // namespace gentrain::test
