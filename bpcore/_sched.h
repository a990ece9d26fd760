/* Work sharing inside one OpenMP region without barriers, tolerant of a thread
 * the operating system takes off its core.
 *
 * An epoch is a sequence of *pieces* numbered by *tickets*: for each mini-batch,
 * the pieces of phase 1 (blocks of examples) and then those of phase 2 (chunks
 * of rows of W).  A thread takes the next ticket from a shared counter, waits
 * until every piece of the previous phase is complete (a second counter of
 * completed pieces: pieces complete phase by phase, so "completed >= first
 * ticket of my phase" says the previous phase is done), does its piece and
 * counts it complete.  There is no barrier: a thread that is not running takes
 * no ticket, and the running ones take all of them.
 *
 * What remains is a thread descheduled *while it holds a piece*: the others
 * finish everything else and then wait for it, for as long as the scheduler
 * keeps it off (a time slice, milliseconds, where a small network's step takes
 * tens of microseconds).  A waiter that has waited far longer than the held
 * piece should take (its own measured speed, times the piece's work, times 4)
 * *excludes* the holder: an excluded thread finishes the piece it holds but
 * takes no ticket until its exclusion ends, BP_EXCLUDE_FACTOR times as long as
 * the wait it caused.  A thread that keeps losing its core thus spends most of
 * the time out of the way, at a cost of one wait per exclusion; a thread that
 * lost its core once rejoins soon.
 *
 * Which thread computes a piece never changes a result (each number is computed
 * by one piece, in an order fixed by the data: see _gemm.h), so neither the
 * thread count nor the exclusions change the trained weights.
 *
 * Memory order: a piece's writes are published by the release increment of the
 * completed counter and seen by every thread that acquires it before reading
 * them.  Ticket and stop handshakes are sequentially consistent.
 */
#ifndef BPCORE_SCHED_H
#define BPCORE_SCHED_H

#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BP_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define BP_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define BP_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define BP_STORE_SC(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define BP_LOAD_SC(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define BP_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define BP_ADD_RELEASE(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#if defined(__x86_64__) || defined(__i386__)
#define BP_PAUSE() __builtin_ia32_pause()
#else
#define BP_PAUSE() ((void)0)
#endif
#define BP_ALIGNED_LINE __attribute__((aligned(64)))
#elif defined(_MSC_VER)
#include <intrin.h>
/* x86/x64 MSVC: aligned loads and stores are atomic, and volatile accesses are
 * not reordered by the compiler (/volatile:ms); the interlocked add is a full fence. */
#define BP_LOAD(p) (*(volatile long long *)(p))
#define BP_LOAD_RELAXED(p) (*(volatile long long *)(p))
#define BP_LOAD_SC(p) _InterlockedOr64((volatile long long *)(p), 0)
#define BP_STORE(p, v) (*(volatile long long *)(p) = (v))
#define BP_STORE_SC(p, v) _InterlockedExchange64((volatile long long *)(p), (v))
#define BP_FETCH_ADD(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#define BP_ADD_RELEASE(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#define BP_PAUSE() _mm_pause()
#define BP_ALIGNED_LINE __declspec(align(64))
#else
#error "bpcore/_sched.h needs GCC, Clang or MSVC atomics"
#endif

/* The most threads a team may have (python/_threads.py caps num_threads at it). */
#define BP_MAX_TEAM 1024
/* An excluded thread stays out this many times as long as the wait it caused. */
#define BP_EXCLUDE_FACTOR 32
/* A holder is flagged once the wait exceeds 4x the piece's expected time plus this. */
#define BP_SLACK_NS 50000LL
/* How long an excluded thread sleeps between looks at the team. */
#define BP_NAP_NS 50000L
/* excluded_until of a thread excluded by a wait still going on. */
#define BP_FURTHER_NOTICE (1LL << 62)

typedef long long bp_ns;

/* Nanoseconds from an arbitrary origin (a monotonic clock where there is one). */
static inline bp_ns bp_now(void) {
    struct timespec t;
#ifdef CLOCK_MONOTONIC
    clock_gettime(CLOCK_MONOTONIC, &t);
#else
    timespec_get(&t, TIME_UTC);
#endif
    return (bp_ns)t.tv_sec * 1000000000LL + (bp_ns)t.tv_nsec;
}

static inline void bp_nap(long ns) {
#if defined(_WIN32)
    (void)ns;  /* no sub-millisecond sleep: give up the time slice instead */
    SwitchToThread();
#else
    struct timespec t = {0, ns};
    nanosleep(&t, NULL);
#endif
}

/* One thread's slot, alone on its cache line(s): written by its owner, read by waiters. */
typedef struct BP_ALIGNED_LINE {
    long long ticket;          /* the ticket it holds, -1 for none */
    bp_ns since;               /* when it took that ticket */
    long long work;            /* that piece's work (multiply-adds), for the waiter's estimate */
    bp_ns excluded_until;      /* takes no ticket before this time */
    double ns_per_work[2];     /* its own recent speed per phase kind (0 = not measured) */
    long long pieces;          /* pieces it completed in this call */
} bp_member;

typedef struct {
    BP_ALIGNED_LINE long long next;      /* next ticket to hand out */
    BP_ALIGNED_LINE long long completed; /* pieces completed */
    BP_ALIGNED_LINE long long stopping;  /* 1 once a stop was asked for */
    long long stop_at;                   /* tickets from here on are not done; -1 unknown */
    long long exclusions;                /* how many times a thread was excluded */
    bp_member member[BP_MAX_TEAM];
} bp_team;

/* A new team for one call; `memory` (3 doubles per thread, or NULL) carries each
 * thread's speed estimates and exclusion from the network's previous call, so that
 * a thread the host keeps slow is not given a fresh chance every epoch. */
static inline void bp_team_init(bp_team *team, int nt, const double *memory) {
    team->next = 0;
    team->completed = 0;
    team->stopping = 0;
    team->stop_at = -1;
    team->exclusions = 0;
    for (int t = 0; t < nt; t++) {
        team->member[t].ticket = -1;
        team->member[t].since = 0;
        team->member[t].work = 0;
        team->member[t].ns_per_work[0] = memory ? memory[3 * t] : 0;
        team->member[t].ns_per_work[1] = memory ? memory[3 * t + 1] : 0;
        team->member[t].excluded_until = memory ? (bp_ns)memory[3 * t + 2] : 0;
        team->member[t].pieces = 0;
    }
}

/* What the next call's bp_team_init reads back. */
static inline void bp_team_save(const bp_team *team, int nt, double *memory) {
    for (int t = 0; t < nt; t++) {
        bp_ns until = team->member[t].excluded_until;
        memory[3 * t] = team->member[t].ns_per_work[0];
        memory[3 * t + 1] = team->member[t].ns_per_work[1];
        memory[3 * t + 2] = (double)(until == BP_FURTHER_NOTICE ? 0 : until);
    }
}

/* Record the duration of a piece of `work` multiply-adds of phase kind `kind`
 * in the owner's running estimate (a spike, e.g. its own descheduling, counts
 * at most twice the estimate). */
static inline void bp_learn_speed(bp_member *me, int kind, bp_ns took, long long work) {
    if (work <= 0)
        return;
    double rate = (double)took / (double)work, old = me->ns_per_work[kind];
    if (old > 0 && rate > 2 * old)
        rate = 2 * old;
    me->ns_per_work[kind] = old > 0 ? 0.75 * old + 0.25 * rate : rate;
}

/* Called by `waiter` (which holds ticket `mine` and has waited since `wait_start`
 * for the pieces below `need`): exclude every holder of such a piece that has kept
 * it far longer than its work should take at the waiter's speed.  Returns 1 if it
 * excluded one. */
static inline int bp_exclude_slow(bp_team *team, int nt, int waiter, int kind,
                                  long long need, bp_ns wait_start, bp_ns now) {
    double speed = team->member[waiter].ns_per_work[kind];
    int any = 0;
    if (speed <= 0)
        return 0;  /* no estimate yet: never exclude on a guess */
    for (int h = 0; h < nt; h++) {
        bp_member *m = &team->member[h];
        long long held = BP_LOAD_RELAXED(&m->ticket);
        if (h == waiter || held < 0 || held >= need)
            continue;
        bp_ns since = BP_LOAD_RELAXED(&m->since);
        bp_ns from = since > wait_start ? since : wait_start;
        bp_ns expect = (bp_ns)(4.0 * speed * (double)BP_LOAD_RELAXED(&m->work)) + BP_SLACK_NS;
        if (now - from > expect && BP_LOAD_RELAXED(&m->excluded_until) != BP_FURTHER_NOTICE) {
            /* bp_end_exclusions sets the real end once the wait is over */
            BP_STORE(&m->excluded_until, BP_FURTHER_NOTICE);
            team->exclusions++;  /* statistics only: a lost increment does no harm */
            any = 1;
        }
    }
    return any;
}

/* The wait of `waiter` is over after `waited` ns: the holders excluded during it
 * stay out BP_EXCLUDE_FACTOR times as long (at most one second). */
static inline void bp_end_exclusions(bp_team *team, int nt, int waiter, bp_ns now, bp_ns waited) {
    bp_ns out = waited * BP_EXCLUDE_FACTOR;
    if (out > 1000000000LL)
        out = 1000000000LL;
    for (int h = 0; h < nt; h++) {
        bp_member *m = &team->member[h];
        if (h != waiter && BP_LOAD_RELAXED(&m->excluded_until) == BP_FURTHER_NOTICE)
            BP_STORE(&m->excluded_until, now + out);
    }
}

#endif
