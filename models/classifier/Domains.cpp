#include "models/classifier/Domains.h"

#include <torch/torch.h>

#include <algorithm>

#include "framework/base/Error.h"

namespace gentrain::models {

void Domains::addKeys(Schema& s) {
  const double big = 1e300;
  s.add({"model.domains", KeyType::StringList, "[fg_red, fg_green, fg_blue, fg_yellow, fg_magenta]",
         "attribute columns of the data that make the domains (gentrain data colorize writes "
         "fg_<colour> and bg_<colour>)"});
  s.add({"model.domain_type",
         KeyType::String,
         "categorical",
         "categorical: the columns are one-hot, one domain per image (softmax); attributes: "
         "independent binary attributes (sigmoid)",
         -big,
         big,
         {"categorical", "attributes"}});
  s.add({"model.domain_filter", KeyType::Bool, "false",
         "categorical domains: train and evaluate only on the images with exactly one of the "
         "domains set (false: every image must have one)"});
}

std::optional<std::vector<int64_t>> Domains::select(const Spec& spec, const ImageDataset& split) {
  const Domains d = fromSpec(spec, split.attributeNames());
  const bool filter = spec.flag("model.domain_filter");
  const std::string where = split.path() + ":/" + split.split();
  if (!d.categorical_) {
    if (!filter) return std::nullopt;
    throw SpecError(spec.where("model.domain_filter") +
                    ": applies to categorical domains only; with model.domain_type=attributes "
                    "every image has a label");
  }
  const std::size_t width = split.attributeNames().size();
  const std::vector<uint8_t>& table = split.attributes();
  std::vector<int64_t> keep;
  int64_t firstBad = -1, firstBadCount = 0;
  for (int64_t i = 0; i < split.size(); ++i) {
    int64_t set = 0;
    for (int64_t column : d.columns_) set += table[i * width + column] != 0;
    if (set == 1) {
      keep.push_back(i);
    } else if (firstBad < 0) {
      firstBad = i;
      firstBadCount = set;
    }
  }
  const int64_t kept = static_cast<int64_t>(keep.size());
  if (kept == split.size()) return std::nullopt;
  if (!filter) {
    throw SpecError(spec.where("model.domains") + ": " + std::to_string(split.size() - kept) +
                    " of the " + std::to_string(split.size()) + " images of " + where +
                    " have none or several of these categorical domains set (image " +
                    std::to_string(firstBad) + " has " + std::to_string(firstBadCount) +
                    "); set model.domain_filter=true to use the " + std::to_string(kept) +
                    " images with exactly one, or model.domain_type=attributes");
  }
  if (kept == 0) {
    throw SpecError(spec.where("model.domain_filter") + ": no image of " + where +
                    " has exactly one of the domains set; pick other model.domains");
  }
  return keep;
}

Domains Domains::fromSpec(const Spec& spec, const std::vector<std::string>& attributeNames) {
  Domains d;
  d.names_ = spec.texts("model.domains");
  d.categorical_ = spec.text("model.domain_type") == "categorical";
  d.where_ = spec.text("data.path");
  std::vector<std::string> missing;
  for (const std::string& name : d.names_) {
    const auto found = std::find(attributeNames.begin(), attributeNames.end(), name);
    if (found == attributeNames.end()) {
      missing.push_back(name);
    } else {
      d.columns_.push_back(found - attributeNames.begin());
    }
  }
  const auto join = [](const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
  };
  if (attributeNames.empty()) {
    throw SpecError(spec.where("model.domains") + ": " + d.where_ +
                    " has no attributes; make "
                    "the data with `gentrain data colorize` or import attributes with it");
  }
  if (!missing.empty()) {
    throw SpecError(spec.where("model.domains") + ": " + d.where_ + " has no attribute " +
                    join(missing) + "; it has: " + join(attributeNames));
  }
  if (d.names_.size() < 2) {
    throw SpecError(spec.where("model.domains") + ": name at least two domains");
  }
  return d;
}

at::Tensor Domains::labels(const at::Tensor& attributes) const {
  if (!attributes.defined()) throw DataError(where_ + ": the split has no attributes");
  const at::Tensor index =
      torch::tensor(columns_, at::TensorOptions().dtype(at::kLong)).to(attributes.device());
  const at::Tensor out = attributes.index_select(1, index).to(at::kFloat);
  if (categorical_) {
    const at::Tensor ones = out.sum(1);
    if (!(ones == 1).all().item<bool>()) {
      const int64_t row = (ones != 1).nonzero().select(1, 0)[0].item<int64_t>();
      throw DataError(where_ + ": an image (batch row " + std::to_string(row) + ") has " +
                      std::to_string(ones[row].item<int64_t>()) +
                      " of the categorical domains "
                      "set, not exactly one; set model.domain_type=attributes or pick columns "
                      "that are one-hot");
    }
  }
  return out;
}

at::Tensor Domains::classes(const at::Tensor& labels) const { return labels.argmax(1); }

at::Tensor Domains::loss(const at::Tensor& logits, const at::Tensor& labels) const {
  if (categorical_) return torch::cross_entropy_loss(logits, classes(labels));
  return torch::binary_cross_entropy_with_logits(logits, labels, {}, {}, at::Reduction::Sum) /
         double(logits.size(0));
}

at::Tensor Domains::correct(const at::Tensor& logits, const at::Tensor& labels) const {
  if (categorical_) return (logits.argmax(1) == classes(labels)).to(at::kDouble);
  return ((logits > 0) == (labels > 0.5)).to(at::kDouble).mean(1);
}

at::Tensor Domains::target(const at::Tensor& labels, int64_t k) const {
  if (categorical_) {
    at::Tensor out = at::zeros_like(labels);
    out.select(1, k).fill_(1);
    return out;
  }
  at::Tensor out = labels.clone();
  out.select(1, k).copy_(1 - labels.select(1, k));
  return out;
}

}  // namespace gentrain::models
