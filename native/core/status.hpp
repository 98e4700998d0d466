// The error funnel of the native side: every failing entry point records its message here and
// returns its status code. Java reads the message with gs_last_error_message() and turns both into
// one GradshapeException (io.gradshape.natives.Natives.check).
#pragma once

#include <exception>
#include <new>
#include <utility>

#include "gradshape.h"

namespace gs {

// Records a printf-style message for the calling thread and returns `status`.
int fail(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Runs `body` (returning a gs_status) and turns any C++ exception into a status, so that nothing
// ever unwinds through the C ABI into the JVM.
template <class Body>
int guarded(const char* where, Body&& body) noexcept {
    try {
        return std::forward<Body>(body)();
    } catch (const std::bad_alloc&) {
        return fail(GS_OUT_OF_MEMORY, "%s: out of host memory", where);
    } catch (const std::exception& e) {
        return fail(GS_INTERNAL, "%s: %s", where, e.what());
    } catch (...) {
        return fail(GS_INTERNAL, "%s: unknown C++ exception", where);
    }
}

}  // namespace gs
