/**
 * Gauges read at scrape time: slots and running tasks from the daemon, queue depth of every pool
 * that has tasks from JetStream (mesh-wide, like the worker counts: every daemon reports every
 * such pool, so aggregate with `max by (pool)`), live workers from the presence registry. Remote
 * reads have a time budget so a slow JetStream cannot hang a scrape.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { QuotaEntry } from "../quota/index.js";
import type { WorkerInfo } from "../registry/index.js";
import type { QueueStats } from "./queue-stats.js";

/** What the scrape-time gauges read; the daemon adapter is daemonSource() in daemon-plugin.ts. */
export interface LiveSource {
  readonly workerId: string;
  readonly host: string;
  readonly version: string;
  readonly pools: readonly string[];
  /** Models agent sessions here use unless a task names another: their series exist from the start. */
  readonly agentModels?: readonly string[];
  slots(): { total: number; busy: number };
  running(): number;
  ready(): boolean;
  /** Every pool that has tasks (this daemon's own pools always), see queue-stats.ts. */
  queues(): Promise<Map<string, QueueStats>>;
  workers(): Promise<WorkerInfo[]>;
  /** The mesh's quota caps and their slots in use (issue 15), mesh-wide like the queues. */
  quota?(): Promise<QuotaEntry[]>;
  /** Whether a task this daemon parked is still parked with its session here (undefined: unknown now). */
  parkedHere?(taskId: string): Promise<boolean | undefined>;
}

/** Pools besides this daemon's own with queue series, at most (pool names are user input). */
export const MAX_OTHER_POOLS = 100;

class CollectTimeout extends Error {
  override readonly name = "CollectTimeout";
}

export class LiveMetrics {
  private readonly queuePending: Gauge<"pool">;
  private readonly queueAckPending: Gauge<"pool">;
  private readonly queueRedelivered: Gauge<"pool">;
  private readonly queueOldestAge: Gauge<"pool">;
  private readonly workersAlive: Gauge;
  private readonly poolWorkersAlive: Gauge<"pool">;
  private readonly slotsTotal: Gauge;
  private readonly slotsBusy: Gauge;
  private readonly tasksRunning: Gauge;
  private readonly ready: Gauge;
  private readonly info: Gauge<"worker_id" | "host" | "version">;
  private readonly collectErrors: Counter<"source">;
  private readonly quotaInUse: Gauge<"kind" | "name">;
  private readonly quotaCapacity: Gauge<"kind" | "name">;
  private readonly quotaStarts: Gauge<"account">;
  /** Pools the last successful queue read reported. */
  private queuePools: string[] = [];

  constructor(
    registry: Registry,
    private readonly timeoutMs: number,
  ) {
    const registers = [registry];
    const perPool = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ["pool"], registers });
    this.queuePending = perPool(
      "agentmesh_queue_pending_messages",
      "Doorbells waiting in the pool's queue, not yet delivered to any worker (queue depth).",
    );
    this.queueAckPending = perPool(
      "agentmesh_queue_ack_pending_messages",
      "Doorbells delivered but not yet acknowledged (claimed or running tasks, nak back-offs).",
    );
    this.queueRedelivered = perPool(
      "agentmesh_queue_redelivered_messages",
      "Unacknowledged doorbells that were delivered more than once.",
    );
    this.queueOldestAge = perPool(
      "agentmesh_queue_oldest_pending_age_seconds",
      "Age of the oldest undelivered doorbell in the pool (0 when the queue is empty).",
    );
    this.poolWorkersAlive = perPool(
      "agentmesh_pool_workers_alive",
      "Daemons in the presence registry serving each pool, as seen by this daemon.",
    );
    const single = (name: string, help: string) => new Gauge({ name, help, registers });
    this.workersAlive = single(
      "agentmesh_workers_alive",
      "Daemons in the mesh's presence registry, as seen by this daemon.",
    );
    this.slotsTotal = single("agentmesh_slots", "Task slots of this daemon (tasks it runs at once).");
    this.slotsBusy = single(
      "agentmesh_slots_busy",
      "Slots in use: running tasks plus pulls waiting for a doorbell.",
    );
    this.tasksRunning = single("agentmesh_tasks_running", "Tasks this daemon is running now.");
    this.ready = single(
      "agentmesh_ready",
      "1 when the daemon is running with its NATS connection up, else 0.",
    );
    this.info = new Gauge({
      name: "agentmesh_worker_info",
      help: "Always 1; identifies the daemon (worker id, host, version).",
      labelNames: ["worker_id", "host", "version"],
      registers,
    });
    this.quotaInUse = new Gauge({
      name: "agentmesh_quota_slots_in_use",
      help: "Units of a mesh-wide cap held by live attempts (kind: account, pool or resource); mesh-wide: aggregate with max by (kind, name).",
      labelNames: ["kind", "name"],
      registers,
    });
    this.quotaCapacity = new Gauge({
      name: "agentmesh_quota_slots_capacity",
      help: "A mesh-wide cap's capacity (the smallest a live daemon declares; 0: an account without a cap).",
      labelNames: ["kind", "name"],
      registers,
    });
    this.quotaStarts = new Gauge({
      name: "agentmesh_quota_starts_last_minute",
      help: "Sessions started on the account in the last minute (its start-rate cap counts these).",
      labelNames: ["account"],
      registers,
    });
    this.collectErrors = new Counter({
      name: "agentmesh_collect_errors_total",
      help: "Scrape-time reads that failed or timed out (queue: JetStream, presence: worker registry).",
      labelNames: ["source"],
      registers,
    });
  }

  identify(src: LiveSource): void {
    this.info.reset();
    this.info.set({ worker_id: src.workerId, host: src.host, version: src.version }, 1);
    this.collectErrors.inc({ source: "queue" }, 0);
    this.collectErrors.inc({ source: "presence" }, 0);
    if (src.quota) this.collectErrors.inc({ source: "quota" }, 0);
  }

  async collect(src: LiveSource, natsConnected: boolean): Promise<void> {
    const slots = src.slots();
    this.slotsTotal.set(slots.total);
    this.slotsBusy.set(slots.busy);
    this.tasksRunning.set(src.running());
    this.ready.set(src.ready() && natsConnected ? 1 : 0);
    const [queues, workers, quota] = await Promise.allSettled([
      this.bounded(src.queues()),
      this.bounded(src.workers()),
      src.quota ? this.bounded(src.quota()) : Promise.resolve(undefined),
    ]);
    this.setQueues(src, queues.status === "fulfilled" ? queues.value : undefined);
    this.setWorkers(src, workers.status === "fulfilled" ? workers.value : undefined);
    if (src.quota) this.setQuota(quota.status === "fulfilled" ? quota.value : undefined);
  }

  private setQuota(entries: QuotaEntry[] | undefined): void {
    if (!entries) {
      this.collectErrors.inc({ source: "quota" });
      return;
    }
    this.quotaInUse.reset();
    this.quotaCapacity.reset();
    this.quotaStarts.reset();
    for (const e of entries) {
      this.quotaInUse.set({ kind: e.kind, name: e.name }, e.inUse);
      this.quotaCapacity.set({ kind: e.kind, name: e.name }, e.capacity);
      if (e.kind === "account") this.quotaStarts.set({ account: e.name }, e.startedLastMinute ?? 0);
    }
  }

  private get queueGauges(): Gauge<"pool">[] {
    return [this.queuePending, this.queueAckPending, this.queueRedelivered, this.queueOldestAge];
  }

  private setQueues(src: LiveSource, queues: Map<string, QueueStats> | undefined): void {
    for (const g of this.queueGauges) g.reset();
    if (!queues) {
      // A stale depth would look like a healthy queue: no queue series until JetStream answers.
      this.collectErrors.inc({ source: "queue" });
      return;
    }
    const own = new Set(src.pools);
    const others = [...queues.keys()].filter((p) => !own.has(p)).sort();
    const pools = [...src.pools.filter((p) => queues.has(p)), ...others.slice(0, MAX_OTHER_POOLS)];
    for (const pool of pools) {
      const q = queues.get(pool) as QueueStats;
      this.queuePending.set({ pool }, q.pending);
      this.queueAckPending.set({ pool }, q.ackPending);
      this.queueRedelivered.set({ pool }, q.redelivered);
      this.queueOldestAge.set({ pool }, q.oldestPendingAgeSeconds);
    }
    this.queuePools = pools;
  }

  private setWorkers(src: LiveSource, workers: WorkerInfo[] | undefined): void {
    if (!workers) {
      // Keep the last counts: a missed registry read is not "no workers" (alert on the error count).
      this.collectErrors.inc({ source: "presence" });
      return;
    }
    this.workersAlive.set(workers.length);
    // 0 for a pool that has tasks and no live worker: "a pool nobody serves" is a query away.
    const perPool = new Map<string, number>([...src.pools, ...this.queuePools].map((p) => [p, 0]));
    for (const w of workers) for (const p of w.pools) perPool.set(p, (perPool.get(p) ?? 0) + 1);
    this.poolWorkersAlive.reset();
    for (const [pool, n] of perPool) this.poolWorkersAlive.set({ pool }, n);
  }

  private bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CollectTimeout(`no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }
}
