/* OpenMP queries and the barrier, with serial stand-ins when the extension is
 * built without OpenMP (the build's probe failed or BPCORE_DISABLE_OPENMP=1).
 *
 * Cython has no barrier statement; an orphaned `omp barrier` in a function
 * called from inside a `parallel()` block binds to that enclosing region, which
 * lets each training phase be a plain function over a thread's own range.
 */
#ifndef BPCORE_OMP_H
#define BPCORE_OMP_H

#include <time.h>

#ifdef _OPENMP
#include <omp.h>
static inline int bp_openmp_enabled(void) { return 1; }
static inline int bp_openmp_version(void) { return _OPENMP; }
static inline int bp_thread_num(void) { return omp_get_thread_num(); }
static inline int bp_team_size(void) { return omp_get_num_threads(); }
static inline int bp_max_threads(void) { return omp_get_max_threads(); }
static inline void bp_barrier(void) {
    _Pragma("omp barrier")
}
#else
static inline int bp_openmp_enabled(void) { return 0; }
static inline int bp_openmp_version(void) { return 0; }
static inline int bp_thread_num(void) { return 0; }
static inline int bp_team_size(void) { return 1; }
static inline int bp_max_threads(void) { return 1; }
static inline void bp_barrier(void) {}
#endif

/* Wall-clock seconds from an arbitrary origin. */
static inline double bp_seconds(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#ifndef BPCORE_COMPILE_ARGS
#define BPCORE_COMPILE_ARGS "unknown"
#endif
#ifndef BPCORE_OPENMP_REASON
#define BPCORE_OPENMP_REASON "unknown"
#endif
#ifdef __VERSION__
#define BPCORE_COMPILER __VERSION__
#elif defined(_MSC_VER)
#define BPCORE_COMPILER "MSVC"
#else
#define BPCORE_COMPILER "unknown"
#endif
static const char *bp_compile_args = BPCORE_COMPILE_ARGS;
static const char *bp_openmp_reason = BPCORE_OPENMP_REASON;
static const char *bp_compiler = BPCORE_COMPILER;

#endif
