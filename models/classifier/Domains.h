#pragma once
/// @file Domains of image-to-image translation, from a dataset's attribute columns.
///
/// A spec names the attribute columns (`model.domains`, e.g. [fg_red, fg_green, fg_blue] or
/// CelebA's [Black_Hair, Blond_Hair, Brown_Hair, Male, Young]) and whether they are one-hot
/// columns of one categorical domain or independent binary attributes (`model.domain_type`).
/// StarGAN and the domain classifier that evaluates it share this, so both read the same labels.

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "framework/config/Schema.h"
#include "framework/config/Spec.h"
#include "framework/data/ImageFile.h"

namespace gentrain::models {

class Domains {
 public:
  /// Adds model.domains, model.domain_type and model.domain_filter.
  static void addKeys(Schema& schema);
  /// Model::selectImages for domains. Categorical domains must cover the split (exactly one of
  /// the columns set in every image): SpecError naming how many do not and what to set, unless
  /// model.domain_filter, which keeps just the images that have exactly one (SpecError when none
  /// do). Attributes: every image.
  static std::optional<std::vector<int64_t>> select(const Spec& spec, const ImageDataset& split);
  /// The spec's domains among the data's attribute names; SpecError naming the missing ones and
  /// listing those the file has.
  static Domains fromSpec(const Spec& spec, const std::vector<std::string>& attributeNames);

  int64_t count() const { return static_cast<int64_t>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  bool categorical() const { return categorical_; }

  /// The domain labels of a batch: the chosen columns of `attributes` [N, A], as float 0/1
  /// [N, count()]. Categorical domains need exactly one 1 per row (DataError otherwise).
  at::Tensor labels(const at::Tensor& attributes) const;
  /// Categorical: the class index of each row [N] (int64).
  at::Tensor classes(const at::Tensor& labels) const;
  /// The classification loss of logits [N, count()] against labels [N, count()]: softmax
  /// cross-entropy (mean) for a categorical domain, binary cross-entropy summed over the
  /// attributes and averaged over the batch for independent ones (as StarGAN's code does).
  at::Tensor loss(const at::Tensor& logits, const at::Tensor& labels) const;
  /// Per image [N] (double): whether the logits give the labels (categorical: the argmax;
  /// attributes: the share of attributes on the right side of 0).
  at::Tensor correct(const at::Tensor& logits, const at::Tensor& labels) const;
  /// Labels of the translation of rows `labels` [N, count()] to target `k`: the one-hot of
  /// domain k (categorical), or the labels with attribute k flipped.
  at::Tensor target(const at::Tensor& labels, int64_t k) const;

 private:
  std::vector<std::string> names_;
  std::vector<int64_t> columns_;
  bool categorical_ = true;
  std::string where_;  ///< data.path, for messages
};

}  // namespace gentrain::models
