/**
 * The credentials of the nats-server `mesh up` starts: an nkey seed in the state dir (0600).
 * A meshd that joins that server on loopback without credentials of its own finds them here.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { defaultStateDir } from "../state-dir.js";
import type { NatsSettings } from "./settings.js";
import { hasCredentials, isLoopbackHost, urlHost } from "./transport-policy.js";

/** File name (in the state dir) of the local mesh's daemon nkey seed. */
export const LOCAL_NKEY_FILE = "nats-daemon.nk";

export function findLocalNkey(stateDirs: string[]): string | undefined {
  for (const dir of stateDirs) {
    const f = join(dir, LOCAL_NKEY_FILE);
    if (existsSync(f)) return f;
  }
  return undefined;
}

/** On loopback without credentials: use a local `mesh up`'s (own state dir first, then the default one). */
export function useLocalMeshCredentials(config: { nats: NatsSettings; stateDir: string }): void {
  const n = config.nats;
  if (hasCredentials(n) || !n.servers.every((s) => isLoopbackHost(urlHost(s)))) return;
  const seed = findLocalNkey([config.stateDir, defaultStateDir()]);
  if (seed) n.nkeySeedFile = seed;
}

/** The local `mesh up` nkey for a URL on loopback (own state dir first, then the default one). */
export function localNkeyFor(url: string, stateDirs: string[] = [defaultStateDir()]): string | undefined {
  return isLoopbackHost(urlHost(url)) ? findLocalNkey(stateDirs) : undefined;
}
