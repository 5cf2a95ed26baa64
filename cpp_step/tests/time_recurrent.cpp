// Times the GRU layers of the default-topology step alone, for `python -m lkjam.bench step`.
//
// The layers are private to Model; this program is their only outside caller (a friend, so
// the production interface carries no benchmark hook). After random weights and a few real
// feeds, ROUNDS rounds each run the layers REPS times on the last fed input; the figure is
// the median over rounds of the mean per run. The weights' values do not change the time: the
// kernels have no data-dependent branches.
//
// Build: g++ -std=c++17 -O3 -I cpp_step cpp_step/tests/time_recurrent.cpp -o time_recurrent
// Run:   ./time_recurrent [REPS] [ROUNDS]   -> last line: reps=... rounds=... recurrent_us=...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "model.hpp"

namespace lkjam {

struct RecurrentBench {
  using Model = lkjam::Model<DefaultTopology>;

  // Mean µs of one run of the GRU layers over `reps` runs; the state is restored after.
  static double mean_us(Model& model, int reps) {
    const Model::State saved = model.state_;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) model.run_layers();
    const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    model.state_ = saved;
    return took.count() / reps;
  }
};

}  // namespace lkjam

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  if (reps < 1 || rounds < 1) {
    std::fprintf(stderr, "usage: time_recurrent [REPS >= 1] [ROUNDS >= 1]\n");
    return 2;
  }
  using Bench = lkjam::RecurrentBench;
  auto model = std::make_unique<Bench::Model>();
  lkjam::Rng rng(12345);
  for (const auto& spec : model->params()) {
    std::vector<float> tensor(static_cast<size_t>(spec.rows) * (spec.cols == 0 ? 1 : spec.cols));
    for (float& v : tensor) v = 0.3f * (rng.uniform() - 0.5f);
    lkjam::store_param(spec, tensor.data());
  }
  model->refresh();
  // A chord and a melody note, so the first layer's sparse input is a typical one.
  for (int i = 0; i < 8; ++i) {
    const auto pitch = static_cast<uint8_t>(60 + (i * 7) % 12);
    const auto role = static_cast<uint8_t>(i % 3);
    model->feed({0.5 * i, role == lkjam::kRoleHuman ? 0.0f : 1.0f, pitch, 90, role, 0});
  }

  std::vector<double> means;
  for (int r = 0; r < rounds; ++r) means.push_back(Bench::mean_us(*model, reps));
  std::nth_element(means.begin(), means.begin() + rounds / 2, means.end());
  std::printf("reps=%d rounds=%d recurrent_us=%.3f\n", reps, rounds, means[rounds / 2]);
  return 0;
}
