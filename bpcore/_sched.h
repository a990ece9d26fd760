/* Work sharing inside one OpenMP region without barriers, tolerant of a thread
 * the operating system takes off its core.
 *
 * An epoch is a sequence of *pieces* numbered by *tickets*, in *phases* (per
 * mini-batch: blocks of examples, units of each layer, rows of W; the cuts are
 * Schedule's, in _kernels.pyx).  Each phase's pieces are cut into one range of
 * *home* pieces per member (bp_claimed below).  A thread claims its next home
 * piece, else one of another member's not yet claimed, waits until every piece
 * of the previous phase is complete (a counter of completed pieces: pieces
 * complete phase by phase, so "completed >= first ticket of my phase" says the
 * previous phase is done), does its piece and counts it complete.  There is no
 * barrier: a thread that is not running claims nothing, and the running ones
 * do its pieces.
 *
 * What remains is a thread descheduled *while it holds a piece*: the others
 * finish everything else and then wait for it, for as long as the scheduler
 * keeps it off (a time slice, milliseconds, where a small network's step takes
 * tens of microseconds).  A waiter that has waited far longer than the held
 * piece should take (its own measured speed, times the piece's work, times 4,
 * plus BP_SLACK_NS) *excludes* the holder: an excluded thread finishes the piece
 * it holds but takes no ticket until its exclusion ends.  The first exclusion
 * lasts BP_EXCLUDE_FIRST times the wait it caused; one that follows soon after
 * the thread's last exclusion ended (within BP_REPEAT_WINDOW times that one's
 * length) lasts twice as long as that one, up to BP_EXCLUDE_FACTOR times its own
 * wait.  A thread that keeps losing its core (another process on it) thus soon
 * spends most of the time out of the way, at a cost of one wait per exclusion,
 * while one that lost it once (the host's hiccup of a virtual CPU, a page fault)
 * is out for a few times that wait, not for tens of mini-batches.
 *
 * A thread running alone (every other member excluded, or holding no ticket for
 * BP_IDLE_NS: descheduled between pieces, or not started yet) would still work on
 * pieces cut for the whole team, each paying its own hand-over.  So it claims a
 * *run*: the rest of a member's range and of the ranges after it nobody has
 * started, or as many pieces as its own speed says fit in BP_MERGE_NS and before
 * the earliest end of an exclusion, each range taken at once by a compare-and-swap
 * of its claim word (a thread that claimed meanwhile makes it fail, and the run
 * ends there), and runs them as one piece: consecutive blocks of examples as one
 * block, consecutive units or rows of a layer as one chunk.  A thread that comes
 * back meanwhile claims what is left and waits for the run as for any piece.
 *
 * Which thread computes a piece never changes a result (each number is computed
 * by one piece, in an order fixed by the data: see _gemm.h), so neither the
 * thread count nor the exclusions change the trained weights; nor do runs: the
 * products' sums do not depend on how their rows are blocked.
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
#if defined(__linux__)
#include <sched.h>  /* CPU_SET and sched_setaffinity: Python.h defines _GNU_SOURCE */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__linux__) && defined(SYS_futex) && defined(FUTEX_WAIT_PRIVATE)
#define BP_CAN_SLEEP 1
#endif
#if defined(__linux__) && defined(CPU_SET) && defined(CPU_EQUAL) && defined(CPU_COUNT)
#define BP_CAN_PIN 1
typedef cpu_set_t bp_cpuset;
#else
typedef struct { int unused; } bp_cpuset;
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BP_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define BP_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define BP_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define BP_STORE_SC(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define BP_LOAD_SC(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define BP_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define BP_CAS(p, expected, desired) bp_cas_((p), (expected), (desired))
static inline int bp_cas_(long long *p, long long expected, long long desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
#define BP_ADD_RELEASE(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#if defined(__x86_64__) || defined(__i386__)
#define BP_PAUSE() __builtin_ia32_pause()
#else
#define BP_PAUSE() ((void)0)
#endif
#define BP_ALIGNED_LINE __attribute__((aligned(64)))
#define BP_STORE_INT_SC(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
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
#define BP_CAS(p, expected, desired) \
    (_InterlockedCompareExchange64((volatile long long *)(p), (desired), (expected)) == (expected))
#define BP_ADD_RELEASE(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#define BP_PAUSE() _mm_pause()
#define BP_ALIGNED_LINE __declspec(align(64))
#define BP_STORE_INT_SC(p, v) _InterlockedExchange((volatile long *)(p), (v))
#else
#error "bpcore/_sched.h needs GCC, Clang or MSVC atomics"
#endif

/* The most threads a team may have (python/_threads.py caps num_threads at it). */
#define BP_MAX_TEAM 1024
/* An exclusion lasts this many times the wait it caused, the first ... */
#define BP_EXCLUDE_FIRST 2
/* ... and, doubling with each one that follows within BP_REPEAT_WINDOW times the
 * length of the one before, at most this many times. */
#define BP_EXCLUDE_FACTOR 32
#define BP_REPEAT_WINDOW 4
/* A holder is flagged once the wait exceeds 4x the piece's expected time plus this:
 * more than the host's sub-millisecond hiccups of a virtual CPU, less than the
 * scheduler's slice of a core shared with another process (milliseconds). */
#define BP_SLACK_NS 250000LL
/* What team memory keeps per thread (bp_team_init, bp_team_save). */
#define BP_TEAM_MEMORY 4
/* How long an excluded thread sleeps between looks at the team where it cannot
 * sleep until woken (or while the wait that excludes it still goes on). */
#define BP_NAP_NS 50000L
/* A member that has held no ticket for this long counts as not running. */
#define BP_IDLE_NS 20000LL
/* A lone thread's run of pieces is expected to take at most this long (a thread
 * coming back waits for it at most about this). */
#define BP_MERGE_NS 1000000LL
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
    bp_ns last_end;            /* when its exclusion before the current one ended (0: none) */
    bp_ns last_out;            /* how long its last exclusion lasted (0: none yet) */
    double ns_per_work[2];     /* its own recent speed per phase kind (0 = not measured) */
    bp_ns released;            /* when it last gave up a ticket (or the call started) */
    long long pieces;          /* pieces it completed in this call */
    long long claimed;         /* its home pieces of the newest phase claimed (bp_claimed) */
    long long runs;            /* how many times it took work: one piece or a run */
} bp_member;

typedef struct {
    BP_ALIGNED_LINE long long next;      /* next ticket to hand out */
    BP_ALIGNED_LINE long long completed; /* pieces completed */
    BP_ALIGNED_LINE long long stopping;  /* 1 once a stop was asked for */
    long long ready;                     /* 1 once thread 0 has cut the epoch */
    BP_ALIGNED_LINE int done;            /* 1 once every piece to be done is complete */
    long long stop_at;                   /* tickets from here on are not done; -1 unknown */
    long long exclusions;                /* how many times a thread was excluded */
    int pin;                             /* 1: each thread runs on its own CPU of `cpus` */
    bp_cpuset cpus;
    bp_member member[BP_MAX_TEAM];
} bp_team;

/* A new team for one call; `memory` (BP_TEAM_MEMORY doubles per thread, or NULL)
 * carries each thread's speed estimates, the end of its exclusion and that
 * exclusion's length from the network's previous call, so that a thread the host
 * keeps slow is not given a fresh chance every epoch. */
static inline void bp_team_init(bp_team *team, int nt, const double *memory) {
    bp_ns now = bp_now();
    team->next = 0;
    team->completed = 0;
    team->stopping = 0;
    team->ready = 0;
    team->done = 0;
    team->stop_at = -1;
    team->exclusions = 0;
    for (int t = 0; t < nt; t++) {
        team->member[t].ticket = -1;
        team->member[t].since = 0;
        team->member[t].work = 0;
        const double *mem = memory ? memory + BP_TEAM_MEMORY * t : NULL;
        team->member[t].ns_per_work[0] = mem ? mem[0] : 0;
        team->member[t].ns_per_work[1] = mem ? mem[1] : 0;
        team->member[t].excluded_until = mem ? (bp_ns)mem[2] : 0;
        team->member[t].last_end = 0;
        team->member[t].last_out = mem ? (bp_ns)mem[3] : 0;
        team->member[t].released = now;
        team->member[t].pieces = 0;
        team->member[t].runs = 0;
    }
}

/* What the next call's bp_team_init reads back. */
static inline void bp_team_save(const bp_team *team, int nt, double *memory) {
    for (int t = 0; t < nt; t++) {
        bp_ns until = team->member[t].excluded_until;
        double *mem = memory + BP_TEAM_MEMORY * t;
        mem[0] = team->member[t].ns_per_work[0];
        mem[1] = team->member[t].ns_per_work[1];
        mem[2] = (double)(until == BP_FURTHER_NOTICE ? 0 : until);
        mem[3] = (double)team->member[t].last_out;
    }
}

/* An excluded thread's sleep: until bp_wake_all (the epoch is done) or for `ns`,
 * whichever comes first (it may also return early).  Sleeping rather than napping
 * in short naps matters: each wake-up of a nap loop on the core of the thread
 * that works takes that core from it (a timer, a context switch, and in a
 * virtual machine exits to the host), thousands of times an epoch. */
static inline void bp_sleep(bp_team *team, bp_ns ns) {
#ifdef BP_CAN_SLEEP
    struct timespec t;
    if (ns > 1000000000LL)
        ns = 1000000000LL;
    t.tv_sec = (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    syscall(SYS_futex, &team->done, FUTEX_WAIT_PRIVATE, 0, &t, NULL, 0);
#else
    (void)team;
    bp_nap(ns < BP_NAP_NS ? (long)ns : BP_NAP_NS);
#endif
}

/* Every piece to be done is complete: wake the sleepers (called at most a few
 * times per call, by whoever sees it). */
static inline void bp_wake_all(bp_team *team) {
    BP_STORE_INT_SC(&team->done, 1);
#ifdef BP_CAN_SLEEP
    syscall(SYS_futex, &team->done, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
}

/* Home pieces.  Each phase's pieces are cut into one contiguous range per member
 * of the team the epoch was cut for (its *home* pieces: the same units of each
 * layer in every phase and mini-batch, so that a thread keeps finding its rows of
 * W, their optimizer state and its units' z, a and delta in its own cache).  A
 * thread claims its own home pieces first, then those another member has not
 * claimed yet (a thread the host keeps off its core claims none, and the others
 * do them).  A member's claim word holds the phase (its first ticket + 1) and how
 * many of its home pieces of that phase are claimed; a thread moves on to the next
 * phase only once every range of the phase is claimed, so a word that shows a
 * later phase means "all claimed" for every phase before that one (a thread back
 * from an exclusion goes straight there). */
#define BP_CLAIM_BITS 20
#define BP_CLAIM_MASK ((1LL << BP_CLAIM_BITS) - 1)

/* Home pieces of the phase starting at ticket `first` already claimed, per word
 * `w`; -1 if the word is past that phase. */
static inline long long bp_claimed(long long w, long long first) {
    long long phase = w >> BP_CLAIM_BITS;
    if (phase > first + 1)
        return -1;
    return phase == first + 1 ? (w & BP_CLAIM_MASK) : 0;
}

static inline long long bp_claim_word(long long first, long long claimed) {
    return ((first + 1) << BP_CLAIM_BITS) | claimed;
}

/* Called by thread `me` before it takes work: 0 if another member may be running
 * (it holds a ticket, or gave one up less than BP_IDLE_NS ago, and is not
 * excluded), else how long a run of pieces may take: BP_MERGE_NS, or less if an
 * exclusion ends sooner.  Stops at the first member that may be running. */
static inline bp_ns bp_alone(const bp_team *team, int nt, int me, bp_ns now) {
    bp_ns horizon = BP_MERGE_NS;
    for (int h = 0; h < nt; h++) {
        const bp_member *m = &team->member[h];
        bp_ns until;
        if (h == me)
            continue;
        until = BP_LOAD_RELAXED(&m->excluded_until);
        if (until > now) {
            if (until - now < horizon)
                horizon = until - now;
            continue;
        }
        /* ticket first: its owner stores `released` before it gives the ticket up */
        if (BP_LOAD(&m->ticket) >= 0 || now - BP_LOAD_RELAXED(&m->released) < BP_IDLE_NS)
            return 0;
    }
    return horizon;
}

/* Pinning.  A team of as many threads as its calling thread has CPUs to run on
 * pins each thread to one of them for the call (and gives each its own mask
 * back afterwards), so that the host cannot move the thread that has the work
 * onto the core another process keeps busy, nor wake an excluded thread on the
 * core of the one that works.  Narrower or wider masks, or a thread whose mask
 * differs from the calling thread's (an OpenMP binding of its own), are left
 * alone.  Thread 0 plans, before the team starts; `want` 0 never pins. */
static inline void bp_pin_plan(bp_team *team, int nt, int want) {
    team->pin = 0;
#ifdef BP_CAN_PIN
    if (want && nt > 1 && sched_getaffinity(0, sizeof team->cpus, &team->cpus) == 0
        && CPU_COUNT(&team->cpus) == nt)
        team->pin = 1;
#else
    (void)nt; (void)want;
#endif
}

/* Pin the calling thread (`tid` of the team) to its CPU; 1 if it did, its mask
 * before in *saved for bp_unpin. */
static inline int bp_pin(const bp_team *team, int tid, bp_cpuset *saved) {
#ifdef BP_CAN_PIN
    int seen = 0;
    if (!team->pin || sched_getaffinity(0, sizeof *saved, saved) != 0
        || !CPU_EQUAL(saved, &team->cpus))
        return 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &team->cpus) && seen++ == tid) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            return sched_setaffinity(0, sizeof one, &one) == 0;
        }
#else
    (void)team; (void)tid; (void)saved;
#endif
    return 0;
}

static inline void bp_unpin(const bp_cpuset *saved) {
#ifdef BP_CAN_PIN
    sched_setaffinity(0, sizeof *saved, saved);
#else
    (void)saved;
#endif
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
        bp_ns until = BP_LOAD_RELAXED(&m->excluded_until);
        if (now - from > expect && until != BP_FURTHER_NOTICE) {
            /* bp_end_exclusions sets the real end once the wait is over */
            m->last_end = until;  /* its last exclusion's end (0 or past: not excluded) */
            BP_STORE(&m->excluded_until, BP_FURTHER_NOTICE);
            team->exclusions++;  /* statistics only: a lost increment does no harm */
            any = 1;
        }
    }
    return any;
}

/* How long a holder whose last exclusion lasted `last_out` and ended at `last_end`
 * (0: none) stays out for a wait of `waited` ns that ended at `now`: BP_EXCLUDE_FIRST
 * times the wait; twice the last exclusion if this one follows it within
 * BP_REPEAT_WINDOW times its length, between those bounds and BP_EXCLUDE_FACTOR
 * times the wait; at most one second. */
static inline bp_ns bp_exclusion_length(bp_ns waited, bp_ns now, bp_ns last_end,
                                        bp_ns last_out) {
    bp_ns out = waited * BP_EXCLUDE_FIRST;
    if (last_out > 0 && last_end > 0 && now - last_end < BP_REPEAT_WINDOW * last_out) {
        bp_ns most = waited * BP_EXCLUDE_FACTOR;
        out = 2 * last_out < out ? out : 2 * last_out > most ? most : 2 * last_out;
    }
    return out > 1000000000LL ? 1000000000LL : out;
}

/* The wait of `waiter` is over after `waited` ns: the end of the holders' exclusions
 * that it caused (bp_exclusion_length). */
static inline void bp_end_exclusions(bp_team *team, int nt, int waiter, bp_ns now, bp_ns waited) {
    for (int h = 0; h < nt; h++) {
        bp_member *m = &team->member[h];
        if (h != waiter && BP_LOAD_RELAXED(&m->excluded_until) == BP_FURTHER_NOTICE) {
            bp_ns out = bp_exclusion_length(waited, now, m->last_end, m->last_out);
            m->last_out = out;
            BP_STORE(&m->excluded_until, now + out);
        }
    }
}

#endif
