/**
 * Spawning runner children so they cannot outlive the daemon: on Linux each child is started
 * through `setpriv --pdeathsig SIGKILL` (the kernel kills it when the daemon dies, even by
 * kill -9) in its own process group, so a stop reaches its whole tree.
 */
import { existsSync } from "node:fs";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find(
  (p) => process.platform === "linux" && existsSync(p),
);

/** Wraps an argv so the child dies with this process where the platform allows it. */
export function withParentDeath(argv: [string, ...string[]]): [string, ...string[]] {
  return SETPRIV ? [SETPRIV, "--pdeathsig", "SIGKILL", "--", ...argv] : argv;
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
