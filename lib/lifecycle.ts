/**
 * One lifecycle for every long-running part (presence, directory, sweeper, puller, claim loop,
 * servers, the daemon that composes them):
 * - `start()` runs once: a second call throws a LifecycleError (code FAILED_PRECONDITION), it
 *   is never silently idempotent, because a part started twice is a composition bug;
 * - `stop()` is memoized (every caller gets the same promise) and waits for the work in
 *   progress the part registered with `track()`; stop during start waits for the start first;
 * - `closed` resolves once stopped, or rejects with the error the part died of (`die()`); it is
 *   pre-handled, so a part nobody watches does not crash the process with an unhandled rejection;
 * - `Symbol.asyncDispose` stops (`await using part = ...`);
 * - every state change is logged (debug) on a child logger tagged `{ component }`.
 * Parts either extend `Part` or hold a `Lifecycle` and delegate to it.
 */
import type { Logger } from "pino";

export type LifeState = "new" | "starting" | "running" | "stopping" | "stopped" | "failed";

/** A misuse of a lifecycle (a second start). Its `code` is from the MeshError code set. */
export class LifecycleError extends Error {
  override name = "LifecycleError";
  readonly code = "FAILED_PRECONDITION" as const;
  constructor(
    readonly component: string,
    message: string,
  ) {
    super(`${component} ${message}`);
  }
}

/** What every long-running part offers. */
export interface LongRunning extends AsyncDisposable {
  readonly state: LifeState;
  /** Resolves when stopped; rejects with the error the part died of. */
  readonly closed: Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface LifecycleHooks {
  /** Brings the part up; a throw fails the start (the stop hook then cleans up). */
  start?(): Promise<void> | void;
  /** Stops intake and releases resources; tracked work is awaited after it. */
  stop?(): Promise<void> | void;
}

export class Lifecycle {
  readonly log: Logger;
  #state: LifeState = "new";
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #error: unknown;
  #died = false;
  #startFailed = false;
  readonly #work = new Set<Promise<unknown>>();
  readonly #stopSignal = new AbortController();
  readonly closed: Promise<void>;
  #settle!: { resolve: () => void; reject: (err: unknown) => void };

  constructor(
    readonly component: string,
    log: Logger,
    private readonly hooks: LifecycleHooks = {},
  ) {
    this.log = log.child({ component });
    this.closed = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.closed.catch(() => undefined);
  }

  get state(): LifeState {
    return this.#state;
  }

  /** Aborted as soon as the part begins to stop (or dies): hand it to loops and waits. */
  get stopSignal(): AbortSignal {
    return this.#stopSignal.signal;
  }

  /** The error the part died of (or failed to start with), if any. */
  get error(): unknown {
    return this.#error;
  }

  get running(): boolean {
    return this.#state === "running";
  }

  #set(next: LifeState): void {
    this.log.debug({ from: this.#state, to: next }, "state");
    this.#state = next;
  }

  /** Runs the start hook once; a second call throws. */
  start(): Promise<void> {
    if (this.#state !== "new") {
      return Promise.reject(new LifecycleError(this.component, `already ${this.#state}: a part starts once`));
    }
    this.#set("starting");
    this.#starting = (async () => {
      try {
        await this.hooks.start?.();
      } catch (err) {
        this.#error = err;
        this.#died = true;
        this.#startFailed = true;
        await this.stop();
        throw err;
      }
      // A stop asked for during the start has begun already; the start still succeeded.
      if (this.#state === "starting") this.#set("running");
    })();
    return this.#starting;
  }

  /** Memoized: stops intake (the hook), then waits for tracked work. Never rejects. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const wasNew = this.#state === "new";
    this.#stopSignal.abort();
    if (!wasNew) {
      if (this.#state === "starting" && !this.#startFailed) await this.#starting?.catch(() => undefined);
      this.#set("stopping");
      try {
        await this.hooks.stop?.();
      } catch (err) {
        this.log.warn({ err }, "stop step failed");
      }
      await this.idle();
    }
    if (this.#died) {
      this.#set("failed");
      this.#settle.reject(this.#error);
    } else {
      this.#set("stopped");
      this.#settle.resolve();
    }
  }

  /**
   * The part cannot go on (a connection it needs closed, a subscription ended): logs `err`,
   * stops, and makes `closed` reject with it. Ignored once stopping (a death caused by the stop).
   */
  die(err: unknown): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped" || this.#state === "failed") {
      this.log.debug({ err }, "ended while stopping");
      return this.stop();
    }
    this.#error = err;
    this.#died = true;
    this.log.error({ err }, "died; stopping");
    return this.stop();
  }

  /** Registers work in progress: stop() waits for it (its failure is the caller's to handle). */
  track<T>(work: Promise<T>): Promise<T> {
    const held = work.then(
      () => undefined,
      () => undefined,
    );
    this.#work.add(held);
    void held.then(() => this.#work.delete(held));
    return work;
  }

  /** Waits until no tracked work is in progress (work added meanwhile included). */
  async idle(): Promise<void> {
    while (this.#work.size > 0) await Promise.all([...this.#work]);
  }
}

/** A base for parts: implement onStart/onStop; `this.life` tracks work and deaths. */
export abstract class Part implements LongRunning {
  protected readonly life: Lifecycle;

  constructor(component: string, log: Logger) {
    this.life = new Lifecycle(component, log, {
      start: () => this.onStart(),
      stop: () => this.onStop(),
    });
  }

  protected abstract onStart(): Promise<void> | void;
  protected abstract onStop(): Promise<void> | void;

  get state(): LifeState {
    return this.life.state;
  }
  get closed(): Promise<void> {
    return this.life.closed;
  }
  start(): Promise<void> {
    return this.life.start();
  }
  stop(): Promise<void> {
    return this.life.stop();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts parts in order and stops them in reverse, every stop run even when one fails. A part
 * that failed to start stops the ones before it. Each is `[name, part]`.
 */
export class PartGroup {
  readonly #started: Array<[string, { stop(): unknown }]> = [];
  constructor(private readonly log: Logger) {}

  async start(name: string, part: { start(): Promise<unknown>; stop(): unknown }): Promise<void> {
    await part.start();
    this.#started.push([name, part]);
  }

  /** Adds a part started elsewhere (or a bare cleanup) to be stopped in reverse order. */
  add(name: string, part: { stop(): unknown }): void {
    this.#started.push([name, part]);
  }

  async stopAll(): Promise<void> {
    while (this.#started.length > 0) {
      const [name, part] = this.#started.pop()!;
      try {
        await part.stop();
      } catch (err) {
        this.log.warn({ err, step: name }, "cleanup step failed");
      }
    }
  }
}
