/**
 * Events about tasks, published on the limits-retention stream `MESH_EVENTS` under
 * `mesh.events.task.<id>` so a task can be replayed from its start (names in nats/names.ts).
 */
import type { TaskRecord, TaskState } from "./record.js";

/** A task's state changed: made from the written record of a transition's step (machine/step.ts). */
export interface StateEvent {
  type: "state";
  taskId: string;
  at: string;
  state: TaskState;
  attempt: number;
  workerId?: string;
  reason?: string;
  /** A `queued` task parked at its account's usage limit until the reset. */
  parked?: { account: string; until: string };
}

/** Progress events a runner emits (its output lines, agent events); each becomes a task event. */
export type RunnerEvent =
  | { type: "log"; stream: "stdout" | "stderr"; line: string }
  | { type: "agent"; kind: string; data: Record<string, unknown> };

export type TaskEvent =
  | StateEvent
  | ({ taskId: string; at: string; attempt: number; workerId: string } & RunnerEvent);

/**
 * The attempt a state event belongs to: the record's attempt, except that a `queued` task waits
 * for its next one (1 at submit, 2 after the first attempt's retry, ...).
 */
export const stateEventAttempt = (r: Pick<TaskRecord, "state" | "attempt">): number =>
  r.state === "queued" ? r.attempt + 1 : r.attempt;
