#pragma once
/// @file An experiment spec: YAML file + command-line overrides, validated against a Schema.
///
/// Errors name `file:line:column`, the key path and what to do. Unknown keys are rejected with
/// the closest known key. After loading, every schema key has a value (defaults filled in), and
/// `resolvedYaml()` is what gets written into the run directory and hashed for rank agreement.
///
/// A spec may carry a `sweep:` section, a grid over keys (`sweep: {optim.vae.lr: [1e-3, 3e-4]}`),
/// every value checked like the key's own. Such a spec is a family of runs: `sweepTask(i)` is
/// combination i, trained in `<run.dir>/task-<i>`; `gentrain submit` makes it a Slurm job array.

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

  /// Every key with its value, as nested YAML in schema order (and the sweep section, if any).
  std::string resolvedYaml() const;

  /// One swept key and its values (canonical YAML text, each checked against the schema).
  struct SweepAxis {
    std::string path;
    std::vector<std::string> values;
  };
  const std::vector<SweepAxis>& sweep() const { return sweep_; }
  /// Number of combinations of the sweep (0 without one).
  int64_t sweepSize() const;
  /// The "key=value" overrides of combination `task` (the last swept key varies fastest).
  std::vector<std::string> sweepOverrides(int64_t task) const;
  /// Combination `task` as a spec of its own: the sweep's values applied on top of this spec's
  /// overrides, run.dir = `<run.dir>/task-<task>`, and no sweep left. SpecError when out of range.
  Spec sweepTask(int64_t task) const;
  const Schema& schema() const { return schema_; }

 private:
  struct Value {
    std::string yaml;    // canonical YAML text of the scalar or flow list
    std::string origin;  // see origin()
  };
  const Value& value(const std::string& path) const;

  Schema schema_;
  std::map<std::string, Value> values_;
  std::vector<SweepAxis> sweep_;
  // What parse() was given, for sweepTask().
  std::string source_, sourceOrigin_;
  std::vector<std::string> overrides_;
  SchemaFor schemaFor_;
};

}  // namespace gentrain
