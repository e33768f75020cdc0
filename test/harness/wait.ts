// Condition-based waiting for tests. Tests wait on observable state, never on the clock:
// a fixed sleep is either too short on a loaded 2-core CI box or wastes time everywhere else.

export interface WaitForOptions {
  /** Shown in the timeout error so a failing test says what it was waiting for. */
  name: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Polls `cond` until it returns a truthy value and resolves with that value.
 * A throwing `cond` counts as "not yet" (e.g. a connect refused while a server restarts);
 * the last error is attached to the timeout error so the real cause is not lost.
 */
export async function waitFor<T>(
  cond: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  opts: WaitForOptions,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  // The monotonic clock: the VM's wall clock can jump (seen in CI: a 20 s wait timed out while
  // the test ran 5 s).
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= deadline) {
      const why = lastError === undefined ? "" : `; last error: ${describe(lastError)}`;
      throw new Error(`waitFor "${opts.name}" timed out after ${timeoutMs}ms${why}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A promise with its settle functions exposed: the latch for "event X happened". */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (err: unknown) => void;
  #settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => {
        this.#settled = true;
        resolve(value);
      };
      this.reject = (err) => {
        this.#settled = true;
        reject(err);
      };
    });
    // A latch that is rejected but never awaited must not crash the test run.
    this.promise.catch(() => {});
  }

  get settled(): boolean {
    return this.#settled;
  }
}

/** Rejects with an Error naming `name` if `p` has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`"${name}" timed out after ${ms}ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * Whether `p` has settled `ms` after now (0: once the callbacks already queued have run). Only
 * to prove that something has NOT happened (false): a test that waits for something to happen
 * awaits it, or uses waitFor.
 */
export async function settledWithin(p: Promise<unknown>, ms = 0): Promise<boolean> {
  let done = false;
  const mark = () => {
    done = true;
  };
  void p.then(mark, mark);
  await new Promise((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));
  return done;
}
