// The real-time contract of the step, in one place.
//
// LKJAM_REALTIME marks a function the engine calls on its real-time path (feed, predict,
// note_off, set_conditioning, set_pitch_mask) and everything those call. Such a function
// makes no heap allocation, takes no lock, makes no system call and throws no exception; it
// reads and writes only memory allocated when the step was built.
//
// The macro expands to `noexcept`, so the compiler holds the last promise (a throw would
// terminate, and model.hpp static_asserts that the interface is noexcept). The others are
// checked by tests: tests/test_step_alloc.py counts heap allocations over 10^6 real-time
// calls, and the sanitizer run in CI (cpp_step/tests/sanitize.sh) runs the step tests with
// AddressSanitizer and UndefinedBehaviorSanitizer.
//
// Validation is not part of a real-time function: every input is checked at the boundary
// (step_module.cpp) before it arrives, and what remains (NaN, overflow) is clamped.
#pragma once

#define LKJAM_REALTIME noexcept
