// The event encoding, version 2: bins, the Event record, the conditioning and the feature state.
// docs/event-stream.md is the specification; this file is its only implementation
// (training reaches it through lkjam._step.encode), so the two cannot drift.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "realtime.hpp"

namespace lkjam {

constexpr int kEncodingVersion = 2;

constexpr int kRoles = 3;
constexpr int kRoleHuman = 0;
constexpr int kRoleClip = 1;
constexpr int kRoleAi = 2;
constexpr int kPitches = 128;
constexpr int kPitchClasses = 12;

constexpr int kShiftBins = 176;
constexpr int kVelocityBins = 16;
constexpr int kDurationBins = 28;
constexpr int kDurationUnknown = kDurationBins;  // the 29th input slot
constexpr int kTimeClasses = kShiftBins + 1;
constexpr int kWait = kShiftBins;
constexpr double kWaitHorizon = 16.0;  // beats: a next AI event this far away (or more) is WAIT
constexpr double kEnergyTau = 2.0;     // beats: time constant of the pitch-class energy decay

// Conditioning (version 2): what the AI is asked to do, set by the engine's controls live and
// labelled from the data in training (docs/event-stream.md, "Conditioning").
constexpr int kModes = 2;
constexpr int kModeAccompany = 0;     // play along under the human
constexpr int kModeCallResponse = 1;  // answer the human's phrases, silent while they play
constexpr double kMaxDensity = 16.0;  // AI onsets per beat; more is clamped
constexpr double kMaxVoices = 8.0;    // AI notes per onset time (chord size); more is clamped

// Feature vector layout (offsets into the kFeatures = 409 floats).
constexpr int kOffRole = 0;
constexpr int kOffShift = kOffRole + kRoles;
constexpr int kOffPitch = kOffShift + kShiftBins;
constexpr int kOffVelocity = kOffPitch + kPitches;
constexpr int kOffDuration = kOffVelocity + kVelocityBins;
constexpr int kOffSoundingInput = kOffDuration + kDurationBins + 1;
constexpr int kOffSoundingAi = kOffSoundingInput + kPitchClasses;
constexpr int kOffEnergy = kOffSoundingAi + kPitchClasses;
constexpr int kOffScale = kOffEnergy + kPitchClasses;
constexpr int kOffScaleKnown = kOffScale + kPitchClasses;
constexpr int kOffPhase = kOffScaleKnown + 1;
constexpr int kOffMode = kOffPhase + 4;
constexpr int kOffDensity = kOffMode + kModes;
constexpr int kOffVoices = kOffDensity + 1;
constexpr int kFeatures = kOffVoices + 1;
static_assert(kOffSoundingInput == 352 && kOffPhase == 401 && kOffMode == 405 && kFeatures == 409,
              "layout must match docs/event-stream.md");

// Everything before kOffSoundingInput is five one-hot groups; the rest is dense.
constexpr int kOneHotGroups = 5;
constexpr int kDenseFeatures = kFeatures - kOffSoundingInput;

// One note onset; the same 16-byte layout as lkjam.engine.events.EVENT_DTYPE.
struct Event {
  double beat;  // onset, song beats
  float dur;    // beats; <= 0 means unknown
  uint8_t pitch;
  uint8_t vel;
  uint8_t role;
  uint8_t flags;
};
static_assert(sizeof(Event) == 16, "Event must match EVENT_DTYPE");

// The largest |beat| and |dur| the bindings accept, in beats: 15 years of song time at 120
// bpm. A double still resolves 1e-7 beat there, far below the 1/96-beat shift bins, and a
// dur within it fits a float exactly enough; larger values are refused, never cast.
constexpr double kMaxBeats = 1e9;

namespace detail {

constexpr std::array<double, kShiftBins> make_shift_values() {
  std::array<double, kShiftBins> v{};
  int i = 0;
  for (int k = 0; k < 96; ++k) v[i++] = k / 96.0;
  for (int k = 0; k < 24; ++k) v[i++] = 1.0 + k / 24.0;
  for (int k = 0; k < 24; ++k) v[i++] = 2.0 + k / 12.0;
  for (int k = 0; k < 16; ++k) v[i++] = 4.0 + k / 4.0;
  for (int k = 0; k < 16; ++k) v[i++] = 8.0 + k / 2.0;
  return v;
}

}  // namespace detail

inline constexpr std::array<double, kShiftBins> kShiftValues = detail::make_shift_values();

inline constexpr std::array<double, kDurationBins> kDurationValues = {
    1.0 / 48, 1.0 / 24, 1.0 / 12, 1.0 / 8, 1.0 / 6, 1.0 / 4, 1.0 / 3, 3.0 / 8, 1.0 / 2, 2.0 / 3,
    3.0 / 4,  1.0,      1.25,     1.5,     1.75,    2.0,     2.5,     3.0,     3.5,     4.0,
    5.0,      6.0,      7.0,      8.0,     10.0,    12.0,    14.0,    16.0};

namespace detail {

// Midpoints between neighbouring shift values: a shift maps to the number of midpoints <= it.
constexpr std::array<double, kShiftBins - 1> make_shift_edges() {
  std::array<double, kShiftBins - 1> e{};
  for (int i = 0; i + 1 < kShiftBins; ++i) e[i] = 0.5 * (kShiftValues[i] + kShiftValues[i + 1]);
  return e;
}

// Log-space midpoints, squared so they are exact without sqrt: d >= sqrt(a*b) <=> d*d >= a*b.
constexpr std::array<double, kDurationBins - 1> make_duration_edges_sq() {
  std::array<double, kDurationBins - 1> e{};
  for (int i = 0; i + 1 < kDurationBins; ++i) e[i] = kDurationValues[i] * kDurationValues[i + 1];
  return e;
}

inline constexpr auto kShiftEdges = make_shift_edges();
inline constexpr auto kDurationEdgesSq = make_duration_edges_sq();

}  // namespace detail

// Nearest representative value, ties up; negative (or NaN) shifts land in bin 0.
inline int shift_bin(double beats) LKJAM_REALTIME {
  if (!(beats > 0.0)) return 0;
  const auto* e = detail::kShiftEdges.data();
  return static_cast<int>(std::upper_bound(e, e + detail::kShiftEdges.size(), beats) - e);
}

// Nearest value in log space, ties up; kDurationUnknown for a duration <= 0 (unknown).
inline int duration_bin(double beats) LKJAM_REALTIME {
  if (!(beats > 0.0)) return kDurationUnknown;
  const auto* e = detail::kDurationEdgesSq.data();
  const double sq = beats * beats;
  return static_cast<int>(std::upper_bound(e, e + detail::kDurationEdgesSq.size(), sq) - e);
}

inline int velocity_bin(int vel) LKJAM_REALTIME { return std::min(std::max(vel, 0), 127) / 8; }
inline int velocity_value(int bin) LKJAM_REALTIME { return bin * 8 + 4; }

// The feature values of the conditioning inputs: log-compressed density (1.0 at 7 onsets per
// beat) and chord size over 4, so both stay O(1) for the first layer.
inline float density_feature(double onsets_per_beat) LKJAM_REALTIME {
  return static_cast<float>(std::log2(1.0 + std::clamp(onsets_per_beat, 0.0, kMaxDensity)) / 3.0);
}
inline float voices_feature(double voices) LKJAM_REALTIME {
  return static_cast<float>(std::clamp(voices, 0.0, kMaxVoices) / 4.0);
}

// The per-session feature state of docs/event-stream.md. Trivially copyable, fixed size,
// O(1) per event; never allocates.
class FeatureState {
 public:
  FeatureState() {
    set_meter(4, 4);
    clear_scale();
    reset();
  }

  // Forgets the stream (previous onset, sounding notes, energy); keeps meter and scale.
  void reset() {
    has_prev_ = false;
    prev_beat_ = 0.0;
    for (auto& role : end_) role.fill(-std::numeric_limits<double>::infinity());
    energy_.fill(0.0);
  }

  void set_meter(int numerator, int denominator) { bar_beats_ = 4.0 * numerator / denominator; }

  // intervals are semitones above root (any order, duplicates harmless), each taken mod 12.
  void set_scale(int root, const int* intervals, int count) {
    scale_.fill(0.0f);
    for (int i = 0; i < count; ++i) scale_[((root + intervals[i]) % 12 + 12) % 12] = 1.0f;
    scale_known_ = true;
  }

  void clear_scale() {
    scale_.fill(0.0f);
    scale_known_ = false;
  }

  // Takes effect from the next fed event; reset() keeps it, as it keeps meter and scale.
  // mode must be kModeAccompany or kModeCallResponse (the bindings check it).
  void set_conditioning(int mode, double density, double voices) LKJAM_REALTIME {
    mode_ = mode;
    density_ = density_feature(density);
    voices_ = voices_feature(voices);
  }

  // A live note stops sounding at `beat` (never lengthens a note).
  void note_off(int role, int pitch, double beat) LKJAM_REALTIME {
    double& end = end_[role][pitch];
    if (end > beat) end = beat;
  }

  // The beat until which the human's notes sounding at `beat` last: `beat` if none sounds,
  // +inf while a live note is held (its note-off not yet seen).
  double human_until(double beat) const LKJAM_REALTIME {
    double until = beat;
    for (const double end : end_[kRoleHuman]) {
      if (end > until) until = end;
    }
    return until;
  }

  // Pitch classes sounding at `beat` (at or after the last fed event) as 12-bit sets: from
  // human and clip together, and from the AI; the rule of feature step 5.
  void sounding(double beat, int* input_bits, int* ai_bits) const LKJAM_REALTIME {
    *input_bits = *ai_bits = 0;
    for (int role = 0; role < kRoles; ++role) {
      int& bits = role == kRoleAi ? *ai_bits : *input_bits;
      for (int p = 0; p < kPitches; ++p) {
        if (end_[role][p] > beat) bits |= 1 << (p % 12);
      }
    }
  }

  // Advances by one event and writes its features into x[kFeatures]. hot[g] receives the
  // index of the single 1 in one-hot group g (role, shift, pitch, velocity, duration), so the
  // first GRU layer can skip the zeros.
  void feed(const Event& e, float* x, int* hot) LKJAM_REALTIME {
    // Events come in stream order; a real-time straggler a hair early counts as simultaneous.
    const double dt = has_prev_ ? std::max(0.0, e.beat - prev_beat_) : 0.0;
    has_prev_ = true;
    prev_beat_ = e.beat;

    const double decay = std::exp(-dt / kEnergyTau);
    for (double& en : energy_) en *= decay;
    end_[e.role][e.pitch] = e.dur > 0.0f ? e.beat + static_cast<double>(e.dur)
                                         : std::numeric_limits<double>::infinity();
    energy_[e.pitch % 12] += e.vel / 127.0;

    std::memset(x, 0, sizeof(float) * kFeatures);
    hot[0] = kOffRole + e.role;
    hot[1] = kOffShift + shift_bin(dt);
    hot[2] = kOffPitch + e.pitch;
    hot[3] = kOffVelocity + velocity_bin(e.vel);
    // Human durations are never known live, so training must not see them either.
    hot[4] = kOffDuration + (e.role == kRoleHuman ? kDurationUnknown : duration_bin(e.dur));
    for (int g = 0; g < kOneHotGroups; ++g) x[hot[g]] = 1.0f;

    const double b = e.beat;
    for (int role = 0; role < kRoles; ++role) {
      float* sounding = x + (role == kRoleAi ? kOffSoundingAi : kOffSoundingInput);
      const auto& end = end_[role];
      for (int p = 0; p < kPitches; ++p) {
        if (end[p] > b) sounding[p % 12] = 1.0f;
      }
    }
    for (int pc = 0; pc < kPitchClasses; ++pc) {
      x[kOffEnergy + pc] = static_cast<float>(std::tanh(energy_[pc]));
      x[kOffScale + pc] = scale_[pc];
    }
    x[kOffScaleKnown] = scale_known_ ? 1.0f : 0.0f;

    constexpr double kTwoPi = 6.283185307179586;
    const double beat_phase = b - std::floor(b);
    const double bar_pos = std::fmod(b, bar_beats_);
    const double bar_phase = (bar_pos < 0.0 ? bar_pos + bar_beats_ : bar_pos) / bar_beats_;
    x[kOffPhase + 0] = static_cast<float>(std::sin(kTwoPi * beat_phase));
    x[kOffPhase + 1] = static_cast<float>(std::cos(kTwoPi * beat_phase));
    x[kOffPhase + 2] = static_cast<float>(std::sin(kTwoPi * bar_phase));
    x[kOffPhase + 3] = static_cast<float>(std::cos(kTwoPi * bar_phase));
    x[kOffMode + mode_] = 1.0f;
    x[kOffDensity] = density_;
    x[kOffVoices] = voices_;
  }

 private:
  bool has_prev_ = false;
  double prev_beat_ = 0.0;
  std::array<std::array<double, kPitches>, kRoles> end_{};  // beat a note stops sounding
  std::array<double, kPitchClasses> energy_{};
  std::array<float, kPitchClasses> scale_{};
  bool scale_known_ = false;
  double bar_beats_ = 4.0;
  int mode_ = kModeAccompany;
  float density_ = 0.0f;  // density_feature(onsets per beat)
  float voices_ = 0.0f;   // voices_feature(notes per onset time)
};

// The training target rule: for each event t, the next AI event after t in stream order.
// Writes -1 into pitch/velocity/duration where time is WAIT, and into duration where the AI
// event's duration is unknown.
inline void compute_targets(const Event* ev, int64_t n, int64_t* time, int64_t* pitch,
                            int64_t* velocity, int64_t* duration) {
  int64_t next_ai = -1;  // index of the next AI event after t, scanning backwards
  for (int64_t t = n - 1; t >= 0; --t) {
    const double shift = next_ai >= 0 ? ev[next_ai].beat - ev[t].beat : kWaitHorizon;
    if (next_ai < 0 || shift >= kWaitHorizon) {
      time[t] = kWait;
      pitch[t] = velocity[t] = duration[t] = -1;
    } else {
      const Event& a = ev[next_ai];
      time[t] = shift_bin(shift);
      pitch[t] = a.pitch;
      velocity[t] = velocity_bin(a.vel);
      const int d = duration_bin(a.dur);
      duration[t] = d == kDurationUnknown ? -1 : d;
    }
    if (ev[t].role == kRoleAi) next_ai = t;
  }
}

}  // namespace lkjam
