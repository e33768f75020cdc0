/**
 * The daemon's answer for the whole mesh: what the gRPC server (and tests) call.
 * Implemented by `MeshService` over NATS; the transport layers only translate.
 */
import type { PlanConflict, PlanRecord, PlanSpec } from "../plans/index.js";
import type { WorkerInfo } from "../registry/index.js";
import type { TaskEvent, TaskRecord, TaskSpec, TaskState, UnreadableRecord } from "../tasks/index.js";
import type { TaskStatus } from "./status.js";

export interface SubmitResult {
  id: string;
  /** false when a task with this id already existed (idempotent re-submit). */
  created: boolean;
  state: TaskState;
}

export interface TaskView {
  record: TaskRecord;
  /** KV revision of the record. */
  revision: number;
  /** Set while queued and no live worker serves the task's pool, labels and runner. */
  unschedulable?: string;
  /** What every view shows (daemon/api/status.ts), judged by the daemon that answers (MeshService always sets it). */
  status?: TaskStatus;
  /** While waiting: the needs not succeeded yet (getTask only). */
  waitingOn?: string[];
}

export interface TaskList {
  tasks: TaskView[];
  /** Entries of the tasks bucket that are not readable records: left out of `tasks`, left as they are. */
  unreadable: UnreadableRecord[];
}

export interface TaskFilter {
  state?: TaskState[];
  /** Only the tasks of this plan. */
  plan?: string;
  pool?: string;
  workerId?: string;
  limit?: number;
}

export interface PlanSubmitResult {
  planId: string;
  /** False when this plan had been submitted already (an idempotent re-submit). */
  created: boolean;
  /** One per task, in the plan's order (every task after its needs). */
  tasks: SubmitResult[];
}

export interface PlanView {
  plan: PlanRecord;
  /** The plan's tasks that have records, in the plan's order. */
  tasks: TaskView[];
  /** Task ids of the plan without a record (deleted after their retention, or never written). */
  missing: string[];
  /** Conflicts the early check found between the plan's finished branches, by task pair. */
  conflicts: PlanConflict[];
}

export interface PlanSummary {
  plan: PlanRecord;
  /** How many of its tasks are in each state (tasks without a record are not counted). */
  states: Partial<Record<TaskState, number>>;
}

export type MeshEvent =
  | { type: "task"; event: Extract<TaskEvent, { type: "state" }> }
  | { type: "worker_joined"; worker: WorkerInfo }
  | { type: "worker_left"; workerId: string; at: string };

export interface MeshApi {
  /** All-or-nothing validation already done by the caller (`validateTaskBatch`). */
  submit(specs: TaskSpec[]): Promise<SubmitResult[]>;
  listWorkers(): Promise<WorkerInfo[]>;
  /** Throws MeshError NOT_FOUND. */
  getTask(id: string): Promise<TaskView>;
  /** The readable tasks that match, and every unreadable record (they match no filter). */
  listTasks(filter?: TaskFilter): Promise<TaskList>;
  /** Replays the task's events from its start, then live; ends after the terminal state event. */
  watchTask(id: string, signal: AbortSignal): AsyncIterable<TaskEvent>;
  /**
   * What the task did so far: its stored events of every attempt, then its current state from
   * the record when the last stored state event is not it; ends there.
   */
  taskHistory(id: string, signal: AbortSignal): AsyncIterable<TaskEvent>;
  /** Live task state changes and workers joining/leaving, until the signal aborts. */
  watchMesh(signal: AbortSignal): AsyncIterable<MeshEvent>;
  /** Throws NOT_FOUND, or FAILED_PRECONDITION when already terminal. */
  cancel(id: string): Promise<TaskView>;
  /**
   * A failed or dead task runs again as a new attempt; in a plan, the dependents it had
   * cancelled wait for it again. Throws FAILED_PRECONDITION otherwise.
   */
  retry(id: string): Promise<TaskView>;
  /** A validated plan, all or nothing; idempotent for the same plan. */
  submitPlan(plan: PlanSpec, submitter?: string): Promise<PlanSubmitResult>;
  /** Throws NOT_FOUND. */
  getPlan(id: string): Promise<PlanView>;
  listPlans(): Promise<PlanSummary[]>;
}
