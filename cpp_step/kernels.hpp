// The few vector kernels the step is made of, in one place.
//
// Weights are stored in row blocks: for each block of kBlock output rows, one contiguous
// run of kBlock floats per input column. A matrix-vector product then keeps the kBlock
// accumulators in registers while it streams the block's weights once, front to back. At
// these sizes a step is bound by streaming the weights, so this layout is what matters.
//
// The kernels are plain loops the compiler vectorises. On x86-64 Linux with GCC or Clang
// they are also compiled for x86-64-v3 (AVX2+FMA) and x86-64-v4 (AVX-512), and the loader
// picks the best one the CPU supports (target_clones), so the portable build is also fast.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "realtime.hpp"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    !defined(LKJAM_NO_MULTIVERSION)
#define LKJAM_KERNEL \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static
#else
#define LKJAM_KERNEL static inline
#endif

namespace lkjam {

constexpr int kBlock = 32;  // output rows per register block

constexpr int padded_rows(int rows) { return (rows + kBlock - 1) / kBlock * kBlock; }

// Index of weight (row, col) in a blocked matrix with `cols` columns.
constexpr std::size_t blocked_index(int row, int col, int cols) {
  return (static_cast<std::size_t>(row / kBlock) * cols + col) * kBlock + row % kBlock;
}

#if defined(__GNUC__)
// 8 floats (GCC/Clang vector extension: one ymm register, or two xmm in the baseline
// clone); aligned(4) so loads need no particular alignment. A row block is four of them,
// held in named variables so the compiler keeps them in registers.
typedef float Vec8 __attribute__((vector_size(8 * sizeof(float)), aligned(4)));
static_assert(kBlock == 32, "the kernels below unroll a block as 4 x 8 floats");

// y[blocks * kBlock] = bias + W x for a blocked W with `in` columns.
LKJAM_KERNEL void gemv_blocked(const float* __restrict w, const float* __restrict bias,
                               const float* __restrict x, int in, int blocks,
                               float* __restrict y) LKJAM_REALTIME {
  for (int b = 0; b < blocks; ++b) {
    const Vec8* wb = reinterpret_cast<const Vec8*>(w) + static_cast<std::size_t>(b) * in * 4;
    const Vec8* bb = reinterpret_cast<const Vec8*>(bias + b * kBlock);
    // Two accumulator sets (even and odd columns) keep more multiply-adds in flight.
    Vec8 a0 = bb[0], a1 = bb[1], a2 = bb[2], a3 = bb[3];
    Vec8 c0 = {}, c1 = {}, c2 = {}, c3 = {};
    int j = 0;
    for (; j + 1 < in; j += 2) {
      const Vec8* col = wb + j * 4;
      const float x0 = x[j];
      const float x1 = x[j + 1];
      a0 += col[0] * x0;
      a1 += col[1] * x0;
      a2 += col[2] * x0;
      a3 += col[3] * x0;
      c0 += col[4] * x1;
      c1 += col[5] * x1;
      c2 += col[6] * x1;
      c3 += col[7] * x1;
    }
    if (j < in) {
      const Vec8* col = wb + j * 4;
      a0 += col[0] * x[j];
      a1 += col[1] * x[j];
      a2 += col[2] * x[j];
      a3 += col[3] * x[j];
    }
    Vec8* out = reinterpret_cast<Vec8*>(y + b * kBlock);
    out[0] = a0 + c0;
    out[1] = a1 + c1;
    out[2] = a2 + c2;
    out[3] = a3 + c3;
  }
}

// As gemv_blocked, for an x given as `count` (index, value) pairs; the rest of x is 0.
LKJAM_KERNEL void gemv_blocked_sparse(const float* __restrict w, const float* __restrict bias,
                                      const int* __restrict index, const float* __restrict value,
                                      int count, int in, int blocks,
                                      float* __restrict y) LKJAM_REALTIME {
  for (int b = 0; b < blocks; ++b) {
    const Vec8* wb = reinterpret_cast<const Vec8*>(w) + static_cast<std::size_t>(b) * in * 4;
    const Vec8* bb = reinterpret_cast<const Vec8*>(bias + b * kBlock);
    Vec8 a0 = bb[0], a1 = bb[1], a2 = bb[2], a3 = bb[3];
    for (int k = 0; k < count; ++k) {
      const Vec8* col = wb + index[k] * 4;
      const float v = value[k];
      a0 += col[0] * v;
      a1 += col[1] * v;
      a2 += col[2] * v;
      a3 += col[3] * v;
    }
    Vec8* out = reinterpret_cast<Vec8*>(y + b * kBlock);
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
  }
}
#else
// Portable fallback: the same blocked traversal as plain loops.
LKJAM_KERNEL void gemv_blocked(const float* w, const float* bias, const float* x, int in,
                               int blocks, float* y) LKJAM_REALTIME {
  for (int b = 0; b < blocks; ++b) {
    const float* wb = w + static_cast<std::size_t>(b) * in * kBlock;
    float acc[kBlock];
    for (int r = 0; r < kBlock; ++r) acc[r] = bias[b * kBlock + r];
    for (int j = 0; j < in; ++j) {
      for (int r = 0; r < kBlock; ++r) acc[r] += wb[j * kBlock + r] * x[j];
    }
    for (int r = 0; r < kBlock; ++r) y[b * kBlock + r] = acc[r];
  }
}

LKJAM_KERNEL void gemv_blocked_sparse(const float* w, const float* bias, const int* index,
                                      const float* value, int count, int in, int blocks,
                                      float* y) LKJAM_REALTIME {
  for (int b = 0; b < blocks; ++b) {
    const float* wb = w + static_cast<std::size_t>(b) * in * kBlock;
    float acc[kBlock];
    for (int r = 0; r < kBlock; ++r) acc[r] = bias[b * kBlock + r];
    for (int k = 0; k < count; ++k) {
      for (int r = 0; r < kBlock; ++r) acc[r] += wb[index[k] * kBlock + r] * value[k];
    }
    for (int r = 0; r < kBlock; ++r) y[b * kBlock + r] = acc[r];
  }
}
#endif

// exp(v) to about 2 ulp, branch-free so the gate loop vectorises (std::exp is a call).
// v is clamped to [-87, 88] first, and NaN to -87 (every comparison with NaN is false), so n
// stays in [-126, 127] and the int32 conversion below is defined for every input.
inline float fast_exp(float v) LKJAM_REALTIME {
  v = v > -87.0f ? v : -87.0f;
  v = v < 88.0f ? v : 88.0f;
  // Round v / ln 2 to the nearest integer by adding and removing 1.5 * 2^23 (no SSE4.1 needed).
  const float n = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = v - n * 0.693359375f;  // ln 2, split in two
  r = r + n * 2.12194440e-4f;
  // exp(r) on |r| <= ln2 / 2 (Cephes' polynomial).
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const auto bits = static_cast<int32_t>(n + 127.0f) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// z[i] <- exp((z[i] - top) * scale): the unnormalised softmax of logits with temperature.
LKJAM_KERNEL void exp_shifted(float* __restrict z, int n, float top, float scale) LKJAM_REALTIME {
  for (int i = 0; i < n; ++i) z[i] = fast_exp((z[i] - top) * scale);
}

// torch.nn.GRU gate math; gi, gh are the (r, z, n) pre-activations of input and hidden parts.
//   r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h' = (1 - z) n + z h
LKJAM_KERNEL void gru_gates(const float* __restrict gi, const float* __restrict gh,
                            float* __restrict h, int hidden) LKJAM_REALTIME {
  for (int i = 0; i < hidden; ++i) {
    const float r = 1.0f / (1.0f + fast_exp(-(gi[i] + gh[i])));
    const float z = 1.0f / (1.0f + fast_exp(-(gi[hidden + i] + gh[hidden + i])));
    const float a = gi[2 * hidden + i] + r * gh[2 * hidden + i];
    const float n = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);  // tanh(a)
    h[i] = (1.0f - z) * n + z * h[i];
  }
}

}  // namespace lkjam
