#include "framework/config/Spec.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Log.h"

namespace gentrain {
namespace {

std::string markOf(const std::string& origin, const YAML::Mark& mark) {
  if (mark.is_null()) return origin;
  return origin + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string unknownKey(const std::string& where, const std::string& path, const Schema& schema) {
  const std::string guess = schema.closest(path);
  return where + ": unknown key '" + path + "'" +
         (guess.empty() ? "" : "; did you mean '" + guess + "'?") +
         " (`gentrain keys` lists every key)";
}

/// A node's scalar text, or "" for non-scalars.
std::string scalarText(const YAML::Node& node) { return node.IsScalar() ? node.Scalar() : ""; }

/// Checks one scalar against a type and range; returns its canonical YAML text.
std::string checkScalar(const YAML::Node& node, const KeyInfo& key, KeyType type,
                        const std::string& where) {
  const std::string text = scalarText(node);
  const auto bad = [&](const std::string& want) {
    return SpecError(where + ": " + key.path + " must be " + want + ", got " +
                     (node.IsScalar() ? "'" + text + "'"
                                      : "a " + std::string(node.IsMap() ? "mapping" : "list")));
  };
  if (!node.IsScalar()) throw bad(std::string("a ") + typeName(type));
  double number = 0;
  switch (type) {
    case KeyType::Int: {
      long long v = 0;
      if (!YAML::convert<long long>::decode(node, v)) throw bad("an integer");
      number = static_cast<double>(v);
      break;
    }
    case KeyType::Float: {
      if (!YAML::convert<double>::decode(node, number) || !std::isfinite(number)) {
        throw bad("a finite number");
      }
      break;
    }
    case KeyType::Bool: {
      bool v = false;
      if (!YAML::convert<bool>::decode(node, v)) throw bad("true or false");
      return v ? "true" : "false";
    }
    default: {
      if (!key.choices.empty() &&
          std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end()) {
        std::string list;
        for (const std::string& c : key.choices) list += (list.empty() ? "" : ", ") + c;
        throw SpecError(where + ": " + key.path + " is '" + text + "'; use one of: " + list);
      }
      return text;
    }
  }
  if (number < key.min || number > key.max) {
    std::ostringstream range;
    range << std::setprecision(15) << "between " << key.min << " and " << key.max;
    if (key.max == std::numeric_limits<double>::infinity()) {
      range.str("");
      range << "at least " << key.min;  // (floats only: integer keys are bounded)
    }
    throw SpecError(where + ": " + key.path + " is " + text + "; it must be " + range.str());
  }
  return text;
}

std::string checkValue(const YAML::Node& node, const KeyInfo& key, const std::string& where) {
  KeyType element;
  switch (key.type) {
    case KeyType::IntList:
      element = KeyType::Int;
      break;
    case KeyType::FloatList:
      element = KeyType::Float;
      break;
    case KeyType::StringList:
      element = KeyType::String;
      break;
    default:
      return checkScalar(node, key, key.type, where);
  }
  if (!node.IsSequence()) {
    throw SpecError(where + ": " + key.path + " must be a " + typeName(key.type) +
                    " like [1, 2], got '" + scalarText(node) + "'");
  }
  std::string out = "[";
  for (std::size_t i = 0; i < node.size(); ++i) {
    out += (i ? ", " : "") + checkScalar(node[i], key, element, markOf(where, node[i].Mark()));
  }
  return out + "]";
}

/// Walks a mapping, checking every leaf against the schema and storing it.
void collect(const YAML::Node& node, const std::string& prefix, const std::string& origin,
             const Schema& schema, std::map<std::string, std::string>& out,
             std::map<std::string, std::string>& origins) {
  for (const auto& item : node) {
    const std::string name = item.first.Scalar();
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    const std::string where = markOf(origin, item.first.Mark());
    if (const KeyInfo* key = schema.find(path)) {
      out[path] = checkValue(item.second, *key, markOf(origin, item.second.Mark()));
      origins[path] = where;
    } else if (schema.isSection(path)) {
      if (!item.second.IsMap()) {
        throw SpecError(where + ": '" + path + "' is a section and needs keys under it");
      }
      collect(item.second, path, origin, schema, out, origins);
    } else {
      throw SpecError(unknownKey(where, path, schema));
    }
  }
}

/// Refuses a mapping that names a key twice: YAML forbids it, and yaml-cpp would keep both, so
/// that the later one silently wins (a second `train:` block dropping the first one's keys).
void refuseDuplicateKeys(const YAML::Node& node, const std::string& origin,
                         const std::string& prefix) {
  if (node.IsSequence()) {
    for (const YAML::Node& child : node) refuseDuplicateKeys(child, origin, prefix);
  }
  if (!node.IsMap()) return;
  std::map<std::string, YAML::Mark> seen;
  for (const auto& item : node) {
    const std::string name = scalarText(item.first);
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    const auto [first, fresh] = seen.emplace(name, item.first.Mark());
    if (!fresh) {
      throw SpecError(markOf(origin, item.first.Mark()) + ": key '" + path +
                      "' appears a second "
                      "time (first at line " +
                      std::to_string(first->second.line + 1) + "); merge the two into one");
    }
    refuseDuplicateKeys(item.second, origin, path);
  }
}

YAML::Node parseYaml(const std::string& text, const std::string& origin) {
  try {
    YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) {
      throw SpecError(origin + ":1:1: a spec is a YAML mapping of sections (model:, data:, ...)");
    }
    refuseDuplicateKeys(root, origin, "");
    return root;
  } catch (const YAML::ParserException& e) {
    throw SpecError(markOf(origin, e.mark) + ": malformed YAML: " + e.msg);
  }
}

/// Reads the `sweep:` section (and takes it out of `root`): a mapping of dotted keys to non-empty
/// lists of values, each value checked as the key's own would be.
std::vector<Spec::SweepAxis> takeSweep(YAML::Node& root, const std::string& origin,
                                       const Schema& schema) {
  std::vector<Spec::SweepAxis> axes;
  if (!root["sweep"]) return axes;
  const YAML::Node section = root["sweep"];
  const std::string where = markOf(origin, section.Mark());
  if (!section.IsMap() || section.size() == 0) {
    throw SpecError(where +
                    ": sweep must map keys to lists of values, e.g. "
                    "sweep: {optim.vae.lr: [1.0e-3, 3.0e-4]}");
  }
  for (const auto& item : section) {
    const std::string path = item.first.Scalar();
    const std::string at = markOf(origin, item.first.Mark());
    const KeyInfo* key = schema.find(path);
    if (key == nullptr) throw SpecError(unknownKey(at + ": in sweep", path, schema));
    if (path == "name" || path == "run.dir" || path == "model.name") {
      throw SpecError(at + ": sweep over '" + path +
                      "' is not possible (each combination runs "
                      "in <run.dir>/task-<i> of the same model); make separate specs");
    }
    for (const auto& axis : axes) {
      if (axis.path == path) throw SpecError(at + ": sweep names '" + path + "' twice");
    }
    if (!item.second.IsSequence() || item.second.size() == 0) {
      throw SpecError(at + ": sweep." + path + " must be a non-empty list of values");
    }
    Spec::SweepAxis axis{path, {}};
    for (const auto& value : item.second) {
      axis.values.push_back(checkValue(value, *key, markOf(origin, value.Mark())));
    }
    axes.push_back(std::move(axis));
  }
  root.remove("sweep");
  return axes;
}

}  // namespace

Spec Spec::load(const std::string& path, const std::vector<std::string>& overrides,
                const SchemaFor& schemaFor) {
  std::ifstream in(path);
  if (!in) throw SpecError(path + ": cannot read the spec file (does it exist?)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, overrides, schemaFor);
}

namespace {

/// `key.path=value` overrides as (path, raw text) pairs, so that model.name can come from either
/// the file or the command line.
std::vector<std::pair<std::string, std::string>> splitOverrides(
    const std::vector<std::string>& overrides) {
  std::vector<std::pair<std::string, std::string>> parsed;
  for (const std::string& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw SpecError("command line: override '" + o + "' must look like key.path=value");
    }
    parsed.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  return parsed;
}

/// An override's value as a YAML node: a string key takes the text as it is (quotes optional);
/// others parse as YAML values.
YAML::Node overrideNode(const std::string& raw, const KeyInfo& key, const std::string& where) {
  if (key.type == KeyType::String) {
    const bool quoted =
        raw.size() >= 2 && (raw.front() == '"' || raw.front() == '\'') && raw.back() == raw.front();
    return YAML::Node(quoted ? raw.substr(1, raw.size() - 2) : raw);
  }
  try {
    return YAML::Load(raw);
  } catch (const YAML::ParserException& e) {
    throw SpecError(where + ": malformed value: " + e.msg);
  }
}

/// Note [run names]
/// A spec's name becomes a folder (run.dir's `{name}`) and a Slurm job name, so it is one safe
/// path component: letters, digits, '.', '_' and '-', not starting with a dot. Anything else
/// (a slash, `..`, a line break that would end an #SBATCH line) is refused at load.
void checkRunName(const std::string& name, const std::string& where) {
  const bool safe = !name.empty() && name.front() != '.' &&
                    name.find_first_not_of(
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789._-") == std::string::npos;
  if (safe) return;
  std::string shown;
  for (const char c : name) {
    shown += c == '\n' ? std::string("\\n") : c == '\r' ? std::string("\\r") : std::string(1, c);
  }
  throw SpecError(where + ": name '" + shown +
                  "' cannot name a run directory: use letters, "
                  "digits, '.', '_' and '-', not starting with a dot");
}

}  // namespace

Spec Spec::parse(const std::string& yaml, const std::string& origin,
                 const std::vector<std::string>& overrides, const SchemaFor& schemaFor) {
  YAML::Node root = parseYaml(yaml, origin);
  const auto parsedOverrides = splitOverrides(overrides);
  std::string modelName;
  if (root["model"] && root["model"].IsMap() && root["model"]["name"]) {
    modelName = scalarText(root["model"]["name"]);
  }
  for (const auto& [path, raw] : parsedOverrides) {
    if (path == "model.name") modelName = raw;
  }

  Spec spec;
  spec.schema_ = schemaFor(modelName);
  spec.source_ = yaml;
  spec.sourceOrigin_ = origin;
  spec.overrides_ = overrides;
  spec.schemaFor_ = schemaFor;
  spec.sweep_ = takeSweep(root, origin, spec.schema_);
  std::map<std::string, std::string> values;
  std::map<std::string, std::string> origins;
  collect(root, "", origin, spec.schema_, values, origins);
  for (std::size_t i = 0; i < parsedOverrides.size(); ++i) {
    const auto& [path, raw] = parsedOverrides[i];
    const std::string where = "command line (" + overrides[i] + ")";
    const KeyInfo* key = spec.schema_.find(path);
    if (key == nullptr) throw SpecError(unknownKey(where, path, spec.schema_));
    values[path] = checkValue(overrideNode(raw, *key, where), *key, where);
    origins[path] = where;
  }
  for (const KeyInfo& key : spec.schema_.keys()) {
    if (values.count(key.path)) {
      spec.values_[key.path] = {values[key.path], origins[key.path]};
    } else if (!key.defaultYaml.empty()) {
      spec.values_[key.path] = {key.defaultYaml, "default"};
    } else {
      throw SpecError(origin + ": required key '" + key.path + "' is missing (" + key.help + ")");
    }
  }
  checkRunName(spec.values_.at("name").yaml, spec.values_.at("name").origin);
  return spec;
}

const Spec::Value& Spec::value(const std::string& path) const {
  auto it = values_.find(path);
  if (it == values_.end()) {
    throw SpecError("internal: spec key '" + path + "' is not in the schema");
  }
  return it->second;
}

int64_t Spec::integer(const std::string& path) const {
  return YAML::Load(value(path).yaml).as<int64_t>();
}
double Spec::real(const std::string& path) const {
  return YAML::Load(value(path).yaml).as<double>();
}
bool Spec::flag(const std::string& path) const { return YAML::Load(value(path).yaml).as<bool>(); }
std::string Spec::text(const std::string& path) const { return value(path).yaml; }
std::vector<int64_t> Spec::integers(const std::string& path) const {
  return YAML::Load(value(path).yaml).as<std::vector<int64_t>>();
}
std::vector<double> Spec::reals(const std::string& path) const {
  return YAML::Load(value(path).yaml).as<std::vector<double>>();
}
std::vector<std::string> Spec::texts(const std::string& path) const {
  return YAML::Load(value(path).yaml).as<std::vector<std::string>>();
}

std::string Spec::origin(const std::string& path) const { return value(path).origin; }

std::string Spec::where(const std::string& path) const {
  return origin(path) + ": " + path + " = " + value(path).yaml;
}

namespace {
void flattenInto(const YAML::Node& node, const std::string& prefix,
                 std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& item : node) {
      const std::string name = item.first.Scalar();
      flattenInto(item.second, prefix.empty() ? name : prefix + "." + name, out);
    }
    return;
  }
  YAML::Emitter emitter;
  emitter << YAML::Flow << node;
  out[prefix] = emitter.c_str();
}
}  // namespace

std::map<std::string, std::string> Spec::flatten(const std::string& yaml) {
  std::map<std::string, std::string> out;
  flattenInto(YAML::Load(yaml), "", out);
  return out;
}

std::string Spec::resolvedYaml() const {
  YAML::Node root(YAML::NodeType::Map);
  for (const KeyInfo& key : schema_.keys()) {
    std::vector<std::string> parts;
    std::stringstream path(key.path);
    for (std::string part; std::getline(path, part, '.');) parts.push_back(part);
    // Walk down with fresh handles: yaml-cpp node assignment would rebind, not descend.
    std::vector<YAML::Node> chain{root};
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) chain.push_back(chain.back()[parts[i]]);
    const std::string& text = value(key.path).yaml;
    YAML::Node leaf = (key.type == KeyType::String) ? YAML::Node(text) : YAML::Load(text);
    chain.back()[parts.back()] = leaf;
  }
  if (!sweep_.empty()) {
    YAML::Node section = root["sweep"];
    for (const SweepAxis& axis : sweep_) {
      const bool isString = schema_.find(axis.path)->type == KeyType::String;
      YAML::Node list(YAML::NodeType::Sequence);
      for (const std::string& v : axis.values)
        list.push_back(isString ? YAML::Node(v) : YAML::Load(v));
      list.SetStyle(YAML::EmitterStyle::Flow);
      section[axis.path] = list;
    }
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

int64_t Spec::sweepSize() const {
  if (sweep_.empty()) return 0;
  int64_t size = 1;
  for (const SweepAxis& axis : sweep_) size *= static_cast<int64_t>(axis.values.size());
  return size;
}

std::vector<std::string> Spec::sweepOverrides(int64_t task) const {
  if (task < 0 || task >= sweepSize()) {
    throw SpecError(log::cat(sourceOrigin_, ": sweep task ", task,
                             " does not exist; the sweep has ", sweepSize(),
                             " combination(s): use 0 to ", sweepSize() - 1));
  }
  std::vector<std::string> out(sweep_.size());
  for (std::size_t a = sweep_.size(); a-- > 0;) {
    const auto n = static_cast<int64_t>(sweep_[a].values.size());
    out[a] = sweep_[a].path + "=" + sweep_[a].values[static_cast<std::size_t>(task % n)];
    task /= n;
  }
  return out;
}

Spec Spec::sweepTask(int64_t task) const {
  std::vector<std::string> overrides = overrides_;
  for (const std::string& o : sweepOverrides(task)) overrides.push_back(o);
  overrides.push_back("run.dir=" + text("run.dir") + "/task-" + std::to_string(task));
  Spec one = parse(source_, sourceOrigin_, overrides, schemaFor_);
  one.sweep_.clear();
  return one;
}

}  // namespace gentrain
