#pragma once
/// @file The PixelRNN LSTMs' recurrences, each as one autograd node: the Diagonal LSTM's over
/// the skewed map's columns, the Row LSTM's over the image's rows.
///
/// Written as a graph of tensor operations the recurrence costs about fifteen operations a
/// column per direction, forward and backward, each tiny (h = 16): the Diagonal BiLSTM spent its
/// time building and walking that graph. diagonalScan runs the same recurrence with no graph, both
/// directions side by side, and back-propagates through time by hand: per column two batched
/// matrix products and one fused elementwise pass (a loop on the CPU, tensor operations on other
/// devices and dtypes). The Row LSTM's row by row recurrence costs the same way and runs the same
/// cell (rowScan). tests/models/pixelrnn/PixelRnnTest.cpp checks both against plain graphs.

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

/// A Row LSTM over H rows of W positions, row r's states from row r - 1's through a k-tap
/// state-to-state convolution along the row.
///   x:       [H, W, B, 4h] gate pre-activations (input-to-state plus both biases), o, f, i, g;
///   weights: [k, h, 4h], tap t applied as s @ weights[t] to the state of the row above at
///            column c - k / 2 + t (zero outside the row).
/// Returns the states [H, W, B, h]; row 0 reads a zero row above.
at::Tensor rowScan(const at::Tensor& x, const at::Tensor& weights,
                   ScanKernel kernel = ScanKernel::Auto);

}  // namespace gentrain::models::pixelrnn
