/**
 * The one way agent-mesh starts a child process: argv (never a shell), an exact cwd and env,
 * its own process group, a parent-death guarantee, TERM then KILL after a grace, an AbortSignal,
 * output as bounded lines through an async iterator, and exit info that never rejects.
 *
 * Parent death, per `parentDeath`:
 * - "guard" (default): under the run guardian (guardian.ts) where Linux and Perl allow it: the
 *   child's whole tree dies when the child ends, when `kill()` closes the control pipe, and when
 *   this process dies (even by SIGKILL), processes that left the group included. Elsewhere it
 *   falls back to "signal".
 * - "signal": `setpriv --pdeathsig <parentDeathSignal>` (same pid): the direct child gets the
 *   signal when this process dies; `group` reaches the rest of its process group.
 * - "none": no guarantee (a child that watches its parent itself, e.g. through stdin).
 *
 * Built on node:child_process, not execa: mesh-shim starts once per task and spawns through this
 * module, and importing execa costs ~100 ms of every task's start; execa's kill-after-delay,
 * cancel signal and line iteration would not cover the guardian's control pipe, process-group
 * signals or a bound on line length either.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { LineQueue, type OutputLine } from "./bounded-lines.js";
import { GUARD_FD, guardedArgv, guardianAvailable } from "./guardian.js";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find(
  (p) => process.platform === "linux" && existsSync(p),
);

/** Whether `parentDeath: "signal"` can be kept here (Linux with util-linux setpriv). */
export function parentDeathSignalAvailable(): boolean {
  return SETPRIV !== undefined;
}

export type ParentDeath = "guard" | "signal" | "none";
type Std = "pipe" | "ignore" | "inherit";

export interface SpawnOptions {
  cwd?: string;
  /** The child's whole environment (nothing is inherited); default: this process's. */
  env?: Record<string, string | undefined>;
  /** Aborting stops the child: TERM, then KILL after `killGraceMs` (see `killNowOn`). */
  signal?: AbortSignal;
  /** Abort reasons that kill the tree at once instead of TERM first (e.g. a fenced run). */
  killNowOn?: (reason: unknown) => boolean;
  /** TERM to KILL, for abort and stop() (default 5 s). */
  killGraceMs?: number;
  parentDeath?: ParentDeath;
  /** For "signal" (and the fallback of "guard"): default SIGKILL. */
  parentDeathSignal?: "SIGKILL" | "SIGTERM";
  /** Own process group (default true): signals reach the child's descendants too. */
  group?: boolean;
  /** After the child exits, SIGKILL what it left in its group (default: when `group`). */
  reapGroup?: boolean;
  stdin?: Std;
  stdout?: Std;
  stderr?: Std;
  /** The most of one output line `lines()` holds; the rest of the line is dropped (64 KiB). */
  maxLineChars?: number;
  /** SIGKILL the child's tree when this process exits (covers a skipped stop; default false). */
  killOnExit?: boolean;
}

export interface ChildExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT), with its errno code. */
  spawnError?: string;
  spawnErrorCode?: string;
  /** How this side ended it, if it did: "term" (TERM, then it exited), "kill" (tree killed). */
  stoppedBy?: "term" | "kill";
}

export interface Child extends AsyncDisposable {
  readonly pid: number | undefined;
  /** The node:child_process object underneath (its events, exitCode), for callers that need it. */
  readonly process: ChildProcess;
  /** Under a guardian (its pid is the guardian's; signals are forwarded to the run's group). */
  readonly guarded: boolean;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Settles when the child has exited (never rejects). */
  readonly exited: Promise<ChildExit>;
  readonly running: boolean;
  /** Piped stdout/stderr as lines, in arrival order; ends when both streams end. Once only. */
  lines(): AsyncIterableIterator<OutputLine>;
  /** Sends `signal` to the child's process group (or the child alone). */
  signal(signal: NodeJS.Signals): void;
  /** Kills the whole tree now. */
  kill(): void;
  /** TERM, then KILL after `graceMs` (default killGraceMs); memoized; resolves on exit. */
  stop(graceMs?: number): Promise<ChildExit>;
}

/** Signals a process group, falling back to the single pid. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export function spawnChild(
  argv: readonly [string, ...string[]] | readonly string[],
  opts: SpawnOptions = {},
): Child {
  if (argv.length === 0 || !argv[0]) throw new TypeError("spawnChild: argv[0] (the program) is required");
  const group = opts.group ?? true;
  const wanted = opts.parentDeath ?? "guard";
  const guarded = wanted === "guard" && guardianAvailable();
  const pdeath = (wanted === "signal" || (wanted === "guard" && !guarded)) && SETPRIV !== undefined;
  const base = [...argv] as [string, ...string[]];
  const full = guarded
    ? guardedArgv(base)
    : pdeath
      ? [SETPRIV!, "--pdeathsig", opts.parentDeathSignal ?? "SIGKILL", "--", ...base]
      : base;
  const stdio: StdioOptions = [opts.stdin ?? "ignore", opts.stdout ?? "pipe", opts.stderr ?? "pipe"];
  if (guarded) stdio.push("pipe");
  const [file, ...args] = full as [string, ...string[]];
  const proc: ChildProcess = spawn(file, args, {
    stdio,
    // A guarded child's guardian puts the run in a group of its own; the guardian's own group
    // is what `signal()` reaches, and it forwards TERM/INT.
    detached: group || guarded,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.env !== undefined ? { env: opts.env } : {}),
  });
  const graceMs = opts.killGraceMs ?? 5_000;
  const reap = (opts.reapGroup ?? group) && !guarded;
  let stoppedBy: ChildExit["stoppedBy"];
  let done = false;

  const signal = (sig: NodeJS.Signals): void => {
    if (done) return;
    if (group || guarded) signalGroup(proc.pid, sig);
    else {
      try {
        proc.kill(sig);
      } catch {
        // already gone
      }
    }
  };
  const kill = (): void => {
    if (done) return;
    stoppedBy = "kill";
    const ctl = guarded ? (proc.stdio[GUARD_FD] as { destroy?: () => void } | null) : null;
    if (ctl?.destroy) ctl.destroy();
    else signal("SIGKILL");
  };

  const exited = new Promise<ChildExit>((resolve) => {
    let failure: { spawnError: string; spawnErrorCode?: string } | undefined;
    const finish = (exitCode: number | null, sig: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      if (reap) signalGroup(proc.pid, "SIGKILL");
      resolve({ exitCode, signal: sig, ...failure, ...(stoppedBy ? { stoppedBy } : {}) });
    };
    proc.once("error", (err: NodeJS.ErrnoException) => {
      failure = {
        spawnError: `${argv[0]}: ${err.message}`,
        ...(err.code ? { spawnErrorCode: err.code } : {}),
      };
      // 'exit' does not follow a failure to spawn
      if (proc.pid === undefined) finish(null, null);
    });
    proc.once("exit", (code, sig) => finish(code, sig));
  });

  let stopping: Promise<ChildExit> | undefined;
  const stop = (ms = graceMs): Promise<ChildExit> => {
    stopping ??= (async () => {
      if (done) return exited;
      stoppedBy ??= "term";
      signal("SIGTERM");
      const timer = setTimeout(kill, ms);
      const res = await exited;
      clearTimeout(timer);
      return res;
    })();
    return stopping;
  };

  const sig = opts.signal;
  if (sig) {
    const onAbort = () => {
      if (opts.killNowOn?.(sig.reason)) kill();
      else void stop();
    };
    if (sig.aborted) onAbort();
    else {
      sig.addEventListener("abort", onAbort, { once: true });
      void exited.then(() => sig.removeEventListener("abort", onAbort));
    }
  }
  if (opts.killOnExit) {
    const onExit = () => kill();
    process.once("exit", onExit);
    void exited.then(() => process.removeListener("exit", onExit));
  }

  let iterating = false;
  const lines = (): AsyncIterableIterator<OutputLine> => {
    if (iterating) throw new Error("spawnChild: lines() can be iterated once");
    iterating = true;
    const q = new LineQueue(opts.maxLineChars ?? 64 * 1024);
    if (proc.stdout) q.add("stdout", proc.stdout);
    if (proc.stderr) q.add("stderr", proc.stderr);
    return q.iterate();
  };

  return {
    pid: proc.pid,
    process: proc,
    guarded,
    stdin: proc.stdin,
    stdout: proc.stdout,
    stderr: proc.stderr,
    exited,
    get running() {
      return !done && proc.pid !== undefined;
    },
    lines,
    signal,
    kill,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
