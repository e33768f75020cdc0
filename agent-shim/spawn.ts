/**
 * A lean child process for Claude Code. The shim starts once per task and its start-up time is
 * on every task's critical path: node:child_process costs nothing to import, execa ~100 ms.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";

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
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<SpawnedExit>((resolve) => {
    let failure: { spawnError: string; spawnErrorCode?: string } | undefined;
    child.once("error", (err: NodeJS.ErrnoException) => {
      failure = { spawnError: `${cmd}: ${err.message}`, ...(err.code ? { spawnErrorCode: err.code } : {}) };
      // 'close' may not follow a spawn failure
      if (child.pid === undefined) resolve({ exitCode: null, signal: null, ...failure });
    });
    child.once("close", (code, signal) => resolve({ exitCode: code, signal, ...failure }));
  });
  return {
    pid: child.pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    kill: (signal) => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    exited,
  };
};
