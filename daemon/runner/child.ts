/**
 * Spawning runner children so that nothing a run started outlives it. On Linux with Perl each
 * child runs under a guardian (guardian.ts): a subreaper that kills the run's whole tree,
 * including processes that left its process group, when the run ends, when the daemon closes
 * its control pipe, and when the daemon dies (even by kill -9). Without it, the child is
 * started through `setpriv --pdeathsig SIGKILL` in its own process group: the direct child dies
 * with the daemon and a stop reaches its group, but not what left the group.
 */
import { existsSync } from "node:fs";
import { GUARD_FD, guardedArgv, guardianAvailable } from "./guardian.js";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find(
  (p) => process.platform === "linux" && existsSync(p),
);

/** Wraps an argv so the child dies with this process where the platform allows it. */
export function withParentDeath(argv: [string, ...string[]]): [string, ...string[]] {
  return SETPRIV ? [SETPRIV, "--pdeathsig", "SIGKILL", "--", ...argv] : argv;
}

/** How a run's process is started: its argv, and whether a guardian watches its tree. */
export interface RunLaunch {
  argv: [string, ...string[]];
  guarded: boolean;
}

/**
 * The argv for a runner child. Guarded children need a pipe at stdio index GUARD_FD (see
 * `runStdio`), spawned detached; signals sent to the child's pid reach the run's group.
 */
export function launchRun(argv: [string, ...string[]], guard = guardianAvailable()): RunLaunch {
  return guard ? { argv: guardedArgv(argv), guarded: true } : { argv: withParentDeath(argv), guarded: false };
}

/** The stdio entry for fd 3 of a launched run. */
export function controlStdio(launch: RunLaunch): "pipe" | "ignore" {
  return launch.guarded ? "pipe" : "ignore";
}

/** What `killRun` needs of a spawned child. */
export interface RunChild {
  readonly pid?: number | undefined;
  readonly stdio: ReadonlyArray<unknown>;
}

/**
 * Kills a run's whole tree now: a guarded run through its guardian (closing the control pipe:
 * it SIGKILLs every descendant, then exits), an unguarded one by SIGKILL to its group.
 */
export function killRun(child: RunChild, launch: RunLaunch): void {
  if (launch.guarded) {
    const ctl = child.stdio[GUARD_FD] as { destroy?: () => void } | null | undefined;
    if (ctl?.destroy) {
      ctl.destroy();
      return;
    }
  }
  signalTree(child.pid, "SIGKILL");
}

/** Signals a process group, falling back to the single pid. */
export function signalTree(pid: number | undefined, signal: NodeJS.Signals): void {
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
