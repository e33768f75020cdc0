/**
 * The task record kept in KV (bucket `mesh-tasks`, key = task id) and its state machine.
 * Every write is compare-and-set on the KV revision; the revision is the fencing token.
 */
import { MeshError } from "../errors.js";
import type { TaskSpec } from "./spec.js";

export const TASK_STATES = [
  "queued",
  "claimed",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "dead",
] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(["succeeded", "failed", "cancelled", "dead"]);
export const isTerminal = (s: TaskState): boolean => TERMINAL_STATES.has(s);

/**
 * Legal transitions. `failed` is terminal only when no retry is due; a retry goes back to `queued`.
 * A claim normally writes `claimed`, and `running` once the workspace (a git worktree) is ready;
 * an attempt with nothing to prepare (no repo) is claimed straight into `running` in one write.
 */
const TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  queued: ["claimed", "running", "cancelled", "dead"],
  claimed: ["running", "queued", "failed", "cancelled", "dead", "claimed"],
  running: ["succeeded", "failed", "queued", "cancelled", "dead", "claimed"],
  succeeded: [],
  failed: ["queued"], // RetryTask
  cancelled: [],
  dead: ["queued"], // RetryTask
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function assertTransition(id: string, from: TaskState, to: TaskState): void {
  if (!canTransition(from, to)) {
    throw new MeshError("FAILED_PRECONDITION", `task ${id}: cannot go from ${from} to ${to}`);
  }
}

export type AttemptOutcome =
  | "succeeded"
  | "failed" // the runner reported failure (non-zero exit, agent error)
  | "timeout"
  | "lost" // the worker stopped heartbeating; another worker took over
  | "interrupted" // graceful shutdown handed it back; does not count against maxAttempts
  | "rate_limited" // the agent hit an API rate limit; retried after a delay, not counted
  | "cancelled";

export interface AttemptInfo {
  attempt: number;
  workerId: string;
  host: string;
  claimedAt: string;
  startedAt?: string;
  endedAt?: string;
  outcome?: AttemptOutcome;
  reason?: string;
  exitCode?: number | null;
  signal?: string | null;
}

/** Agent numbers attached by the runner (the Claude Code shim fills them). */
export interface TaskResultInfo {
  summary?: string;
  costUsd?: number;
  tokens?: { input: number; output: number; cacheRead: number; cacheCreation: number };
  turns?: number;
  sessionId?: string;
  branch?: string;
  headCommit?: string;
  durationMs?: number;
  model?: string;
}

export interface TaskRecord {
  v: 1;
  id: string;
  spec: TaskSpec;
  state: TaskState;
  /** Number of the current/last attempt (0 while never claimed). */
  attempt: number;
  /** Attempts that count against maxAttempts (failed, timeout, lost). */
  countedFailures: number;
  maxAttempts: number;
  owner?: { workerId: string; host: string };
  cancelRequested?: boolean;
  submittedAt: string;
  updatedAt: string;
  /** Owner's wall clock at the last heartbeat; informational (staleness is judged by revision). */
  heartbeatAt?: string;
  finishedAt?: string;
  /** Do not start before this time (retry back-off). */
  notBefore?: string;
  attempts: AttemptInfo[];
  result?: TaskResultInfo;
  /** Human reason of the terminal state. */
  reason?: string;
}

export function newTaskRecord(spec: TaskSpec, now: Date): TaskRecord {
  const at = now.toISOString();
  return {
    v: 1,
    id: spec.id,
    spec,
    state: "queued",
    attempt: 0,
    countedFailures: 0,
    maxAttempts: spec.maxAttempts,
    submittedAt: at,
    updatedAt: at,
    attempts: [],
  };
}

/** The record as read from KV with its revision (the fencing token). */
export interface VersionedRecord {
  record: TaskRecord;
  revision: number;
}
