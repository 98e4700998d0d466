// F9: what the launchers ask the runtime about a device (attributes, a kernel's shared-memory limit,
// occupancy) depends only on the device and the kernel configuration, so it is asked once per
// device and kept for the life of the process instead of on every call. (A cudaDeviceReset by the
// host program drops a kernel's raised shared-memory limit; the launch then fails loudly with
// cudaErrorInvalidValue rather than running wrongly.)
#pragma once

#include <map>
#include <mutex>
#include <tuple>

#include "cuda_check.cuh"

namespace gs {

// The value of query(&v) for (the current device, what, a, b): computed on the first call, a failed
// query is not kept (the next call asks again). Each call site (Query type) has its own table.
template <class Query>
int cached_on_device(const void* what, long long a, long long b, int* value, Query query) {
    using Key = std::tuple<int, const void*, long long, long long>;
    static std::mutex mutex;
    static std::map<Key, int> values;
    int device = 0;
    GS_CUDA_CHECK(cudaGetDevice(&device));
    const Key key{device, what, a, b};
    {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = values.find(key);
        if (it != values.end()) {
            *value = it->second;
            return GS_OK;
        }
    }
    int v = 0;
    if (int st = query(device, &v)) return st;
    std::lock_guard<std::mutex> lock(mutex);
    values.emplace(key, v);
    *value = v;
    return GS_OK;
}

inline int cached_device_attribute(cudaDeviceAttr attr, int* value) {
    return cached_on_device(nullptr, attr, 0, value, [attr](int device, int* v) -> int {
        GS_CUDA_CHECK(cudaDeviceGetAttribute(v, attr, device));
        return GS_OK;
    });
}

}  // namespace gs
