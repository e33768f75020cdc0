/**
 * Records by state. A transition accepts only records of its legal source states, so calling
 * one on a record in another state does not compile; a record read from KV (any state) gets
 * there through `expectState`, the runtime guard. `EDGES` is the last guard: the store refuses
 * any write that changes the state along an edge no transition takes.
 */
import { MeshError } from "../../errors.js";
import type { TaskRecord, TaskState } from "../record.js";

/** A record known to be in one of the states `S`. */
export type RecordIn<S extends TaskState> = TaskRecord & { state: S };

export type QueuedRecord = RecordIn<"queued">;
/** Claimed or running: an attempt holds it. */
export type HeldRecord = RecordIn<"claimed" | "running">;
/** What `mesh retry` may run again. */
export type RetryableRecord = RecordIn<"failed" | "dead">;

export function inState<S extends TaskState>(r: TaskRecord, states: readonly S[]): r is RecordIn<S> {
  return (states as readonly TaskState[]).includes(r.state);
}

/**
 * `r` as a record in one of `states`; throws FAILED_PRECONDITION naming the task, the
 * transition and the state it is in otherwise.
 */
export function expectState<S extends TaskState>(
  r: TaskRecord,
  transition: string,
  states: readonly S[],
): RecordIn<S> {
  if (inState(r, states)) return r;
  throw new MeshError(
    "FAILED_PRECONDITION",
    `task ${r.id}: cannot ${transition} a ${r.state} task (only ${states.join(" or ")})`,
  );
}

/**
 * Every change of state a transition makes (a write that keeps the state, e.g. a heartbeat, is
 * no edge). `claimed -> claimed` and `running -> claimed` are takeovers; `queued -> running` a
 * claim with nothing to prepare; `failed`/`dead -> queued` a retry; `waiting -> queued` a plan's
 * release; `cancelled -> waiting` a re-open (its cancelling dependency was retried).
 */
export const EDGES: Readonly<Record<TaskState, readonly TaskState[]>> = {
  waiting: ["queued", "cancelled"],
  queued: ["claimed", "running", "cancelled"],
  claimed: ["claimed", "running", "queued", "failed", "cancelled", "dead"],
  running: ["claimed", "succeeded", "failed", "queued", "cancelled", "dead"],
  succeeded: [],
  failed: ["queued"],
  cancelled: ["waiting"],
  dead: ["queued"],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return EDGES[from].includes(to);
}

export function assertTransition(id: string, from: TaskState, to: TaskState): void {
  if (!canTransition(from, to)) {
    throw new MeshError("FAILED_PRECONDITION", `task ${id}: cannot go from ${from} to ${to}`);
  }
}
