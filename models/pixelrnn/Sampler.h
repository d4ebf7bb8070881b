#pragma once
/// @file Drawing images from a PixelNet, pixel by pixel and channel by channel.
///
/// Note [incremental sampling]
/// With mask A in the first layer and mask B after it, every feature at pixel p, in every layer,
/// depends only on what precedes p: earlier pixels, and earlier channels of p through the channel
/// groups. So once p's last channel is drawn, nothing computed at p changes again. The
/// incremental sampler keeps every layer's maps and, for each (pixel, channel), computes only
/// pixel p's column of the network: a window of the map below for each convolution, one LSTM cell
/// per layer from its neighbours' cached states. The Diagonal BiLSTM's right-to-left direction
/// runs along a row once the row is complete (only the rows below read it). A draw costs a pixel's
/// worth of work instead of an image's.

#include "models/pixelrnn/PixelRnn.h"

namespace gentrain::models::pixelrnn {

/// One channel's values [N] from its logits [N, levels] and uniforms [N] in [0, 1), by inverse
/// CDF: levels 1 is a Bernoulli logit (values 0 or 1), else levels / 255.
at::Tensor drawChannel(const at::Tensor& logits, const at::Tensor& uniforms);

/// Images [N, C, H, W] drawn with uniforms [N, C, H, W]. The reference: a whole network pass (over
/// rows 0 .. r) for every (pixel, channel). `logitsUsed`, if given, receives the logits of each
/// draw, [N, C * levels, H, W].
at::Tensor sampleByFullPasses(PixelNetImpl& net, const at::Tensor& uniforms,
                              at::Tensor* logitsUsed = nullptr);

/// The same by Note [incremental sampling] (equal up to float rounding of the sums).
at::Tensor sampleIncrementally(PixelNetImpl& net, const at::Tensor& uniforms,
                               at::Tensor* logitsUsed = nullptr);

}  // namespace gentrain::models::pixelrnn
