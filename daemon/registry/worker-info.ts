/** What a daemon says about itself in the presence bucket (`mesh-workers`, key = worker id). */
export interface WorkerInfo {
  v: 1;
  workerId: string;
  name: string;
  host: string;
  pools: string[];
  labels: Record<string, string>;
  runners: string[];
  slotsTotal: number;
  slotsFree: number;
  running: string[];
  version: string;
  startedAt: string;
  updatedAt: string;
  /**
   * How long after `updatedAt` this worker counts as gone: 3 of its own presence intervals.
   * Readers judge each worker by its own (daemons of one mesh may beat at different intervals);
   * absent in records of older daemons, where the reader's own is used.
   */
  staleAfterMs?: number;
  /** Base URL of the daemon's HTTP side (metrics), when it has one: the first of `httpUrls`. */
  httpUrl?: string;
  /** Every base URL the HTTP side is advertised at (its interface addresses, or `http.advertise`). */
  httpUrls?: string[];
  /** `loopback`: the HTTP side listens on loopback only, so only its own machine reaches it. */
  reach?: "loopback" | "network";
  draining?: boolean;
  /** When this worker last finished a pass as the mesh's sweeper. */
  sweptAt?: string;
  /** Runners this worker does not offer, with why and how to fix it (absent: none). */
  unavailableRunners?: UnavailableRunner[];
  /** The Claude account its claude attempts run on (a name, never a key; issue 15). */
  account?: string;
  /** The mesh-wide caps it declares (its `quota` config; the smallest declared applies). */
  quota?: {
    accounts?: Record<string, { maxSessions?: number; startsPerMinute?: number }>;
    pools?: Record<string, { maxSessions: number }>;
    resources?: Record<string, { capacity: number }>;
  };
}

export interface UnavailableRunner {
  runner: string;
  /** Why, and the fix: e.g. no API key (set ANTHROPIC_API_KEY or claude.apiKeyFile). */
  reason: string;
}

/** Whether a worker can serve a task of `pool` needing `labels` with `runner`. */
export function workerServes(
  w: Pick<WorkerInfo, "pools" | "labels" | "runners">,
  pool: string,
  labels: Record<string, string>,
  runner: string,
): boolean {
  if (!w.pools.includes(pool)) return false;
  if (!w.runners.includes(runner)) return false;
  return Object.entries(labels).every(([k, v]) => w.labels[k] === v);
}
