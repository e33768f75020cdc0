/**
 * What a transition returns: the next record, what to do with the task's doorbell, and which
 * state events to publish once the record is written. The events are made from the record as
 * written (`stateEvents`): the store stamps its time and bounds its text on the way in.
 */
import type { StateEvent } from "../events.js";
import { stateEventAttempt } from "../events.js";
import type { TaskRecord, TaskState } from "../record.js";
import type { RecordIn } from "./states.js";

/** The task's doorbell, for whoever holds one (a caller that holds none has nothing to do). */
export type DoorbellAction =
  /** Done with it. `confirm`: wait for the server's answer (errors ignored). */
  | { kind: "ack"; confirm?: boolean }
  /** Give it back: delivered again after `delayMs`, or at `until` (timed when it is sent). */
  | { kind: "nak"; delayMs?: number; until?: string }
  /** Acked: no live worker serves the task; the sweeper rings it again when one does. */
  | { kind: "park" }
  /** Not settled now: the attempt keeps it (its lease acks it at the end), or there is none. */
  | { kind: "leave" }
  /** A new doorbell is rung for the record as written (submit, retry). */
  | { kind: "ring" };

/**
 * A state event to publish once the record is written: the written record's state (with the
 * worker that wrote it, for an attempt's own writes), or the claim's `claimed`, also when the
 * claim went straight to `running` (watchers see the same sequence either way).
 */
export type Notice = { of: "record"; workerId?: string } | { of: "claim" };

export interface Step<S extends TaskState = TaskState> {
  readonly record: RecordIn<S>;
  /** False when nothing changed: the caller writes nothing (but still publishes `notices`). */
  readonly write: boolean;
  readonly doorbell: DoorbellAction;
  readonly notices: readonly Notice[];
}

/** The state events of `notices` for `written`, the record as the store wrote it. */
export function stateEvents(written: TaskRecord, notices: readonly Notice[]): StateEvent[] {
  return notices.map((n) => {
    if (n.of === "claim") {
      return {
        type: "state",
        taskId: written.id,
        at: written.attempts[written.attempts.length - 1]?.claimedAt ?? written.updatedAt,
        state: "claimed",
        attempt: written.attempt,
        ...(written.owner ? { workerId: written.owner.workerId } : {}),
      };
    }
    return {
      type: "state",
      taskId: written.id,
      at: written.updatedAt,
      state: written.state,
      attempt: stateEventAttempt(written),
      ...(n.workerId ? { workerId: n.workerId } : {}),
      ...(written.reason ? { reason: written.reason } : {}),
      ...(written.state === "queued" && written.parked
        ? { parked: { account: written.parked.account, until: written.parked.until } }
        : {}),
    };
  });
}

/** How long a nak waits, at `nowMs`. */
export function nakDelayMs(a: Extract<DoorbellAction, { kind: "nak" }>, nowMs: number): number {
  if (a.until !== undefined) return Math.max(0, Date.parse(a.until) - nowMs);
  return a.delayMs ?? 0;
}
