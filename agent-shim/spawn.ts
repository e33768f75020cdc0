/**
 * Claude Code's child process, through lib/child (lean: no execa, whose import would cost
 * ~100 ms of every task's start). A function type so tests can inject a fake.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { spawnChild as spawnLibChild } from "../lib/index.js";

export interface SpawnedExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  spawnError?: string;
  /** The errno code of that failure (`ENOENT`: no such program). */
  spawnErrorCode?: string;
}

export interface Spawned {
  readonly pid: number | undefined;
  readonly stdin: ChildProcessWithoutNullStreams["stdin"];
  readonly stdout: ChildProcessWithoutNullStreams["stdout"];
  readonly stderr: ChildProcessWithoutNullStreams["stderr"];
  kill(signal: NodeJS.Signals): void;
  readonly exited: Promise<SpawnedExit>;
}

export type SpawnFn = (
  cmd: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
) => Spawned;

export const spawnChild: SpawnFn = (cmd, args, opts) => {
  // Claude Code stays in the shim's process group and has no parent-death signal: the shim
  // stops it in steps (interrupt, stdin EOF, TERM, KILL), and the daemon's guardian around the
  // shim takes the whole tree with it.
  const child = spawnLibChild([cmd, ...args], {
    cwd: opts.cwd,
    env: opts.env,
    stdin: "pipe",
    group: false,
    parentDeath: "none",
  });
  return {
    pid: child.pid,
    stdin: child.stdin as Spawned["stdin"],
    stdout: child.stdout as Spawned["stdout"],
    stderr: child.stderr as Spawned["stderr"],
    kill: (signal) => child.signal(signal),
    exited: child.exited,
  };
};
