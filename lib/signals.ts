/**
 * The stop-signal policy of agent-mesh's foreground programs (`meshd`, `mesh up`), handled at
 * their entry points only:
 * - the first SIGINT/SIGTERM (and whatever else `signals` names) asks for a graceful stop;
 * - the second forces it: running work is handed back at once, and once stopped the program
 *   exits with `forcedExitCode` (see `exitCode()`);
 * - a third, or a second before anything could be stopped, exits at once with `abandonExitCode`.
 * A signal that arrives before `attach()` (while starting) is remembered and acted on by it.
 */
export type StopActions = {
  graceful(signal: NodeJS.Signals): void;
  force(signal: NodeJS.Signals): void;
};

export interface SignalPolicyOptions {
  /** Default SIGINT and SIGTERM. */
  signals?: readonly NodeJS.Signals[];
  /**
   * The same signal again within this window counts once: npm forwards the terminal's Ctrl-C
   * to its child, which already got it from the terminal (default 0: every signal counts).
   */
  sameSignalMs?: number;
  /** The exit code after a forced stop has finished. */
  forcedExitCode: number;
  /** The exit code of giving up at once (a second signal while starting, a third one). */
  abandonExitCode: number;
  /** Default process.exit. */
  exit?: (code: number) => void;
}

export class SignalPolicy {
  #count = 0;
  #last: { signal: NodeJS.Signals; at: number } | undefined;
  #first: NodeJS.Signals | undefined;
  #actions: StopActions | undefined;
  readonly #listeners: Array<[NodeJS.Signals, () => void]> = [];

  constructor(private readonly opts: SignalPolicyOptions) {
    for (const s of opts.signals ?? ["SIGINT", "SIGTERM"]) {
      const on = () => this.#on(s);
      process.on(s, on);
      this.#listeners.push([s, on]);
    }
  }

  /** Stop signals counted so far. */
  get received(): number {
    return this.#count;
  }

  /** Whether a second signal forced the stop. */
  get forced(): boolean {
    return this.#count >= 2;
  }

  /** The code to exit with once stopped: `forcedExitCode` when forced, else `code`. */
  exitCode(code: number): number {
    return this.forced ? this.opts.forcedExitCode : code;
  }

  /** What the signals do from now on; a signal already received is acted on now. */
  attach(actions: StopActions): void {
    const first = this.#actions === undefined;
    this.#actions = actions;
    if (first && this.#first) actions.graceful(this.#first);
  }

  /** Removes the handlers (the default actions apply again). */
  dispose(): void {
    for (const [s, on] of this.#listeners) process.removeListener(s, on);
    this.#listeners.length = 0;
  }

  #on(signal: NodeJS.Signals): void {
    const now = Date.now();
    const window = this.opts.sameSignalMs ?? 0;
    if (this.#last && this.#last.signal === signal && now - this.#last.at < window) return;
    this.#last = { signal, at: now };
    this.#count++;
    const exit = this.opts.exit ?? ((code: number) => process.exit(code));
    if (this.#count === 1) {
      this.#first = signal;
      this.#actions?.graceful(signal);
    } else if (this.#count === 2 && this.#actions) this.#actions.force(signal);
    else exit(this.opts.abandonExitCode);
  }
}
