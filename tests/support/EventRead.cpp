#include "EventRead.h"

#include <stdexcept>

#include "gentrain_summary.pb.h"

namespace gentrain::test {

std::vector<Event> parseEvents(const std::vector<std::string>& records) {
  std::vector<Event> out;
  for (const std::string& record : records) {
    tb::Event parsed;
    if (!parsed.ParseFromString(record)) throw std::runtime_error("not a TensorBoard Event");
    Event event;
    event.wallTime = parsed.wall_time();
    event.step = parsed.step();
    event.fileVersion = parsed.file_version();
    for (const auto& v : parsed.summary().value()) {
      EventValue value;
      value.tag = v.tag();
      value.hasSimple = v.has_simple_value();
      value.simple = v.simple_value();
      value.hasImage = v.has_image();
      value.height = v.image().height();
      value.width = v.image().width();
      value.encodedImage = v.image().encoded_image_string();
      value.plugin = v.metadata().plugin_data().plugin_name();
      for (const auto& text : v.tensor().string_val()) value.tensorStrings.push_back(text);
      event.values.push_back(value);
    }
    out.push_back(event);
  }
  return out;
}

}  // namespace gentrain::test
