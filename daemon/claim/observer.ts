/**
 * What the core (claim loop, an attempt's execution, the service) reports as it works: a port
 * kept with its callers. The metrics room implements it with prom-client; tests and the
 * default use a no-op. Calls are synchronous and must never throw.
 */
import type { AttemptOutcome, RunnerEvent, TaskState } from "../tasks/index.js";

export interface MeshObserver {
  /** A new task was accepted through this daemon's API (not counted again on re-submit). */
  submitted(e: { pool: string }): void;
  /** A task record moved to `to` (written by this daemon). */
  transition(e: { pool: string; to: TaskState }): void;
  /** This daemon won a claim; latency from submit (or re-queue) to claim. */
  claimed(e: { pool: string; latencyMs: number; takeover: boolean }): void;
  /** A doorbell arrived with delivery count > 1. */
  redelivered(e: { pool: string }): void;
  /** A running attempt lost its fence (another writer or self-fencing). */
  fenceLost(e: { pool: string }): void;
  attemptFinished(e: { pool: string; outcome: AttemptOutcome | "fenced"; durationMs: number }): void;
  /** A runner event (agent events carry tokens, cost, tool calls, API retries). */
  runnerEvent(e: { pool: string; model?: string; event: RunnerEvent }): void;
  /** An agent event kept off the bus by the per-attempt cap: counted, and in the agent numbers still. */
  agentEventDropped?(e: { pool: string; model?: string; event: RunnerEvent }): void;
  natsStatus(e: { type: string }): void;
  /** The early check found (and recorded first) a conflict between two finished branches of a plan. */
  planConflict?(e: { pool: string }): void;
  /** A task record or doorbell that could not be read was set aside (a record: once per revision). */
  unreadable(e: { kind: "record" | "doorbell" }): void;
  /** An account's limit state as this daemon now sees it (`open`, `warning`, `rejected`). */
  accountState?(e: { account: string; state: string; untilMs?: number; utilization?: number }): void;
  /** A session met its account's usage limit (`source`: how Claude Code said so). */
  limitHit?(e: { account: string; source: string }): void;
  /** An attempt parked its task at the account's limit (not counted; resumed after the reset). */
  parked?(e: { pool: string; account: string; taskId: string }): void;
  /** A session reported its account's utilisation of the limit window (0..1). */
  accountUtilization?(e: { account: string; utilization: number }): void;
}

export const noopObserver: MeshObserver = {
  submitted() {},
  transition() {},
  claimed() {},
  redelivered() {},
  fenceLost() {},
  attemptFinished() {},
  runnerEvent() {},
  agentEventDropped() {},
  natsStatus() {},
  planConflict() {},
  unreadable() {},
};
