// The copy floor of bench/cpu-side-by-side.sh: memcpy of BYTES from one buffer to another, split in
// contiguous slices over THREADS threads that start and stop together (a barrier on each side of
// every repetition, timed by thread 0). Prints the median over REPS of the traffic, read + write
// bytes (2 x BYTES) per second, in GB/s: the unit of "8 bytes per element" for PGT.
//
//   cc -O2 -pthread copy_bandwidth.c -o copy_bandwidth && ./copy_bandwidth 16777216 2 50
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t bytes;
static int threads, reps;
static char *src, *dst;
static pthread_barrier_t barrier;
static double *seconds;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

static void *work(void *arg) {
    const size_t id = (size_t) arg;
    // 64-byte aligned slice boundaries, the last slice taking the rest.
    const size_t begin = bytes * id / (size_t) threads / 64 * 64;
    const size_t end = id + 1 == (size_t) threads ? bytes : bytes * (id + 1) / (size_t) threads / 64 * 64;
    for (int r = 0; r < reps; ++r) {
        pthread_barrier_wait(&barrier);
        const double t0 = now();
        memcpy(dst + begin, src + begin, end - begin);
        pthread_barrier_wait(&barrier);
        if (id == 0) seconds[r] = now() - t0;
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4 || (bytes = strtoull(argv[1], NULL, 10)) == 0 || (threads = atoi(argv[2])) < 1 ||
        (reps = atoi(argv[3])) < 1) {
        fprintf(stderr, "usage: %s BYTES THREADS REPS\n", argv[0]);
        return 2;
    }
    src = aligned_alloc(64, (bytes + 63) / 64 * 64);
    dst = aligned_alloc(64, (bytes + 63) / 64 * 64);
    seconds = calloc((size_t) reps, sizeof *seconds);
    if (!src || !dst || !seconds) {
        fprintf(stderr, "%s: out of memory for %zu bytes\n", argv[0], bytes);
        return 1;
    }
    // Touch every page first: the first write to fresh pages costs far more than the copy.
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    pthread_barrier_init(&barrier, NULL, (unsigned) threads);
    pthread_t *pool = calloc((size_t) threads, sizeof *pool);
    for (int t = 1; t < threads; ++t) pthread_create(&pool[t], NULL, work, (void *) (size_t) t);
    work((void *) 0);
    for (int t = 1; t < threads; ++t) pthread_join(pool[t], NULL);
    qsort(seconds, (size_t) reps, sizeof *seconds, by_value);
    printf("%.3f\n", 2e-9 * (double) bytes / seconds[reps / 2]);
    return 0;
}
