#include "status.hpp"

#include <cstdarg>
#include <cstdio>

namespace {
// Per thread, so that concurrent calls from several JVM threads never see each other's errors.
thread_local char last_error[1024] = "";
}  // namespace

namespace gs {

int fail(int status, const char* format, ...) {
    va_list args;
    va_start(args, format);
    std::vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

}  // namespace gs

extern "C" const char* gs_last_error_message(void) { return last_error; }
