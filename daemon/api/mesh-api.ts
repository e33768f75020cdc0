/**
 * The daemon's answer for the whole mesh: what the gRPC server (and tests) call.
 * Implemented by `MeshService` over NATS; the transport layers only translate.
 */
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
}

export interface TaskList {
  tasks: TaskView[];
  /** Entries of the tasks bucket that are not readable records: left out of `tasks`, left as they are. */
  unreadable: UnreadableRecord[];
}

export interface TaskFilter {
  state?: TaskState[];
  pool?: string;
  workerId?: string;
  limit?: number;
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
  /** Live task state changes and workers joining/leaving, until the signal aborts. */
  watchMesh(signal: AbortSignal): AsyncIterable<MeshEvent>;
  /** Throws NOT_FOUND, or FAILED_PRECONDITION when already terminal. */
  cancel(id: string): Promise<TaskView>;
  /** A failed or dead task runs again as a new attempt. Throws FAILED_PRECONDITION otherwise. */
  retry(id: string): Promise<TaskView>;
}
