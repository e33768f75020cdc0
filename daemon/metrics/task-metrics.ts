/**
 * Counters and histograms of the core's work, fed through MeshObserver: task transitions,
 * claims and their latency, takeovers, redeliveries, fencing losses, attempts.
 */
import { Counter, Histogram, type Registry } from "prom-client";
import { type AttemptOutcome, TASK_STATES, type TaskState } from "../tasks/index.js";

export const CLAIM_LATENCY_BUCKETS = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];
export const ATTEMPT_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

export type ObservedOutcome = AttemptOutcome | "fenced";
/** Outcomes the core reports through attemptFinished ("lost" is written by a takeover instead). */
const OUTCOMES = [
  "succeeded",
  "failed",
  "timeout",
  "interrupted",
  "rate_limited",
  "cancelled",
  "fenced",
] as const satisfies readonly ObservedOutcome[];

const seconds = (ms: number): number => Math.max(0, ms) / 1000;

export class TaskMetrics {
  private readonly submittedTotal: Counter<"pool">;
  private readonly transitions: Counter<"pool" | "state">;
  private readonly claimLatency: Histogram<"pool">;
  private readonly takeovers: Counter<"pool">;
  private readonly redeliveries: Counter<"pool">;
  private readonly fenceLosses: Counter<"pool">;
  private readonly attempts: Counter<"pool" | "outcome">;
  private readonly attemptDuration: Histogram<"pool" | "outcome">;
  private readonly unreadableTotal: Counter<"kind">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.submittedTotal = new Counter({
      name: "agentmesh_tasks_submitted_total",
      help: "New tasks accepted through this daemon's API (an idempotent re-submit is not counted).",
      labelNames: ["pool"],
      registers,
    });
    this.transitions = new Counter({
      name: "agentmesh_task_transitions_total",
      help: "Task state changes written by this daemon, by pool and the state entered.",
      labelNames: ["pool", "state"],
      registers,
    });
    this.claimLatency = new Histogram({
      name: "agentmesh_claim_latency_seconds",
      help: "Time from a task becoming claimable (submit, retry or back-off end) to this daemon claiming it.",
      labelNames: ["pool"],
      buckets: CLAIM_LATENCY_BUCKETS,
      registers,
    });
    this.takeovers = new Counter({
      name: "agentmesh_lease_takeovers_total",
      help: "Tasks this daemon took over from a worker whose lease expired.",
      labelNames: ["pool"],
      registers,
    });
    this.redeliveries = new Counter({
      name: "agentmesh_redeliveries_total",
      help: "Doorbells this daemon received with a JetStream delivery count above 1.",
      labelNames: ["pool"],
      registers,
    });
    this.fenceLosses = new Counter({
      name: "agentmesh_fencing_losses_total",
      help: "Running attempts stopped because this daemon lost the task's fence (lease revision).",
      labelNames: ["pool"],
      registers,
    });
    this.attempts = new Counter({
      name: "agentmesh_attempts_total",
      help: "Finished task attempts run by this daemon, by outcome.",
      labelNames: ["pool", "outcome"],
      registers,
    });
    this.attemptDuration = new Histogram({
      name: "agentmesh_attempt_duration_seconds",
      help: "Duration of task attempts run by this daemon, from claim to recorded outcome.",
      labelNames: ["pool", "outcome"],
      buckets: ATTEMPT_BUCKETS,
      registers,
    });
    this.unreadableTotal = new Counter({
      name: "agentmesh_records_unreadable_total",
      help: "Task records (each revision once) and doorbells this daemon could not read and set aside: garbage, wrong shape, or a newer version.",
      labelNames: ["kind"],
      registers,
    });
    for (const kind of ["record", "doorbell"]) this.unreadableTotal.inc({ kind }, 0);
  }

  /** Zeroes the series of `pools` so rate() works, and absence means "not exported", before any event. */
  zero(pools: readonly string[]): void {
    for (const pool of pools) {
      for (const state of TASK_STATES) this.transitions.inc({ pool, state }, 0);
      for (const outcome of OUTCOMES) this.attempts.inc({ pool, outcome }, 0);
      this.claimLatency.zero({ pool });
      this.takeovers.inc({ pool }, 0);
      this.redeliveries.inc({ pool }, 0);
      this.fenceLosses.inc({ pool }, 0);
    }
  }

  submitted(pool: string): void {
    this.submittedTotal.inc({ pool });
  }

  transition(pool: string, to: TaskState): void {
    this.transitions.inc({ pool, state: to });
  }

  claimed(pool: string, latencyMs: number, takeover: boolean): void {
    this.claimLatency.observe({ pool }, seconds(latencyMs));
    if (takeover) this.takeovers.inc({ pool });
  }

  redelivered(pool: string): void {
    this.redeliveries.inc({ pool });
  }

  unreadable(kind: "record" | "doorbell"): void {
    this.unreadableTotal.inc({ kind });
  }

  fenceLost(pool: string): void {
    this.fenceLosses.inc({ pool });
  }

  attemptFinished(pool: string, outcome: ObservedOutcome, durationMs: number): void {
    this.attempts.inc({ pool, outcome });
    this.attemptDuration.observe({ pool, outcome }, seconds(durationMs));
  }
}
