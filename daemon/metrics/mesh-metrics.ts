/**
 * The daemon's Prometheus metrics: a MeshObserver fed by the core as it works (task-metrics,
 * agent-metrics, the NATS connection) plus gauges read at scrape time (live-metrics). Every
 * daemon owns its Registry, so two daemons in one process never share series; every series
 * carries `worker` (the daemon's name) as a default label. Nothing is labelled by task id.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { MeshObserver } from "../claim/index.js";
import type { RunnerEvent, TaskState } from "../tasks/index.js";
import { AccountMetrics } from "./account-metrics.js";
import { AgentMetrics, type AgentMetricsOptions } from "./agent-metrics.js";
import { LiveMetrics, type LiveSource } from "./live-metrics.js";
import { type ObservedOutcome, TaskMetrics } from "./task-metrics.js";

export interface MeshMetricsOptions extends AgentMetricsOptions {
  /** Value of the `worker` label on every series (the daemon's name). */
  worker: string;
  /** process_* and nodejs_* metrics of prom-client (default true). */
  defaultMetrics?: boolean;
  /** Budget for the JetStream and presence reads of one scrape (default 5 s). */
  collectTimeoutMs?: number;
}

export class MeshMetrics implements MeshObserver {
  readonly registry = new Registry();
  private readonly tasks: TaskMetrics;
  private readonly agent: AgentMetrics;
  private readonly live: LiveMetrics;
  private readonly accounts: AccountMetrics;
  private readonly natsConnectedGauge: Gauge;
  private readonly natsReconnects: Counter;
  private readonly natsDisconnects: Counter;
  private readonly planConflicts: Counter;
  private source: LiveSource | undefined;
  private collecting: Promise<void> | undefined;
  private connected = false;

  constructor(opts: MeshMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: opts.worker });
    // The event-loop lag histogram samples on a libuv timer: every 10 ms by default, which wakes an
    // idle daemon 100 times a second for one gauge; 100 ms keeps the metric and drops the wake-ups.
    if (opts.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    this.tasks = new TaskMetrics(this.registry);
    this.agent = new AgentMetrics(this.registry, opts);
    this.live = new LiveMetrics(this.registry, opts.collectTimeoutMs ?? 5000);
    this.accounts = new AccountMetrics(this.registry);
    this.natsConnectedGauge = new Gauge({
      name: "agentmesh_nats_connected",
      help: "1 while the daemon's NATS connection is up, 0 while disconnected or closed.",
      registers,
    });
    this.natsReconnects = new Counter({
      name: "agentmesh_nats_reconnects_total",
      help: "Times the NATS connection was re-established after a disconnect.",
      registers,
    });
    this.natsDisconnects = new Counter({
      name: "agentmesh_nats_disconnects_total",
      help: "Times the NATS connection was lost.",
      registers,
    });
    this.planConflicts = new Counter({
      name: "agentmesh_plan_conflicts_total",
      help: "Conflicts this daemon found between finished branches of a plan (each pair once per pair of heads), by the pool of the task that finished last.",
      labelNames: ["pool"],
      registers,
    });
  }

  /** Whether the last NATS status seen was a connected one. */
  get natsConnected(): boolean {
    return this.connected;
  }

  /** Attaches the scrape-time source when the daemon has connected, and zeroes its pools' series. */
  bind(source: LiveSource): void {
    this.source = source;
    this.live.identify(source);
    this.tasks.zero(source.pools);
    for (const pool of source.pools) this.planConflicts.inc({ pool }, 0);
    this.accounts.bindPools(source.pools);
    for (const pool of source.pools)
      for (const model of source.agentModels ?? []) this.agent.prepare(pool, model);
    this.setConnected(true);
  }

  // ------------------------------------------------------------------ MeshObserver

  submitted(e: { pool: string }): void {
    this.tasks.submitted(e.pool);
  }

  transition(e: { pool: string; to: TaskState }): void {
    this.tasks.transition(e.pool, e.to);
  }

  claimed(e: { pool: string; latencyMs: number; takeover: boolean }): void {
    this.tasks.claimed(e.pool, e.latencyMs, e.takeover);
  }

  redelivered(e: { pool: string }): void {
    this.tasks.redelivered(e.pool);
  }

  unreadable(e: { kind: "record" | "doorbell" }): void {
    this.tasks.unreadable(e.kind);
  }

  fenceLost(e: { pool: string }): void {
    this.tasks.fenceLost(e.pool);
  }

  planConflict(e: { pool: string }): void {
    this.planConflicts.inc({ pool: e.pool });
  }

  attemptFinished(e: { pool: string; outcome: ObservedOutcome; durationMs: number }): void {
    this.tasks.attemptFinished(e.pool, e.outcome, e.durationMs);
  }

  runnerEvent(e: { pool: string; model?: string; event: RunnerEvent }): void {
    try {
      this.agent.record(e.pool, e.model, e.event);
    } catch {
      // observer calls must never throw into the core; a malformed event is just not counted
    }
  }

  agentEventDropped(e: { pool: string; model?: string; event: RunnerEvent }): void {
    try {
      this.agent.dropped(e.pool);
      this.agent.record(e.pool, e.model, e.event);
    } catch {
      // as runnerEvent
    }
  }

  accountState(e: { account: string; state: string; untilMs?: number; utilization?: number }): void {
    this.accounts.prepare(e.account);
    this.accounts.setState(e.account, e.state, e.untilMs, e.utilization);
  }

  limitHit(e: { account: string; source: string }): void {
    this.accounts.limitHit(e.account, e.source);
  }

  parked(e: { pool: string; account: string; taskId: string }): void {
    this.accounts.parkedTask(e.pool, e.account, e.taskId);
  }

  accountUtilization(e: { account: string; utilization: number }): void {
    this.accounts.prepare(e.account);
    this.accounts.setUtilization(e.account, e.utilization);
  }

  natsStatus(e: { type: string }): void {
    if (e.type === "disconnect") {
      this.natsDisconnects.inc();
      this.setConnected(false);
    } else if (e.type === "reconnect") {
      this.natsReconnects.inc();
      this.setConnected(true);
    } else if (e.type === "close") {
      this.setConnected(false);
    }
  }

  private setConnected(up: boolean): void {
    this.connected = up;
    this.natsConnectedGauge.set(up ? 1 : 0);
  }

  // ------------------------------------------------------------------ scrape

  /** The exposition text, after refreshing the scrape-time gauges. */
  async render(): Promise<{ contentType: string; body: string }> {
    await this.collect();
    // Synchronously before rendering: the agent series this answer shows at 0 count from the next.
    const rendered = this.agent.gate.rendering();
    const body = await this.registry.metrics();
    rendered();
    return { contentType: this.registry.contentType, body };
  }

  /** Refreshes the scrape-time gauges; concurrent scrapes share one refresh. */
  collect(): Promise<void> {
    const src = this.source;
    if (!src) return Promise.resolve();
    const parked = src.parkedHere;
    this.collecting ??= Promise.all([
      this.live.collect(src, this.connected),
      parked ? this.accounts.refreshParked(parked) : undefined,
    ])
      .then(() => undefined)
      .finally(() => {
        this.collecting = undefined;
      });
    return this.collecting;
  }
}
