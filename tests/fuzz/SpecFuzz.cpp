// libFuzzer target: the spec loader. Input: YAML text; an optional first line "#o k=v;k=v"
// gives command-line overrides. Valid specs must round-trip through their resolved YAML, and a
// sweep's first combination must load too.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "framework/base/Error.h"
#include "framework/config/Spec.h"

using namespace gentrain;

namespace {
Schema schemaFor(const std::string&) {
  // The framework's keys and a model-like set (lists, choices, an optimizer), without linking
  // any model.
  Schema schema = frameworkSchema();
  schema.add({"model.name", KeyType::String, "m", "model"});
  schema.add({"model.hidden", KeyType::IntList, "[400]", "sizes", 1, 65536});
  schema.add({"model.kind", KeyType::String, "a", "kind", -1e300, 1e300, {"a", "b"}});
  schema.add({"model.scale", KeyType::Float, "1.0", "scale", 0, 10});
  addOptimizerKeys(schema, "net", "adam", 1e-3);
  schema.add({"data.path", KeyType::String, "", "required"});
  return schema;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  if (text.rfind("#o ", 0) == 0) {
    const auto end = text.find('\n');
    std::stringstream list(text.substr(3, end == std::string::npos ? std::string::npos : end - 3));
    for (std::string o; std::getline(list, o, ';');) overrides.push_back(o);
  }
  try {
    const Spec spec = Spec::parse(text, "fuzz.yaml", overrides, schemaFor);
    const std::string resolved = spec.resolvedYaml();
    const Spec again = Spec::parse(resolved, "resolved.yaml", {}, schemaFor);
    if (again.resolvedYaml() != resolved) __builtin_trap();  // the resolved spec must be stable
    if (spec.sweepSize() > 0) spec.sweepTask(0);
  } catch (const Error&) {
  }
  return 0;
}
