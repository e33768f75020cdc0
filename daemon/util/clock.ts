/**
 * The two clocks a daemon reads. The wall clock (`Date.now()`) dates what other machines read:
 * record stamps, `notBefore`, retention. It can jump (NTP stepping it, a VM resumed, an
 * operator setting it) and differs between machines. Every duration this process times on its
 * own, a lease's silence, a deadline, a worker's staleness as seen here, is timed on the
 * monotonic clock instead, which only moves forward at a steady rate: a jump of the wall clock
 * then neither fences a live lease nor takes a live task over nor hides a live worker.
 */

/** Milliseconds on this process's monotonic clock (only differences mean anything). */
export const monotonicNow = (): number => performance.now();
