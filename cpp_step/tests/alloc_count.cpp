// Counts heap allocations made by the real-time calls of the default-topology step.
//
// The malloc family is replaced for the whole process (glibc allows an executable to
// interpose malloc; we forward to glibc's own __libc_* entry points), and the global
// operator new/delete route through it, so an allocation from our code, libstdc++ or
// libm is counted. After loading random weights, STEPS feed+predict(+note_off) calls run
// with counting on; then a deliberate malloc, new and vector prove the counter counts.
//
// Build: g++ -std=c++17 -O2 -I cpp_step cpp_step/tests/alloc_count.cpp -o alloc_count
// Run:   ./alloc_count [STEPS]   -> last line: steps=... allocations=... deliberate=...
// us_per_step=...
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "model.hpp"

namespace {
bool g_counting = false;
long g_allocations = 0;
inline void count() {
  if (g_counting) ++g_allocations;
}
}  // namespace

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* p);

void* malloc(size_t size) {
  count();
  return __libc_malloc(size);
}
void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t size) {
  count();
  return __libc_realloc(p, size);
}
void* memalign(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  count();
  *out = __libc_memalign(alignment, size);
  return *out != nullptr ? 0 : ENOMEM;
}
void free(void* p) { __libc_free(p); }
}

void* operator new(size_t size) {
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, std::align_val_t al) {
  if (void* p = aligned_alloc(static_cast<size_t>(al), size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size, std::align_val_t al) { return operator new(size, al); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

int main(int argc, char** argv) {
  const long steps = argc > 1 ? std::atol(argv[1]) : 1000000;
  using Model = lkjam::Model<lkjam::DefaultTopology>;
  auto model = std::make_unique<Model>();

  lkjam::Rng rng(12345);
  for (const auto& spec : model->params()) {
    std::vector<float> tensor(static_cast<size_t>(spec.rows) * (spec.cols == 0 ? 1 : spec.cols));
    for (float& v : tensor) v = 0.3f * (rng.uniform() - 0.5f);
    lkjam::store_param(spec, tensor.data());
  }
  model->refresh();
  model->seed(1);
  bool mask[lkjam::kPitches];
  for (int p = 0; p < lkjam::kPitches; ++p) mask[p] = p % 12 == 0 || p % 12 == 4 || p % 12 == 7;
  const double shifts[] = {0.0, 1.0 / 96, 0.25, 0.5, 1.0, 2.5, 20.0};

  double beat = 0.0;
  long sink = 0;
  int held = -1;  // the human note currently held, released before the next human note
  const auto start = std::chrono::steady_clock::now();
  g_counting = true;
  for (long i = 0; i < steps; ++i) {
    beat += shifts[rng.next() % 7];
    const auto role = static_cast<uint8_t>(rng.next() % 3);
    const auto pitch = static_cast<uint8_t>(36 + rng.next() % 60);
    if (role == lkjam::kRoleHuman) {
      if (held >= 0) model->note_off(lkjam::kRoleHuman, held, beat);
      held = pitch;
    }
    const float dur = role == lkjam::kRoleHuman ? 0.0f : 0.25f * (1 + rng.next() % 8);
    const lkjam::Event e{beat, dur, pitch, static_cast<uint8_t>(1 + rng.next() % 127), role, 0};
    model->feed(e);
    if (i % 1000 == 0) model->set_pitch_mask(i % 2000 == 0 ? mask : nullptr);
    lkjam::SampleParams params;
    params.top_p = i % 3 == 0 ? 1.0f : 0.9f;
    params.temperature = i % 5 == 0 ? 0.0f : 1.0f;
    params.wait_bias = -2.0f;
    const lkjam::Prediction p = model->predict(params);
    sink += p.pitch + (p.wait ? 1 : 0);
  }
  g_counting = false;
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  const long allocations = g_allocations;

  // The counter must see allocations when there are some.
  g_allocations = 0;
  g_counting = true;
  void* volatile raw = std::malloc(24);
  int* volatile boxed = new int(3);
  std::vector<float> vec(100, 1.0f);
  g_counting = false;
  std::free(raw);
  delete boxed;
  const long deliberate = g_allocations;

  std::printf("sink=%ld vec=%g\n", sink, static_cast<double>(vec[0]));
  std::printf("steps=%ld allocations=%ld deliberate=%ld us_per_step=%.3f\n", steps, allocations,
              deliberate, us / static_cast<double>(steps));
  return 0;
}
