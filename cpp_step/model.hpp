// The fixed-topology model: feature state -> stacked GRU -> four heads, plus sampling.
// Sizes are template parameters; a Model is allocated once (weights included) and then
// its LKJAM_REALTIME calls (feed, predict, note_off, ...) never allocate, lock or throw.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "encoding.hpp"
#include "gru.hpp"
#include "realtime.hpp"

namespace lkjam {

template <int Hidden, int Layers>
struct Topology {
  static constexpr int kFeatures = lkjam::kFeatures;
  static constexpr int kHidden = Hidden;
  static constexpr int kLayers = Layers;
  static_assert(Layers >= 1, "at least one GRU layer");
};

using DefaultTopology = Topology<192, 2>;
using TinyTopology = Topology<16, 1>;

constexpr int kHeads = 4;
constexpr const char* kHeadNames[kHeads] = {"time", "pitch", "velocity", "duration"};
constexpr int kHeadSizes[kHeads] = {kTimeClasses, kPitches, kVelocityBins, kDurationBins};
// The four heads run as one fused linear layer; head k's logits start at kHeadOffsets[k].
constexpr int kHeadOffsets[kHeads] = {0, kTimeClasses, kTimeClasses + kPitches,
                                      kTimeClasses + kPitches + kVelocityBins};
constexpr int kHeadRows = kTimeClasses + kPitches + kVelocityBins + kDurationBins;

// Small, fast, seedable: PCG32 (O'Neill), seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { this->seed(seed); }
  void seed(uint64_t seed) LKJAM_REALTIME {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    state_ = z ^ (z >> 31);
    inc_ = (seed << 1) | 1u;
    next();
  }
  uint32_t next() LKJAM_REALTIME {
    const uint64_t old = state_;
    state_ = old * 6364136223846793005ull + inc_;
    const auto xorshifted = static_cast<uint32_t>(((old >> 18) ^ old) >> 27);
    const auto rot = static_cast<uint32_t>(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }
  // Uniform in [0, 1).
  float uniform() LKJAM_REALTIME { return static_cast<float>(next() >> 8) * (1.0f / 16777216.0f); }

 private:
  uint64_t state_ = 0;
  uint64_t inc_ = 1;
};

// Temperatures below this, 0 and denormals included, sample greedily: 1/T stays <= 1000, so
// the tempered logits are finite. (At T = 1e-3 a logit gap of 0.1 already weighs e^-100.)
constexpr float kMinTemperature = 1e-3f;
// A biased logit is clamped to +-kMaxLogit, so a huge wait_bias cannot make it infinite (and
// the softmax NaN): +huge still means "always WAIT", -huge "never".
constexpr float kMaxLogit = 1e30f;

struct SampleParams {
  float temperature = 1.0f;  // < kMinTemperature: greedy
  float top_p = 0.95f;       // (0, 1]
  float wait_bias = 0.0f;    // added to the WAIT logit before the temperature
};

struct Prediction {
  bool wait = true;
  double shift = 0.0;  // beats after the last fed event
  int pitch = -1;
  int velocity = 0;       // MIDI velocity (bin centre)
  double duration = 0.0;  // beats
};

// Moves the top-p nucleus of the weights z (the fewest largest ones whose sum reaches
// target) to the front of order[0..count) and returns its size. Quickselect with a
// three-way partition: expected O(count), no sorting, no allocation.
inline int nucleus(const float* z, int* order, int count, float target) LKJAM_REALTIME {
  int lo = 0;
  int hi = count;
  float mass = 0.0f;  // of order[0..lo), all in the nucleus; invariant: mass < target
  while (lo < hi) {
    const float pivot = z[order[lo + (hi - lo) / 2]];
    int gt = lo;  // order[lo..gt) > pivot, order[gt..i) == pivot, order[lt..hi) < pivot
    int i = lo;
    int lt = hi;
    float above = 0.0f;
    float equal = 0.0f;
    while (i < lt) {
      const float v = z[order[i]];
      if (v > pivot) {
        std::swap(order[gt++], order[i++]);
        above += v;
      } else if (v < pivot) {
        std::swap(order[i], order[--lt]);
      } else {
        ++i;
        equal += v;
      }
    }
    if (mass + above >= target) {
      hi = gt;  // the nucleus ends among the larger ones
    } else if (mass + above + equal >= target) {
      int end = gt + 1;  // just enough of the ties
      for (float m = mass + above + pivot; m < target && end < i; ++end) m += pivot;
      return end;
    } else {
      mass += above + equal;
      lo = i;
    }
  }
  return lo > 0 ? lo : 1;  // rounding guard; lo == count takes everything
}

// Samples one class from logits[N]: optional additive bias on one class, optional mask of
// allowed classes (ignored if it allows nothing), temperature and top-p. Stack work only.
template <int N>
int sample_logits(const float* logits, const SampleParams& p, const bool* allowed, int bias_index,
                  float bias, Rng& rng) LKJAM_REALTIME {
  if (allowed != nullptr && std::find(allowed, allowed + N, true) == allowed + N) {
    allowed = nullptr;  // an empty mask constrains nothing
  }
  alignas(64) float z[N];
  std::copy(logits, logits + N, z);
  if (bias_index >= 0) z[bias_index] = std::clamp(z[bias_index] + bias, -kMaxLogit, kMaxLogit);
  int best = -1;
  for (int i = 0; i < N; ++i) {
    if ((allowed == nullptr || allowed[i]) && (best < 0 || z[i] > z[best])) best = i;
  }
  if (!(p.temperature >= kMinTemperature)) return best;

  exp_shifted(z, N, z[best], 1.0f / p.temperature);  // z: unnormalised probabilities
  int order[N];
  int count = 0;
  float total = 0.0f;
  for (int i = 0; i < N; ++i) {
    if (allowed == nullptr || allowed[i]) {
      order[count++] = i;
      total += z[i];
    }
  }
  if (p.top_p < 1.0f) {
    count = nucleus(z, order, count, p.top_p * total);
    total = 0.0f;
    for (int k = 0; k < count; ++k) total += z[order[k]];
  }
  float u = rng.uniform() * total;
  for (int k = 0; k < count; ++k) {
    u -= z[order[k]];
    if (u < 0.0f) return order[k];
  }
  return order[count - 1];  // rounding left a sliver of mass
}

// A named torch tensor, (rows, cols) = (out, in) or (rows,) when cols == 0, and where it
// goes: rows row_offset.. of a blocked matrix with `cols` columns, or of a bias vector.
struct ParamSpec {
  std::string name;
  int rows;
  int cols;
  int row_offset;
  float* dst;
};

// Copies a row-major torch tensor into its place.
inline void store_param(const ParamSpec& spec, const float* src) {
  for (int r = 0; r < spec.rows; ++r) {
    if (spec.cols == 0) {
      spec.dst[spec.row_offset + r] = src[r];
      continue;
    }
    for (int c = 0; c < spec.cols; ++c) {
      spec.dst[blocked_index(spec.row_offset + r, c, spec.cols)] = src[r * spec.cols + c];
    }
  }
}

struct StateBase {
  virtual ~StateBase() = default;
};

// What the Python binding sees: one virtual interface over the compiled topologies.
class StepBase {
 public:
  virtual ~StepBase() = default;
  virtual void reset() = 0;
  virtual void seed(uint64_t seed) = 0;
  virtual void set_meter(int numerator, int denominator) = 0;
  virtual void set_scale(int root, const int* intervals, int count) = 0;
  virtual void clear_scale() = 0;
  // The real-time calls: see realtime.hpp.
  virtual void set_conditioning(int mode, double density, double voices) LKJAM_REALTIME = 0;
  virtual void set_pitch_mask(const bool* mask) LKJAM_REALTIME = 0;  // nullptr: no mask
  virtual void feed(const Event& e) LKJAM_REALTIME = 0;
  virtual void note_off(int role, int pitch, double beat) LKJAM_REALTIME = 0;
  virtual Prediction predict(const SampleParams& p) LKJAM_REALTIME = 0;
  // Samples the pitch head again, among `allowed` pitches only (the state is unchanged).
  virtual int sample_pitch(const SampleParams& p, const bool* allowed) LKJAM_REALTIME = 0;
  virtual void sounding(double beat, int* input_bits, int* ai_bits) const LKJAM_REALTIME = 0;
  virtual double human_until(double beat) const LKJAM_REALTIME = 0;
  virtual const float* logits(int head) const = 0;
  virtual std::vector<ParamSpec> params() = 0;
  // Call after loading weights: the heads of the reset state depend on them.
  virtual void refresh() = 0;
  virtual std::unique_ptr<StateBase> get_state() const = 0;
  virtual bool set_state(const StateBase& state) = 0;  // false: from another topology
};

static_assert(noexcept(std::declval<StepBase&>().feed(std::declval<const Event&>())) &&
                  noexcept(std::declval<StepBase&>().predict(std::declval<SampleParams>())) &&
                  noexcept(std::declval<StepBase&>().note_off(0, 0, 0.0)) &&
                  noexcept(std::declval<StepBase&>().set_conditioning(0, 0.0, 0.0)),
              "the real-time calls are noexcept (realtime.hpp)");

// The step benchmark's probe (cpp_step/tests/time_recurrent.cpp), a friend of Model so that
// it can time the GRU layers alone without a hook in the production interface.
struct RecurrentBench;

template <class Topo>
class Model final : public StepBase {
 public:
  static constexpr int F = Topo::kFeatures;
  static constexpr int H = Topo::kHidden;
  static constexpr int L = Topo::kLayers;

  // Everything feed changes, so that get_state/set_state restore a step exactly.
  struct State {
    FeatureState features;
    alignas(64) float h[L][H] = {};
    alignas(64) float logits[padded_rows(kHeadRows)] = {};  // all heads, see kHeadOffsets
    Rng rng;
  };
  struct Snapshot final : StateBase {
    State state;
  };

  Model() {
    pitch_mask_.fill(true);
    reset();
  }

  void reset() override {
    state_.features.reset();
    for (auto& layer : state_.h) std::fill(layer, layer + H, 0.0f);
    compute_heads();
  }
  void seed(uint64_t seed) override { state_.rng.seed(seed); }
  void set_meter(int numerator, int denominator) override {
    state_.features.set_meter(numerator, denominator);
  }
  void set_scale(int root, const int* intervals, int count) override {
    state_.features.set_scale(root, intervals, count);
  }
  void clear_scale() override { state_.features.clear_scale(); }
  void set_conditioning(int mode, double density, double voices) LKJAM_REALTIME override {
    state_.features.set_conditioning(mode, density, voices);
  }
  void set_pitch_mask(const bool* mask) LKJAM_REALTIME override {
    mask_on_ = mask != nullptr;
    if (mask_on_) std::copy(mask, mask + kPitches, pitch_mask_.begin());
  }

  void feed(const Event& e) LKJAM_REALTIME override {
    state_.features.feed(e, x_, hot_);
    // First layer input: the five one-hot columns plus the nonzero dense features.
    int count = 0;
    for (int g = 0; g < kOneHotGroups; ++g) {
      index_[count] = hot_[g];
      value_[count++] = 1.0f;
    }
    for (int j = kOffSoundingInput; j < F; ++j) {
      if (x_[j] != 0.0f) {
        index_[count] = j;
        value_[count++] = x_[j];
      }
    }
    count_ = count;
    run_layers();
    compute_heads();
  }

  void note_off(int role, int pitch, double beat) LKJAM_REALTIME override {
    state_.features.note_off(role, pitch, beat);
  }

  Prediction predict(const SampleParams& p) LKJAM_REALTIME override {
    Prediction out;
    const int t =
        sample_logits<kTimeClasses>(logits(0), p, nullptr, kWait, p.wait_bias, state_.rng);
    if (t == kWait) return out;
    out.wait = false;
    out.shift = kShiftValues[t];
    out.pitch = sample_logits<kPitches>(logits(1), p, mask_on_ ? pitch_mask_.data() : nullptr, -1,
                                        0.0f, state_.rng);
    out.velocity =
        velocity_value(sample_logits<kVelocityBins>(logits(2), p, nullptr, -1, 0.0f, state_.rng));
    out.duration =
        kDurationValues[sample_logits<kDurationBins>(logits(3), p, nullptr, -1, 0.0f, state_.rng)];
    return out;
  }

  int sample_pitch(const SampleParams& p, const bool* allowed) LKJAM_REALTIME override {
    return sample_logits<kPitches>(logits(1), p, allowed, -1, 0.0f, state_.rng);
  }

  void sounding(double beat, int* input_bits, int* ai_bits) const LKJAM_REALTIME override {
    state_.features.sounding(beat, input_bits, ai_bits);
  }

  double human_until(double beat) const LKJAM_REALTIME override {
    return state_.features.human_until(beat);
  }

  const float* logits(int head) const override { return state_.logits + kHeadOffsets[head]; }

  std::vector<ParamSpec> params() override {
    std::vector<ParamSpec> specs;
    add_layer(specs, first_, 0);
    for (int l = 1; l < L; ++l) add_layer(specs, rest_[l - 1], l);
    for (int k = 0; k < kHeads; ++k) {
      const std::string prefix = std::string("heads.") + kHeadNames[k];
      specs.push_back({prefix + ".weight", kHeadSizes[k], H, kHeadOffsets[k], heads_.w});
      specs.push_back({prefix + ".bias", kHeadSizes[k], 0, kHeadOffsets[k], heads_.b});
    }
    return specs;
  }

  void refresh() override { compute_heads(); }

  std::unique_ptr<StateBase> get_state() const override {
    auto snap = std::make_unique<Snapshot>();
    snap->state = state_;
    return snap;
  }
  bool set_state(const StateBase& state) override {
    const auto* snap = dynamic_cast<const Snapshot*>(&state);
    if (snap == nullptr) return false;
    state_ = snap->state;
    return true;
  }

 private:
  friend struct RecurrentBench;

  // The GRU layers on the first layer's input in index_/value_ (set by feed).
  void run_layers() LKJAM_REALTIME {
    first_.input_sparse(index_, value_, count_);
    first_.update(state_.h[0]);
    for (int l = 1; l < L; ++l) {
      rest_[l - 1].input_dense(state_.h[l - 1]);
      rest_[l - 1].update(state_.h[l]);
    }
  }

  void compute_heads() LKJAM_REALTIME { heads_.forward(state_.h[L - 1], state_.logits); }

  template <class Layer>
  static void add_layer(std::vector<ParamSpec>& specs, Layer& layer, int l) {
    const std::string k = std::to_string(l);
    specs.push_back({"gru.weight_ih_l" + k, Layer::kGates, Layer::kIn, 0, layer.w_ih});
    specs.push_back({"gru.weight_hh_l" + k, Layer::kGates, Layer::kHidden, 0, layer.w_hh});
    specs.push_back({"gru.bias_ih_l" + k, Layer::kGates, 0, 0, layer.b_ih});
    specs.push_back({"gru.bias_hh_l" + k, Layer::kGates, 0, 0, layer.b_hh});
  }

  GRULayer<F, H> first_;
  std::array<GRULayer<H, H>, L - 1> rest_;
  Linear<H, kHeadRows> heads_;

  State state_;
  std::array<bool, kPitches> pitch_mask_;
  bool mask_on_ = false;

  // Workspace for feed.
  alignas(64) float x_[F] = {};
  int hot_[kOneHotGroups] = {};
  int count_ = 0;  // entries used in index_/value_
  int index_[kOneHotGroups + kDenseFeatures] = {};
  float value_[kOneHotGroups + kDenseFeatures] = {};
};

}  // namespace lkjam
