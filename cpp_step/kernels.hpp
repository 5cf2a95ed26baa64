// The few vector kernels the step is made of. Plain loops the compiler vectorises;
// kept in one place so a SIMD backend could replace them here and only here.
#pragma once

#include <cmath>

namespace lkjam {

inline void copy(float* __restrict dst, const float* __restrict src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}

// y += a * x
inline void axpy(float* __restrict y, const float* __restrict x, float a, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// torch.nn.GRU gate math: gi, gh are (r, z, n) pre-activations of input and hidden parts.
//   r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h' = (1 - z) n + z h
inline void gru_gates(const float* __restrict gi, const float* __restrict gh, float* __restrict h,
                      int hidden) {
  for (int i = 0; i < hidden; ++i) {
    const float r = sigmoid(gi[i] + gh[i]);
    const float z = sigmoid(gi[hidden + i] + gh[hidden + i]);
    const float n = std::tanh(gi[2 * hidden + i] + r * gh[2 * hidden + i]);
    h[i] = (1.0f - z) * n + z * h[i];
  }
}

}  // namespace lkjam
