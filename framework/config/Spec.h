#pragma once
/// @file An experiment spec: YAML file + command-line overrides, validated against a Schema.
///
/// Errors name `file:line:column`, the key path and what to do. Unknown keys are rejected with
/// the closest known key. After loading, every schema key has a value (defaults filled in), and
/// `resolvedYaml()` is what gets written into the run directory and hashed for rank agreement.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "framework/config/Schema.h"

namespace gentrain {

class Spec {
 public:
  /// Chooses the full schema once the model name is known (framework keys + the model's).
  using SchemaFor = std::function<Schema(const std::string& modelName)>;

  /// Loads `path`, applies `overrides` ("a.b.c=value", YAML value syntax), validates.
  static Spec load(const std::string& path, const std::vector<std::string>& overrides,
                   const SchemaFor& schemaFor);
  /// Same, from YAML text; `origin` stands in for the file name in messages.
  static Spec parse(const std::string& yaml, const std::string& origin,
                    const std::vector<std::string>& overrides, const SchemaFor& schemaFor);

  int64_t integer(const std::string& path) const;
  double real(const std::string& path) const;
  bool flag(const std::string& path) const;
  std::string text(const std::string& path) const;
  std::vector<int64_t> integers(const std::string& path) const;
  std::vector<double> reals(const std::string& path) const;
  std::vector<std::string> texts(const std::string& path) const;

  /// Where a key's value came from: "file.yaml:12:5", "command line (k=v)" or "default".
  std::string origin(const std::string& path) const;
  /// A SpecError message prefix for a bad value of `path`, for checks the schema cannot express.
  std::string where(const std::string& path) const;

  /// Leaf paths of a YAML mapping with their values as YAML text ("train.epochs" -> "10"); used
  /// to compare a checkpoint's resolved spec with the current one.
  static std::map<std::string, std::string> flatten(const std::string& yaml);

  /// Every key with its value, as nested YAML in schema order.
  std::string resolvedYaml() const;
  const Schema& schema() const { return schema_; }

 private:
  struct Value {
    std::string yaml;    // canonical YAML text of the scalar or flow list
    std::string origin;  // see origin()
  };
  const Value& value(const std::string& path) const;

  Schema schema_;
  std::map<std::string, Value> values_;
};

}  // namespace gentrain
