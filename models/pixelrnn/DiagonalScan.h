#pragma once
/// @file The Diagonal LSTM's recurrence over the skewed map's columns, as one autograd node.
///
/// Written as a graph of tensor operations the recurrence costs about fifteen operations a
/// column per direction, forward and backward, each tiny (h = 16): the Diagonal BiLSTM spent its
/// time building and walking that graph. diagonalScan runs the same recurrence with no graph, both
/// directions side by side, and back-propagates through time by hand: per column two batched
/// matrix products and one fused elementwise pass (a loop on the CPU, tensor operations on other
/// devices and dtypes). tests/models/pixelrnn/PixelRnnTest.cpp checks it against the plain graph.

#include <ATen/core/Tensor.h>

namespace gentrain::models::pixelrnn {

/// How the per-column LSTM cell runs: Auto picks Loop for float32 CPU tensors, else Tensor.
enum class ScanKernel { Auto, Loop, Tensor };

/// D independent Diagonal LSTMs over a skewed map of H rows and C = W + H - 1 columns.
///   x:     [D, C, H, B, 4h] gate pre-activations (input-to-state plus bias), gates o, f, i, g;
///   above: [D, h, 4h] the state-to-state weight of the upper neighbour (row r - 1, column j - 1),
///   left:  [D, h, 4h] that of the left neighbour (row r, column j - 1), both applied as s @ w.
/// Returns the states [D, C, H, B, h]. Only column j's rows max(0, j - W + 1) .. min(H - 1, j)
/// are pixels; every other state is zero, as the zero padding around the image, and the inputs
/// there are never read (their gradient is zero).
at::Tensor diagonalScan(const at::Tensor& x, const at::Tensor& above, const at::Tensor& left,
                        ScanKernel kernel = ScanKernel::Auto);

}  // namespace gentrain::models::pixelrnn
