#pragma once
/// @file The one source of truth for experiment-spec keys: types, defaults, ranges and help.
///
/// Validation, defaults, the resolved spec and `gentrain keys` all read the same Schema, so the
/// docs cannot drift from what the parser accepts. Models add their own keys (under `model.` and
/// `optim.<name>.`) when they register.

#include <limits>
#include <string>
#include <vector>

namespace gentrain {

enum class KeyType { Int, Float, Bool, String, IntList, FloatList, StringList };

/// One leaf key of a spec.
struct KeyInfo {
  std::string path;  ///< dotted, e.g. "train.global_batch"
  KeyType type = KeyType::String;
  std::string defaultYaml;  ///< YAML text of the default; empty means required
  std::string help;
  double min = -std::numeric_limits<double>::infinity();  ///< for numbers and list elements
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  ///< for strings: the allowed values (empty = any)
};

class Schema {
 public:
  /// Adds a key; a second key with the same path replaces the first (models refine defaults).
  Schema& add(KeyInfo key);
  Schema& merge(const Schema& other);

  const KeyInfo* find(const std::string& path) const;
  /// True when `path` is a section: a strict prefix of some key.
  bool isSection(const std::string& path) const;
  const std::vector<KeyInfo>& keys() const { return keys_; }
  /// The closest known key to `path` by edit distance, or "" when nothing is close.
  std::string closest(const std::string& path) const;
  /// Human-readable listing: path, type, default, allowed values, help.
  std::string describe() const;

 private:
  std::vector<KeyInfo> keys_;
};

const char* typeName(KeyType type);

/// Adds `optim.<name>.*` keys (type, lr, betas, eps, weight_decay, momentum) with these defaults.
void addOptimizerKeys(Schema& schema, const std::string& name, const std::string& type, double lr,
                      double beta1 = 0.9, double beta2 = 0.999);

/// The framework's own keys (everything but the model's).
Schema frameworkSchema();

}  // namespace gentrain
