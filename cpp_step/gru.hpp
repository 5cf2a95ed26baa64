// One GRU layer and one linear layer with compile-time sizes, torch.nn.GRU / nn.Linear
// semantics, weights in fixed-size aligned member arrays in the blocked layout of kernels.hpp.
#pragma once

#include "kernels.hpp"
#include "realtime.hpp"

namespace lkjam {

template <int In, int H>
struct GRULayer {
  static constexpr int kIn = In;
  static constexpr int kHidden = H;
  static constexpr int kGates = 3 * H;  // torch order: r, z, n
  static constexpr int kRows = padded_rows(kGates);
  static constexpr int kBlocks = kRows / kBlock;

  alignas(64) float w_ih[kRows * In] = {};  // blocked torch weight_ih (3H, In)
  alignas(64) float w_hh[kRows * H] = {};   // blocked torch weight_hh (3H, H)
  alignas(64) float b_ih[kRows] = {};
  alignas(64) float b_hh[kRows] = {};
  // Workspace, not state: input and hidden gate pre-activations.
  alignas(64) float gi[kRows] = {};
  alignas(64) float gh[kRows] = {};

  void input_dense(const float* x) LKJAM_REALTIME { gemv_blocked(w_ih, b_ih, x, In, kBlocks, gi); }

  // The input given as `count` (index, value) pairs, zero elsewhere.
  void input_sparse(const int* index, const float* value, int count) LKJAM_REALTIME {
    gemv_blocked_sparse(w_ih, b_ih, index, value, count, In, kBlocks, gi);
  }

  // h <- GRU(h), with the input gates already in gi.
  void update(float* h) LKJAM_REALTIME {
    gemv_blocked(w_hh, b_hh, h, H, kBlocks, gh);
    gru_gates(gi, gh, h, H);
  }
};

template <int In, int Out>
struct Linear {
  static constexpr int kIn = In;
  static constexpr int kOut = Out;
  static constexpr int kRows = padded_rows(Out);

  alignas(64) float w[kRows * In] = {};  // blocked torch weight (Out, In)
  alignas(64) float b[kRows] = {};

  // y must hold kRows floats; the padding rows come out 0.
  void forward(const float* x, float* y) const LKJAM_REALTIME {
    gemv_blocked(w, b, x, In, kRows / kBlock, y);
  }
};

}  // namespace lkjam
