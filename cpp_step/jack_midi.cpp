// lkjam._jack: lkjam's own JACK MIDI client, one client with an input and an output port.
//
// Why not python-rtmidi's JACK backend: it writes every outgoing message at frame 0 of the
// next period (0..1 period late, unknowably), reads input only by a callback that takes
// the GIL inside JACK's process thread or by polling, and opens one JACK client per port
// (each wakes every period). Here:
// - output carries the time each message is due; the process thread writes it at its exact
//   frame, so a note handed over a little early sounds on time to the sample;
// - input is stamped with its own frame's time and handed to a Python thread that sleeps
//   in poll() until the process thread writes one byte to a pipe (no GIL, no polling);
// - both ports share one client, so one process thread wakes per period.
//
// Times are JACK's clock (jack_get_time) in seconds; lkjam.engine.ports maps them to
// perf_counter. The process thread takes no lock and allocates nothing: messages pass
// through fixed-size single-producer/single-consumer rings. Its one system call is the
// non-blocking pipe write of a cycle that had input, which cannot block.
//
// JACK's C interface is declared below and libjack is opened at run time, so the build
// needs no JACK headers, the wheel links no libjack, and lkjam imports where JACK is not
// installed (`library_error()` says why it cannot be used).
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// ---- JACK's C ABI (jack/types.h, jack/jack.h, jack/midiport.h) --------------------------
using jack_nframes_t = std::uint32_t;
using jack_time_t = std::uint64_t;
struct jack_client_t;
struct jack_port_t;
struct jack_midi_event_t {
  jack_nframes_t time;
  std::size_t size;
  unsigned char* buffer;
};
constexpr int kJackNoStartServer = 0x01;
constexpr unsigned long kJackPortIsInput = 0x1;
constexpr unsigned long kJackPortIsOutput = 0x2;
constexpr const char* kJackMidiType = "8 bit raw midi";

struct JackApi {
  jack_client_t* (*client_open)(const char*, int, int*, ...);
  int (*client_close)(jack_client_t*);
  const char* (*get_client_name)(jack_client_t*);
  int (*set_process_callback)(jack_client_t*, int (*)(jack_nframes_t, void*), void*);
  int (*set_xrun_callback)(jack_client_t*, int (*)(void*), void*);
  void (*on_shutdown)(jack_client_t*, void (*)(void*), void*);
  int (*activate)(jack_client_t*);
  int (*deactivate)(jack_client_t*);
  jack_port_t* (*port_register)(jack_client_t*, const char*, const char*, unsigned long,
                                unsigned long);
  void* (*port_get_buffer)(jack_port_t*, jack_nframes_t);
  const char* (*port_name)(const jack_port_t*);
  jack_nframes_t (*get_buffer_size)(jack_client_t*);
  jack_nframes_t (*get_sample_rate)(jack_client_t*);
  jack_nframes_t (*last_frame_time)(const jack_client_t*);
  jack_time_t (*get_time)();
  std::uint32_t (*midi_get_event_count)(void*);
  int (*midi_event_get)(jack_midi_event_t*, void*, std::uint32_t);
  void (*midi_clear_buffer)(void*);
  int (*midi_event_write)(void*, jack_nframes_t, const unsigned char*, std::size_t);
  int (*connect)(jack_client_t*, const char*, const char*);
  const char** (*get_ports)(jack_client_t*, const char*, const char*, unsigned long);
  void (*free)(void*);
};

// libjack, opened once; `error` is empty when every symbol was found.
struct JackLibrary {
  JackApi api{};
  std::string error;

  JackLibrary() {
    void* handle = nullptr;
    for (const char* name : {"libjack.so.0", "libjack.0.dylib"}) {
      if ((handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    }
    if (handle == nullptr) {
      error = "the JACK library (libjack.so.0) is not installed";
      return;
    }
    bind(handle, api.client_open, "jack_client_open");
    bind(handle, api.client_close, "jack_client_close");
    bind(handle, api.get_client_name, "jack_get_client_name");
    bind(handle, api.set_process_callback, "jack_set_process_callback");
    bind(handle, api.set_xrun_callback, "jack_set_xrun_callback");
    bind(handle, api.on_shutdown, "jack_on_shutdown");
    bind(handle, api.activate, "jack_activate");
    bind(handle, api.deactivate, "jack_deactivate");
    bind(handle, api.port_register, "jack_port_register");
    bind(handle, api.port_get_buffer, "jack_port_get_buffer");
    bind(handle, api.port_name, "jack_port_name");
    bind(handle, api.get_buffer_size, "jack_get_buffer_size");
    bind(handle, api.get_sample_rate, "jack_get_sample_rate");
    bind(handle, api.last_frame_time, "jack_last_frame_time");
    bind(handle, api.get_time, "jack_get_time");
    bind(handle, api.midi_get_event_count, "jack_midi_get_event_count");
    bind(handle, api.midi_event_get, "jack_midi_event_get");
    bind(handle, api.midi_clear_buffer, "jack_midi_clear_buffer");
    bind(handle, api.midi_event_write, "jack_midi_event_write");
    bind(handle, api.connect, "jack_connect");
    bind(handle, api.get_ports, "jack_get_ports");
    bind(handle, api.free, "jack_free");
  }

  template <class Fn>
  void bind(void* handle, Fn& fn, const char* symbol) {
    fn = reinterpret_cast<Fn>(dlsym(handle, symbol));
    if (fn == nullptr && error.empty()) error = std::string("libjack has no ") + symbol;
  }
};

const JackLibrary& library() {
  static const JackLibrary lib;  // dlopen once, on first use
  return lib;
}

// ---- the rings ---------------------------------------------------------------------------

// A short MIDI message and its time (JACK clock, s). lkjam reads and writes channel and
// real-time messages only (at most 3 bytes); sysex is not its business.
struct Message {
  double t = 0.0;
  bool at_once = false;  // sent with no time: never counted late
  std::uint8_t size = 0;
  std::array<std::uint8_t, 3> data{};
};
constexpr std::size_t kMaxMessage = 3;

// One producer thread, one consumer thread, no locks: indices only ever grow, each side
// publishes its own with release and reads the other's with acquire.
template <std::size_t N>
class Ring {
  static_assert((N & (N - 1)) == 0, "a power of two");

 public:
  bool push(const Message& m) noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == N) return false;
    slots_[tail & (N - 1)] = m;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  const Message* front() const noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    return &slots_[head & (N - 1)];
  }
  void pop() noexcept {
    head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  std::size_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  std::array<Message, N> slots_{};
  std::atomic<std::size_t> head_{0};
  std::atomic<std::size_t> tail_{0};
};

constexpr std::size_t kInputRing = 4096;   // ~5 s of dense playing with MIDI clock
constexpr std::size_t kOutputRing = 1024;  // the scheduler hands over a few ms at a time
constexpr std::size_t kWakeWindow = 64;    // periods over which cycle_start takes its least
constexpr std::size_t kPeriodRecall = 32;  // a period's input events kept to spot a stale copy

// An input event as JACK gave it: the frame within its period and the bytes.
struct FramedMessage {
  jack_nframes_t frame = 0;
  std::uint8_t size = 0;
  std::array<std::uint8_t, 3> data{};
  bool operator==(const FramedMessage& o) const noexcept {
    return frame == o.frame && size == o.size && data == o.data;
  }
};

// The input events of one period (the first kPeriodRecall of them), without allocating.
class PeriodEvents {
 public:
  void clear() noexcept { count_ = 0; }
  void add(const FramedMessage& m) noexcept {
    if (count_ < kPeriodRecall) events_[count_++] = m;
  }
  bool contains(const FramedMessage& m) const noexcept {
    return std::find(events_.begin(), events_.begin() + count_, m) != events_.begin() + count_;
  }

 private:
  std::array<FramedMessage, kPeriodRecall> events_{};
  std::size_t count_ = 0;
};

// ---- the client --------------------------------------------------------------------------

class JackMidi {
 public:
  JackMidi(const std::string& client_name, const std::string& input, const std::string& output)
      : jack_(library().api) {
    if (!library().error.empty()) throw std::runtime_error(library().error);
    int status = 0;
    client_ = jack_.client_open(client_name.c_str(), kJackNoStartServer, &status);
    if (client_ == nullptr) {
      throw std::runtime_error("cannot open a JACK client (is a JACK server running?), status 0x" +
                               hex(status));
    }
    int fds[2];
    if (pipe(fds) != 0) {
      jack_.client_close(client_);
      throw std::runtime_error("cannot create the input wake-up pipe");
    }
    wake_read_ = fds[0];
    wake_write_ = fds[1];
    for (int fd : fds) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (int fd : fds) fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (!input.empty()) in_ = register_port(input, kJackPortIsInput);
    if (!output.empty()) out_ = register_port(output, kJackPortIsOutput);
    frame_s_ = 1.0 / jack_.get_sample_rate(client_);
    jack_.set_process_callback(client_, &JackMidi::process_thunk, this);
    jack_.set_xrun_callback(client_, &JackMidi::xrun_thunk, this);
    jack_.on_shutdown(client_, &JackMidi::shutdown_thunk, this);
    if (jack_.activate(client_) != 0) {
      close();
      throw std::runtime_error("cannot activate the JACK client");
    }
  }
  ~JackMidi() { close(); }
  JackMidi(const JackMidi&) = delete;
  JackMidi& operator=(const JackMidi&) = delete;

  void close() {
    if (client_ == nullptr) return;
    if (!server_gone_.load()) jack_.deactivate(client_);
    jack_.client_close(client_);
    client_ = nullptr;
    ::close(wake_read_);
    ::close(wake_write_);
  }

  // Input: waits up to timeout_s (GIL released) and returns every message read so far.
  py::list read(double timeout_s) {
    std::vector<Message> got;
    {
      py::gil_scoped_release release;
      if (in_messages_.size() == 0 && client_ != nullptr) {
        pollfd fd{wake_read_, POLLIN, 0};
        poll(&fd, 1, static_cast<int>(std::ceil(std::max(0.0, timeout_s) * 1000)));
      }
      if (client_ != nullptr) {
        std::array<char, 256> sink;
        while (::read(wake_read_, sink.data(), sink.size()) > 0) {
        }
      }
      while (const Message* m = in_messages_.front()) {
        got.push_back(*m);
        in_messages_.pop();
      }
    }
    py::list out;
    for (const Message& m : got) {
      const auto* bytes = reinterpret_cast<const char*>(m.data.data());
      out.append(py::make_tuple(m.t, py::bytes(bytes, m.size)));
    }
    return out;
  }

  // Wake a read() waiting in another thread, which then returns what it has (maybe none).
  void poke() const {
    if (client_ == nullptr) return;
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_write_, &byte, 1);  // full pipe: awake
  }

  // Output: `t` is when the message is due (JACK clock, s); 0 means at once. Messages
  // leave in the order given, so a time earlier than the one before is taken as that one.
  bool send(const py::bytes& message, double t) {
    const std::string data = message;
    if (data.empty() || data.size() > kMaxMessage) {
      throw py::value_error("a MIDI message of 1 to 3 bytes is expected, got " +
                            std::to_string(data.size()));
    }
    require_open();
    if (out_ == nullptr) throw std::runtime_error("this JACK client has no output port");
    Message m;
    m.size = static_cast<std::uint8_t>(data.size());
    std::copy(data.begin(), data.end(), m.data.begin());
    std::lock_guard<std::mutex> lock(send_mutex_);  // Python's threads only, never JACK's
    m.at_once = t <= 0.0;
    m.t = std::max(m.at_once ? now() : t, last_due_);
    if (!out_messages_.push(m)) return false;
    last_due_ = m.t;
    return true;
  }

  double now() const { return static_cast<double>(jack_.get_time()) * 1e-6; }
  std::size_t pending() const { return out_messages_.size(); }
  double period_s() const {
    return client_ == nullptr ? 0.0
                              : static_cast<double>(jack_.get_buffer_size(client_)) /
                                    jack_.get_sample_rate(client_);
  }
  std::string port_name(bool input) const {
    jack_port_t* port = input ? in_ : out_;
    return port == nullptr ? std::string() : std::string(jack_.port_name(port));
  }

  // Every MIDI port of the server that is a source (`outputs`) or a destination.
  std::vector<std::string> ports(bool outputs) const {
    require_open();
    std::vector<std::string> names;
    const char** found = jack_.get_ports(client_, nullptr, kJackMidiType,
                                         outputs ? kJackPortIsOutput : kJackPortIsInput);
    for (const char** name = found; found != nullptr && *name != nullptr; ++name) {
      names.emplace_back(*name);
    }
    if (found != nullptr) jack_.free(found);
    return names;
  }

  void connect(const std::string& source, const std::string& destination) {
    require_open();
    const int error = jack_.connect(client_, source.c_str(), destination.c_str());
    if (error != 0 && error != EEXIST) {
      throw std::runtime_error("cannot connect JACK port '" + source + "' to '" + destination +
                               "'");
    }
  }

  std::atomic<std::uint64_t> dropped_in{0};  // input ring full
  std::atomic<std::uint64_t> late_out{0};    // handed over after the period it was due in
  std::atomic<std::uint64_t> xruns{0};
  std::atomic<std::uint64_t> stale_in{0};  // stale copies of a period's input, not read
  bool server_gone() const { return server_gone_.load(); }

 private:
  void require_open() const {
    if (client_ == nullptr) throw std::runtime_error("the JACK client is closed");
  }

  jack_port_t* register_port(const std::string& name, unsigned long flags) {
    jack_port_t* port = jack_.port_register(client_, name.c_str(), kJackMidiType, flags, 0);
    if (port == nullptr) {
      close();
      throw std::runtime_error("cannot register the JACK port '" + name + "'");
    }
    return port;
  }

  static std::string hex(int value) {
    char text[16];
    std::snprintf(text, sizeof text, "%x", static_cast<unsigned>(value));
    return text;
  }

  // JACK's process thread: no lock, no allocation, no Python.
  int process(jack_nframes_t frames) noexcept {
    const jack_nframes_t first = jack_.last_frame_time(client_);
    // A client that fell behind is run twice in a row, and both runs read the newer
    // cycle's frame time (measured with jackd2's dummy driver under load). When the
    // client upstream fell behind too, the second run reads its stale buffer again.
    const bool rerun = wakes_ > 0 && first == last_first_;
    const double t0 = cycle_start(first);
    if (in_ != nullptr) read_input(jack_.port_get_buffer(in_, frames), t0, rerun);
    if (out_ != nullptr) write_output(jack_.port_get_buffer(out_, frames), frames, t0);
    return 0;
  }

  // When this period's frame 0 is, on the system clock; frame k is k / rate later.
  //
  // A process thread wakes at its period's start or, when the system is late, after it:
  // never before. So the time of frame 0 of the stream (wake-up minus the frames counted
  // so far) is least on a wake-up that came on time, and the least of it over the last
  // kWakeWindow periods is taken. Every client of the server thereby times a period's
  // frames alike, to within how far apart they wake when on time (tens of µs), while a
  // late wake-up moves nothing. JACK's own frame clock (jack_frames_to_time) filters the
  // wake-ups instead: with the dummy driver it wanders several ms from the system clock
  // within seconds (measured), and the engine mixes these times with the system clock's.
  double cycle_start(jack_nframes_t first) noexcept {
    const double wake = static_cast<double>(jack_.get_time()) * 1e-6;
    if (wakes_ > 0) frames_seen_ += static_cast<jack_nframes_t>(first - last_first_);  // wraps
    last_first_ = first;
    origins_[wakes_++ % kWakeWindow] = wake - static_cast<double>(frames_seen_) * frame_s_;
    const auto filled = static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(wakes_, kWakeWindow));
    const double origin = *std::min_element(origins_.begin(), origins_.begin() + filled);
    return origin + static_cast<double>(frames_seen_) * frame_s_;
  }

  // `rerun`: the second run on one frame time, whose events that equal the first run's,
  // byte and frame, are a stale copy (a duplicated clock tick would move the beat count).
  void read_input(void* buffer, double t0, bool rerun) noexcept {
    const std::uint32_t count = jack_.midi_get_event_count(buffer);
    PeriodEvents& last_read = periods_[current_];
    current_ ^= 1U;
    PeriodEvents& read = periods_[current_];
    read.clear();
    bool any = false;
    for (std::uint32_t i = 0; i < count; ++i) {
      jack_midi_event_t event;
      if (jack_.midi_event_get(&event, buffer, i) != 0) continue;
      const unsigned char status = event.size ? event.buffer[0] : 0;
      // sysex (and its continuation) and active sensing are not lkjam's business
      if (event.size == 0 || event.size > kMaxMessage || status == 0xF0 || status == 0xF7 ||
          status == 0xFE) {
        continue;
      }
      Message m;
      m.t = t0 + event.time * frame_s_;
      m.size = static_cast<std::uint8_t>(event.size);
      std::copy(event.buffer, event.buffer + event.size, m.data.begin());
      const FramedMessage framed{event.time, m.size, m.data};
      read.add(framed);
      if (rerun && last_read.contains(framed)) {
        stale_in.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (in_messages_.push(m)) {
        any = true;
      } else {
        dropped_in.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (any) {
      const char byte = 1;
      [[maybe_unused]] const ssize_t n = ::write(wake_write_, &byte, 1);  // full pipe: awake
    }
  }

  void write_output(void* buffer, jack_nframes_t frames, double t0) noexcept {
    jack_.midi_clear_buffer(buffer);
    jack_nframes_t floor = 0;  // JACK wants events in frame order
    while (const Message* m = out_messages_.front()) {
      const double offset = std::floor((m->t - t0) / frame_s_ + 0.5);  // the nearest frame
      if (offset >= frames) break;                                     // due in a later period
      if (offset < -1.0 && !m->at_once) late_out.fetch_add(1, std::memory_order_relaxed);
      const auto frame = std::max(floor, static_cast<jack_nframes_t>(std::max(offset, 0.0)));
      if (jack_.midi_event_write(buffer, frame, m->data.data(), m->size) != 0) break;  // full
      floor = frame;
      out_messages_.pop();
    }
  }

  static int process_thunk(jack_nframes_t frames, void* self) {
    return static_cast<JackMidi*>(self)->process(frames);
  }
  static int xrun_thunk(void* self) {
    static_cast<JackMidi*>(self)->xruns.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  static void shutdown_thunk(void* self) {
    auto* client = static_cast<JackMidi*>(self);
    client->server_gone_.store(true);
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(client->wake_write_, &byte, 1);  // wake read()
  }

  const JackApi& jack_;
  jack_client_t* client_ = nullptr;
  jack_port_t* in_ = nullptr;
  jack_port_t* out_ = nullptr;
  double frame_s_ = 0.0;  // 1 / sample rate
  // cycle_start's state, the process thread's own
  std::array<double, kWakeWindow> origins_{};
  std::uint64_t wakes_ = 0;
  std::uint64_t frames_seen_ = 0;  // since the first period, past the 32-bit counter's wrap
  jack_nframes_t last_first_ = 0;
  // read_input's state, the process thread's own: this period's events and the last's
  std::array<PeriodEvents, 2> periods_{};
  unsigned current_ = 0;
  int wake_read_ = -1;
  int wake_write_ = -1;
  Ring<kInputRing> in_messages_;
  Ring<kOutputRing> out_messages_;
  std::mutex send_mutex_;
  double last_due_ = 0.0;
  std::atomic<bool> server_gone_{false};
};

}  // namespace

PYBIND11_MODULE(_jack, m) {
  m.doc() = "lkjam's JACK MIDI client: frame-exact output, frame-stamped input (see ports.py)";
  m.def(
      "library_error", [] { return library().error; },
      "Why JACK cannot be used here (libjack missing), or '' when it can.");
  py::class_<JackMidi>(m, "JackMidi")
      .def(py::init<const std::string&, const std::string&, const std::string&>(),
           py::arg("client"), py::arg("input") = "", py::arg("output") = "",
           "Open a client with an input and/or an output MIDI port ('' for none) and start it.")
      .def("read", &JackMidi::read, py::arg("timeout_s"),
           "[(t, bytes)] read since the last call; waits up to timeout_s for the first.")
      .def("send", &JackMidi::send, py::arg("message"), py::arg("t") = 0.0,
           "Queue a message due at t (JACK clock s; 0: at once). False when the queue is full.")
      .def("poke", &JackMidi::poke, "Wake a read() waiting in another thread.")
      .def("now", &JackMidi::now, "JACK's clock, in seconds.")
      .def("ports", &JackMidi::ports, py::arg("outputs"),
           "The server's MIDI ports: sources (outputs=True) or destinations.")
      .def("connect", &JackMidi::connect, py::arg("source"), py::arg("destination"))
      .def("close", &JackMidi::close)
      .def_property_readonly("pending", &JackMidi::pending)
      .def_property_readonly("period_s", &JackMidi::period_s)
      .def_property_readonly("input_name", [](const JackMidi& c) { return c.port_name(true); })
      .def_property_readonly("output_name", [](const JackMidi& c) { return c.port_name(false); })
      .def_property_readonly("dropped_in", [](const JackMidi& c) { return c.dropped_in.load(); })
      .def_property_readonly("late_out", [](const JackMidi& c) { return c.late_out.load(); })
      .def_property_readonly("xruns", [](const JackMidi& c) { return c.xruns.load(); })
      .def_property_readonly("stale_in", [](const JackMidi& c) { return c.stale_in.load(); })
      .def_property_readonly("server_gone", &JackMidi::server_gone);
}
