// One GRU layer and one linear head with compile-time sizes, torch.nn.GRU / nn.Linear
// semantics. Weights are stored transposed (one contiguous column per input), so a
// matrix-vector product is a sum of scaled columns: it vectorises without reassociating
// floating-point sums, and the first layer can skip the zero entries of its input.
#pragma once

#include <cmath>

#include "kernels.hpp"

namespace lkjam {

template <int In, int H>
struct GRULayer {
  static constexpr int kIn = In;
  static constexpr int kHidden = H;
  static constexpr int kGates = 3 * H;  // torch order: r, z, n

  alignas(64) float w_ih[In][kGates] = {};  // w_ih[j] = column j of torch's weight_ih (3H, In)
  alignas(64) float w_hh[H][kGates] = {};   // w_hh[j] = column j of torch's weight_hh (3H, H)
  alignas(64) float b_ih[kGates] = {};
  alignas(64) float b_hh[kGates] = {};
  // Workspace, not state.
  alignas(64) float gi[kGates] = {};
  alignas(64) float gh[kGates] = {};

  // Input gates from a dense input vector.
  void input_dense(const float* x) {
    copy(gi, b_ih, kGates);
    for (int j = 0; j < In; ++j) axpy(gi, w_ih[j], x[j], kGates);
  }

  // Input gates from a sparse input: count (index, value) pairs.
  void input_sparse(const int* index, const float* value, int count) {
    copy(gi, b_ih, kGates);
    for (int k = 0; k < count; ++k) axpy(gi, w_ih[index[k]], value[k], kGates);
  }

  // h <- GRU(h, input gates already in gi).
  void update(float* h) {
    copy(gh, b_hh, kGates);
    for (int j = 0; j < H; ++j) axpy(gh, w_hh[j], h[j], kGates);
    gru_gates(gi, gh, h, H);
  }
};

template <int In, int Out>
struct Linear {
  static constexpr int kIn = In;
  static constexpr int kOut = Out;
  alignas(64) float w[In][Out] = {};  // w[j] = column j of torch's weight (Out, In)
  alignas(64) float b[Out] = {};

  void forward(const float* x, float* y) const {
    copy(y, b, Out);
    for (int j = 0; j < In; ++j) axpy(y, w[j], x[j], Out);
  }
};

}  // namespace lkjam
