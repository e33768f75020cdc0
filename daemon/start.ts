/** Builds a daemon with the servers its config asks for, and starts it. */
import type { DaemonConfig } from "./config.js";
import { Daemon, type DaemonDeps } from "./daemon.js";

export async function startDaemon(config: DaemonConfig, deps: DaemonDeps = {}): Promise<Daemon> {
  const daemon = new Daemon(config, deps);
  await daemon.start();
  return daemon;
}
