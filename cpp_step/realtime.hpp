// The real-time contract of the step, in one place.
//
// LKJAM_REALTIME marks a function the engine calls on its real-time path (feed, predict,
// note_off, set_conditioning, set_pitch_mask) and everything those call. Such a function
// makes no heap allocation, takes no lock, makes no system call and throws no exception; it
// works in memory allocated when the step was built and on its own stack.
//
// The macro expands to `noexcept`, so the compiler holds the last promise (a throw would
// terminate, and model.hpp static_asserts that the interface is noexcept). Allocation is
// checked by tests/test_step_alloc.py, which counts heap allocations over 10^6 real-time
// calls, and memory errors and undefined behaviour by CI's sanitizer run of the step tests
// (cpp_step/tests/sanitize.sh: AddressSanitizer + UndefinedBehaviorSanitizer). Locks and
// system calls are not checked by a tool: GCC has no RealtimeSanitizer (Clang 20's
// -fsanitize=realtime with [[clang::nonblocking]] on these functions would be the way).
//
// Validation is not part of a real-time function: every input is checked at the boundary
// (step_module.cpp) before it arrives, and what remains (NaN, overflow) is clamped.
#pragma once

#define LKJAM_REALTIME noexcept
