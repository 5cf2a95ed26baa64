// lkjam._step: Python bindings for the encoding and the fixed-topology GRU step.
// Everything coming from Python is validated here, with errors naming the field; the
// C++ underneath trusts its inputs and stays free of checks, allocation and exceptions
// (realtime.hpp). Every double that becomes a float is range-checked or clamped first: a
// double beyond float range would not convert to a float at all (undefined behaviour).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "encoding.hpp"
#include "model.hpp"

namespace py = pybind11;
using lkjam::Event;

namespace {

// The compiled topologies: the only ones a model file may name.
struct TopologyEntry {
  const char* name;
  int hidden;
  int layers;
  std::unique_ptr<lkjam::StepBase> (*make)();
};

template <class Topo>
std::unique_ptr<lkjam::StepBase> make_model() {
  return std::make_unique<lkjam::Model<Topo>>();
}

const TopologyEntry kTopologies[] = {
    {"default", lkjam::DefaultTopology::kHidden, lkjam::DefaultTopology::kLayers,
     &make_model<lkjam::DefaultTopology>},
    {"tiny", lkjam::TinyTopology::kHidden, lkjam::TinyTopology::kLayers,
     &make_model<lkjam::TinyTopology>},
};

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

void check_range(const char* field, long long value, long long lo, long long hi) {
  if (value < lo || value > hi) {
    fail(std::string(field) + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) +
         " (got " + std::to_string(value) + ")");
  }
}

void check_finite(const char* field, double value) {
  if (!std::isfinite(value)) fail(std::string(field) + " must be finite");
}

std::string repr(double value) { return py::repr(py::float_(value)).cast<std::string>(); }

// A beat or a duration: finite and within +-kMaxBeats, so a duration also fits a float.
void check_beats(const std::string& field, double value) {
  if (!(std::isfinite(value) && std::abs(value) <= lkjam::kMaxBeats)) {
    fail(field + " must be a finite number of beats within +-" + repr(lkjam::kMaxBeats) + " (got " +
         repr(value) + ")");
  }
}

// A validated, C-contiguous view of an EVENT_DTYPE array sorted in stream order.
py::array_t<Event, py::array::c_style> checked_events(const py::object& obj) {
  if (!py::isinstance<py::array>(obj)) {
    fail("events must be a numpy array of lkjam.engine.events.EVENT_DTYPE");
  }
  const auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!py::array_t<Event>::check_(arr)) {
    fail("events must have dtype lkjam.engine.events.EVENT_DTYPE (got " +
         py::str(arr.dtype()).cast<std::string>() + ")");
  }
  if (arr.ndim() != 1)
    fail("events must be 1-dimensional (got ndim " + std::to_string(arr.ndim()) + ")");
  auto events = py::array_t<Event, py::array::c_style>::ensure(arr);
  const Event* ev = events.data();
  for (py::ssize_t i = 0; i < events.size(); ++i) {
    const Event& e = ev[i];
    const std::string at = "events[" + std::to_string(i) + "].";
    check_beats(at + "beat", e.beat);
    check_beats(at + "dur", e.dur);
    check_range((at + "pitch").c_str(), e.pitch, 0, 127);
    check_range((at + "vel").c_str(), e.vel, 1, 127);
    check_range((at + "role").c_str(), e.role, 0, 2);
    if (i > 0) {
      const Event& p = ev[i - 1];
      const bool ordered =
          p.beat < e.beat ||
          (p.beat == e.beat && (p.role < e.role || (p.role == e.role && p.pitch <= e.pitch)));
      if (!ordered) {
        fail("events must be sorted by (beat, role, pitch): events[" + std::to_string(i) +
             "] comes before events[" + std::to_string(i - 1) + "] (use sort_events)");
      }
    }
  }
  return events;
}

void check_conditioning(int mode, double density, double voices) {
  check_range("mode", mode, 0, lkjam::kModes - 1);
  if (!(std::isfinite(density) && density >= 0.0)) fail("density must be a finite number >= 0");
  if (!(std::isfinite(voices) && voices >= 0.0)) fail("voices must be a finite number >= 0");
}

// Per-event conditioning rows (mode, density, voices), validated; None = accompany, 0, 0.
py::array_t<double, py::array::c_style> checked_conditioning(const py::object& obj, py::ssize_t n) {
  py::array_t<double, py::array::c_style> rows({n, py::ssize_t{3}});
  if (obj.is_none()) {
    std::fill(rows.mutable_data(), rows.mutable_data() + rows.size(), 0.0);
    return rows;
  }
  const auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!arr || arr.ndim() != 2 || arr.shape(0) != n || arr.shape(1) != 3) {
    fail("conditioning must be a float array of shape (" + std::to_string(n) +
         ", 3): mode, density, voices per event");
  }
  for (py::ssize_t i = 0; i < n; ++i) {
    const double* r = arr.data() + 3 * i;
    if (r[0] != 0.0 && r[0] != 1.0)
      fail("conditioning[" + std::to_string(i) + "] mode must be 0 or 1");
    check_conditioning(static_cast<int>(r[0]), r[1], r[2]);
  }
  std::memcpy(rows.mutable_data(), arr.data(), sizeof(double) * 3 * n);
  return rows;
}

void check_meter(int numerator, int denominator) {
  check_range("numerator", numerator, 1, 64);
  check_range("denominator", denominator, 1, 64);
  if ((denominator & (denominator - 1)) != 0) {
    fail("denominator must be a power of two (got " + std::to_string(denominator) + ")");
  }
}

std::vector<int> checked_scale(int root, const std::vector<int>& intervals) {
  check_range("scale root", root, 0, 11);
  for (int v : intervals) check_range("scale interval", v, 0, 11);
  return intervals;
}

template <class T>
py::array_t<T> table(const T* data, py::ssize_t n) {
  py::array_t<T> out(n);
  std::memcpy(out.mutable_data(), data, sizeof(T) * n);
  return out;
}

py::array_t<float> float_table(const double* data, py::ssize_t n) {
  py::array_t<float> out(n);
  for (py::ssize_t i = 0; i < n; ++i) out.mutable_data()[i] = static_cast<float>(data[i]);
  out.attr("flags").attr("writeable") = false;
  return out;
}

struct StepState {
  std::string topology;
  std::unique_ptr<lkjam::StateBase> state;
};

// Doubles, not floats, so that the checks see what Python passed. A temperature below
// kMinTemperature samples greedily (model.hpp); one above kMaxLogit is as flat as kMaxLogit,
// and a wait_bias beyond +-kMaxLogit acts as +-kMaxLogit: both are clamped to fit a float.
lkjam::SampleParams checked_params(double temperature, double top_p, double wait_bias) {
  if (!(std::isfinite(temperature) && temperature >= 0.0)) {
    fail("temperature must be a finite number >= 0 (got " + repr(temperature) + ")");
  }
  if (!(top_p > 0.0 && top_p <= 1.0)) fail("top_p must be in (0, 1] (got " + repr(top_p) + ")");
  check_finite("wait_bias", wait_bias);
  const double limit = lkjam::kMaxLogit;
  lkjam::SampleParams params;
  params.temperature = static_cast<float>(std::min(temperature, limit));
  params.top_p = static_cast<float>(top_p);
  params.wait_bias = static_cast<float>(std::clamp(wait_bias, -limit, limit));
  return params;
}

class Step {
 public:
  Step(const std::string& topology, const py::dict& weights) : topology_(topology) {
    const TopologyEntry* entry = nullptr;
    for (const auto& t : kTopologies) {
      if (topology == t.name) entry = &t;
    }
    if (entry == nullptr) fail("unknown topology '" + topology + "' (compiled: default, tiny)");
    impl_ = entry->make();
    load(weights);
  }

  void reset() { impl_->reset(); }
  void seed(uint64_t seed) { impl_->seed(seed); }
  void set_meter(int numerator, int denominator) {
    check_meter(numerator, denominator);
    impl_->set_meter(numerator, denominator);
  }
  void set_scale(int root, const std::vector<int>& intervals) {
    const auto iv = checked_scale(root, intervals);
    impl_->set_scale(root, iv.data(), static_cast<int>(iv.size()));
  }
  void clear_scale() { impl_->clear_scale(); }
  void set_conditioning(int mode, double density, double voices) {
    check_conditioning(mode, density, voices);
    impl_->set_conditioning(mode, density, voices);
  }

  void set_pitch_mask(const py::object& mask) {
    if (mask.is_none()) {
      impl_->set_pitch_mask(nullptr);
      return;
    }
    const auto arr = py::array::ensure(mask);
    if (!arr || arr.dtype().kind() != 'b' || arr.ndim() != 1 || arr.shape(0) != lkjam::kPitches) {
      fail("pitch mask must be a numpy bool array of shape (128,) or None");
    }
    const auto flat = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(arr);
    impl_->set_pitch_mask(flat.data());
  }

  void feed(double beat, int role, int pitch, int velocity, double duration) {
    check_beats("beat", beat);
    check_beats("duration", duration);
    check_range("role", role, 0, 2);
    check_range("pitch", pitch, 0, 127);
    check_range("velocity", velocity, 1, 127);
    Event e{beat,
            static_cast<float>(duration),
            static_cast<uint8_t>(pitch),
            static_cast<uint8_t>(velocity),
            static_cast<uint8_t>(role),
            0};
    impl_->feed(e);
  }

  void note_off(int role, int pitch, double beat) {
    check_range("role", role, 0, 2);
    check_range("pitch", pitch, 0, 127);
    check_beats("beat", beat);
    impl_->note_off(role, pitch, beat);
  }

  lkjam::Prediction predict(double temperature, double top_p, double wait_bias) {
    return impl_->predict(checked_params(temperature, top_p, wait_bias));
  }

  int sample_pitch(double temperature, double top_p, const py::object& allowed) {
    const auto params = checked_params(temperature, top_p, 0.0);
    const auto arr = py::array::ensure(allowed);
    if (!arr || arr.dtype().kind() != 'b' || arr.ndim() != 1 || arr.shape(0) != lkjam::kPitches) {
      fail("allowed must be a numpy bool array of shape (128,)");
    }
    const auto flat = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(arr);
    const bool* a = flat.data();
    if (std::none_of(a, a + lkjam::kPitches, [](bool x) { return x; })) {
      fail("allowed must allow at least one pitch");
    }
    return impl_->sample_pitch(params, a);
  }

  py::tuple sounding(double beat) const {
    check_beats("beat", beat);
    int input_bits = 0;
    int ai_bits = 0;
    impl_->sounding(beat, &input_bits, &ai_bits);
    return py::make_tuple(input_bits, ai_bits);
  }

  double human_until(double beat) const {
    check_beats("beat", beat);
    return impl_->human_until(beat);
  }

  py::dict logits() const {
    py::dict out;
    for (int h = 0; h < lkjam::kHeads; ++h) {
      out[lkjam::kHeadNames[h]] = table(impl_->logits(h), lkjam::kHeadSizes[h]);
    }
    return out;
  }

  py::dict feed_batch(const py::object& obj, const py::object& conditioning) {
    const auto events = checked_events(obj);
    const py::ssize_t n = events.size();
    const bool conditioned = !conditioning.is_none();
    const auto cond = checked_conditioning(conditioning, n);
    py::array_t<float> out[lkjam::kHeads];
    float* dst[lkjam::kHeads];
    for (int h = 0; h < lkjam::kHeads; ++h) {
      out[h] = py::array_t<float>({n, static_cast<py::ssize_t>(lkjam::kHeadSizes[h])});
      dst[h] = out[h].mutable_data();
    }
    const Event* ev = events.data();
    for (py::ssize_t i = 0; i < n; ++i) {
      if (conditioned) {
        const double* r = cond.data() + 3 * i;
        impl_->set_conditioning(static_cast<int>(r[0]), r[1], r[2]);
      }
      impl_->feed(ev[i]);
      for (int h = 0; h < lkjam::kHeads; ++h) {
        std::memcpy(dst[h] + i * lkjam::kHeadSizes[h], impl_->logits(h),
                    sizeof(float) * lkjam::kHeadSizes[h]);
      }
    }
    py::dict result;
    for (int h = 0; h < lkjam::kHeads; ++h) result[lkjam::kHeadNames[h]] = out[h];
    return result;
  }

  StepState get_state() const { return {topology_, impl_->get_state()}; }
  void set_state(const StepState& state) {
    if (!state.state || !impl_->set_state(*state.state)) {
      fail("state comes from a step of topology '" + state.topology + "', this one is '" +
           topology_ + "'");
    }
  }

  const std::string& topology() const { return topology_; }

 private:
  void load(const py::dict& weights) {
    std::set<std::string> expected;
    for (const auto& spec : impl_->params()) {
      expected.insert(spec.name);
      const py::str key(spec.name);
      if (!weights.contains(key)) {
        fail("missing tensor '" + spec.name + "' for topology '" + topology_ + "'");
      }
      const auto arr =
          py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(weights[key]);
      if (!arr) fail("tensor '" + spec.name + "' is not a numeric array");
      const std::string want =
          spec.cols == 0 ? "(" + std::to_string(spec.rows) + ",)"
                         : "(" + std::to_string(spec.rows) + ", " + std::to_string(spec.cols) + ")";
      const bool ok = spec.cols == 0 ? arr.ndim() == 1 && arr.shape(0) == spec.rows
                                     : arr.ndim() == 2 && arr.shape(0) == spec.rows &&
                                           arr.shape(1) == spec.cols;
      if (!ok) {
        std::string got = "(";
        for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
          got += (d ? ", " : "") + std::to_string(arr.shape(d));
        }
        got += arr.ndim() == 1 ? ",)" : ")";
        fail("tensor '" + spec.name + "' has shape " + got + ", topology '" + topology_ +
             "' needs " + want);
      }
      const float* src = arr.data();
      for (py::ssize_t i = 0; i < arr.size(); ++i) {
        if (!std::isfinite(src[i])) fail("tensor '" + spec.name + "' contains NaN or inf");
      }
      lkjam::store_param(spec, src);
    }
    for (const auto& item : weights) {
      const auto name = py::str(item.first).cast<std::string>();
      if (expected.count(name) == 0) {
        fail("unexpected tensor '" + name + "' (not part of topology '" + topology_ + "')");
      }
    }
    impl_->refresh();
  }

  std::string topology_;
  std::unique_ptr<lkjam::StepBase> impl_;
};

py::array_t<float> encode(const py::object& obj, int numerator, int denominator, int scale_root,
                          const std::vector<int>& scale_intervals, const py::object& conditioning) {
  const auto events = checked_events(obj);
  const auto cond = checked_conditioning(conditioning, events.size());
  check_meter(numerator, denominator);
  lkjam::FeatureState fs;
  fs.set_meter(numerator, denominator);
  if (scale_root != -1) {
    const auto iv = checked_scale(scale_root, scale_intervals);
    fs.set_scale(scale_root, iv.data(), static_cast<int>(iv.size()));
  } else if (!scale_intervals.empty()) {
    fail("scale_intervals given without scale_root");
  }
  const py::ssize_t n = events.size();
  py::array_t<float> out({n, static_cast<py::ssize_t>(lkjam::kFeatures)});
  float* x = out.mutable_data();
  int hot[lkjam::kOneHotGroups];
  for (py::ssize_t i = 0; i < n; ++i) {
    const double* r = cond.data() + 3 * i;
    fs.set_conditioning(static_cast<int>(r[0]), r[1], r[2]);
    fs.feed(events.data()[i], x + i * lkjam::kFeatures, hot);
  }
  return out;
}

py::dict targets(const py::object& obj) {
  const auto events = checked_events(obj);
  const py::ssize_t n = events.size();
  py::array_t<int64_t> time(n), pitch(n), velocity(n), duration(n);
  lkjam::compute_targets(events.data(), n, time.mutable_data(), pitch.mutable_data(),
                         velocity.mutable_data(), duration.mutable_data());
  py::dict out;
  out["time"] = time;
  out["pitch"] = pitch;
  out["velocity"] = velocity;
  out["duration"] = duration;
  return out;
}

}  // namespace

PYBIND11_MODULE(_step, m) {
  m.doc() = "The lkjam event encoding and fixed-topology GRU step (see docs/event-stream.md).";
  PYBIND11_NUMPY_DTYPE(Event, beat, dur, pitch, vel, role, flags);

  m.attr("ENCODING_VERSION") = lkjam::kEncodingVersion;
  m.attr("FEATURES") = lkjam::kFeatures;
  m.attr("SHIFT_VALUES") = float_table(lkjam::kShiftValues.data(), lkjam::kShiftBins);
  m.attr("DURATION_VALUES") = float_table(lkjam::kDurationValues.data(), lkjam::kDurationBins);
  m.attr("VELOCITY_BINS") = lkjam::kVelocityBins;
  m.attr("DURATION_BINS") = lkjam::kDurationBins;
  m.attr("DURATION_UNKNOWN") = lkjam::kDurationUnknown;
  m.attr("TIME_CLASSES") = lkjam::kTimeClasses;
  m.attr("WAIT") = lkjam::kWait;
  m.attr("WAIT_HORIZON") = lkjam::kWaitHorizon;
  m.attr("PITCHES") = lkjam::kPitches;
  m.attr("ROLE_HUMAN") = lkjam::kRoleHuman;
  m.attr("ROLE_CLIP") = lkjam::kRoleClip;
  m.attr("ROLE_AI") = lkjam::kRoleAi;
  m.attr("MODE_ACCOMPANY") = lkjam::kModeAccompany;
  m.attr("MODE_CALL_RESPONSE") = lkjam::kModeCallResponse;
  m.attr("MAX_DENSITY") = lkjam::kMaxDensity;
  m.attr("MAX_VOICES") = lkjam::kMaxVoices;
  m.attr("MAX_BEATS") = lkjam::kMaxBeats;
  m.attr("MIN_TEMPERATURE") = lkjam::kMinTemperature;

  // name -> (offset, size) of each block of the feature vector.
  py::dict layout;
  layout["role"] = py::make_tuple(lkjam::kOffRole, lkjam::kRoles);
  layout["shift"] = py::make_tuple(lkjam::kOffShift, lkjam::kShiftBins);
  layout["pitch"] = py::make_tuple(lkjam::kOffPitch, lkjam::kPitches);
  layout["velocity"] = py::make_tuple(lkjam::kOffVelocity, lkjam::kVelocityBins);
  layout["duration"] = py::make_tuple(lkjam::kOffDuration, lkjam::kDurationBins + 1);
  layout["sounding_input"] = py::make_tuple(lkjam::kOffSoundingInput, lkjam::kPitchClasses);
  layout["sounding_ai"] = py::make_tuple(lkjam::kOffSoundingAi, lkjam::kPitchClasses);
  layout["mode"] = py::make_tuple(lkjam::kOffMode, lkjam::kModes);
  layout["density"] = py::make_tuple(lkjam::kOffDensity, 1);
  layout["voices"] = py::make_tuple(lkjam::kOffVoices, 1);
  layout["energy"] = py::make_tuple(lkjam::kOffEnergy, lkjam::kPitchClasses);
  layout["scale"] = py::make_tuple(lkjam::kOffScale, lkjam::kPitchClasses);
  layout["scale_known"] = py::make_tuple(lkjam::kOffScaleKnown, 1);
  layout["phase"] = py::make_tuple(lkjam::kOffPhase, 4);
  m.attr("FEATURE_LAYOUT") = layout;

  py::dict topologies;
  for (const auto& t : kTopologies) {
    py::dict sizes;
    sizes["features"] = lkjam::kFeatures;
    sizes["hidden"] = t.hidden;
    sizes["layers"] = t.layers;
    for (int h = 0; h < lkjam::kHeads; ++h) sizes[lkjam::kHeadNames[h]] = lkjam::kHeadSizes[h];
    topologies[t.name] = sizes;
  }
  m.attr("TOPOLOGIES") = topologies;

  m.def(
      "shift_bin",
      [](double beats) {
        if (std::isnan(beats)) fail("beats must not be NaN");
        return lkjam::shift_bin(beats);
      },
      py::arg("beats"), "Time-shift bin (0..175) of a shift in beats: nearest value, ties up.");
  m.def(
      "duration_bin",
      [](double beats) {
        if (std::isnan(beats)) fail("beats must not be NaN");
        return lkjam::duration_bin(beats);
      },
      py::arg("beats"), "Duration bin (0..27), nearest in log space; DURATION_UNKNOWN if <= 0.");
  m.def(
      "velocity_bin",
      [](int vel) {
        if (vel < 0) fail("vel must be >= 0 (got " + std::to_string(vel) + ")");
        return lkjam::velocity_bin(vel);
      },
      py::arg("vel"), "Velocity bin (0..15): min(vel, 127) // 8.");
  m.def("encode", &encode, py::arg("events"), py::arg("numerator") = 4, py::arg("denominator") = 4,
        py::arg("scale_root") = -1, py::arg("scale_intervals") = std::vector<int>{},
        py::arg("conditioning") = py::none(),
        "Features (N, FEATURES) float32 of a sorted EVENT_DTYPE array, from a reset state; "
        "conditioning: (N, 3) rows of (mode, density, voices) set before each event.");
  m.def("targets", &targets, py::arg("events"),
        "Training targets: the next AI event after each event (dict of int64 arrays, -1 = none).");

  py::class_<lkjam::Prediction>(m, "Prediction")
      .def_readonly("wait", &lkjam::Prediction::wait)
      .def_readonly("shift", &lkjam::Prediction::shift)
      .def_readonly("pitch", &lkjam::Prediction::pitch)
      .def_readonly("velocity", &lkjam::Prediction::velocity)
      .def_readonly("duration", &lkjam::Prediction::duration)
      .def("__repr__", [](const lkjam::Prediction& p) {
        if (p.wait) return std::string("Prediction(wait=True)");
        return "Prediction(wait=False, shift=" + std::to_string(p.shift) +
               ", pitch=" + std::to_string(p.pitch) + ", velocity=" + std::to_string(p.velocity) +
               ", duration=" + std::to_string(p.duration) + ")";
      });

  py::class_<StepState>(m, "StepState", "An opaque copy of a Step's state (get_state/set_state).")
      .def_property_readonly("topology", [](const StepState& s) { return s.topology; });

  py::class_<Step>(m, "Step")
      .def(py::init<const std::string&, const py::dict&>(), py::arg("topology"), py::arg("weights"))
      .def_property_readonly("topology", &Step::topology)
      .def("reset", &Step::reset, "Forget the stream and the hidden state (meter, scale kept).")
      .def("seed", &Step::seed, py::arg("seed"))
      .def("set_meter", &Step::set_meter, py::arg("numerator"), py::arg("denominator"))
      .def("set_scale", &Step::set_scale, py::arg("root"), py::arg("intervals"))
      .def("clear_scale", &Step::clear_scale)
      .def("set_conditioning", &Step::set_conditioning, py::arg("mode"), py::arg("density"),
           py::arg("voices"),
           "What the AI is asked to do from the next fed event: mode (MODE_*), AI onsets per "
           "beat, AI notes per onset time.")
      .def("set_pitch_mask", &Step::set_pitch_mask, py::arg("mask"))
      .def("feed", &Step::feed, py::arg("beat"), py::arg("role"), py::arg("pitch"),
           py::arg("velocity"), py::arg("duration"))
      .def("note_off", &Step::note_off, py::arg("role"), py::arg("pitch"), py::arg("beat"))
      .def("predict", &Step::predict, py::arg("temperature") = 1.0, py::arg("top_p") = 0.95,
           py::arg("wait_bias") = 0.0,
           "Samples the next AI event without changing the state. temperature < "
           "MIN_TEMPERATURE (0 included) is greedy.")
      .def("sample_pitch", &Step::sample_pitch, py::arg("temperature"), py::arg("top_p"),
           py::arg("allowed"),
           "Sample the pitch head again among `allowed` (bool (128,)); the state is unchanged.")
      .def("sounding", &Step::sounding, py::arg("beat"),
           "(human and clip, ai) pitch classes sounding at `beat`, as 12-bit sets.")
      .def("human_until", &Step::human_until, py::arg("beat"),
           "The beat until which the human's notes sounding at `beat` last (inf: held).")
      .def("logits", &Step::logits)
      .def("feed_batch", &Step::feed_batch, py::arg("events"), py::arg("conditioning") = py::none())
      .def("get_state", &Step::get_state)
      .def("set_state", &Step::set_state, py::arg("state"));
}
