#include "framework/train/Model.h"

#include "framework/base/Error.h"

namespace gentrain {

ModelRegistry& ModelRegistry::instance() {
  static ModelRegistry registry;
  return registry;
}

void ModelRegistry::add(const std::string& name, ModelEntry entry) {
  entries_[name] = std::move(entry);
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

const ModelEntry& ModelRegistry::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw SpecError("model.name '" + name + "' is not a model; use one of: " + known);
  }
  return it->second;
}

Schema ModelRegistry::schemaFor(const std::string& modelName) const {
  Schema schema = frameworkSchema();
  KeyInfo name = *schema.find("model.name");
  name.choices = names();
  schema.add(name);
  if (!modelName.empty()) get(modelName).addKeys(schema);
  return schema;
}

}  // namespace gentrain
