/**
 * While a task is waited on, asks the daemon every second whether any live worker can serve it
 * (the record view's `unschedulable` reason). Says so once each time it becomes unschedulable,
 * and gives up when it stayed so for `timeoutMs` without a break (0: never gives up).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { taskStateName } from "../proto/index.js";
import type { MeshClient } from "./client.js";

export const UNSCHEDULABLE_POLL_MS = 1000;

export interface Unschedulable {
  reason: string;
  state: string;
  attempt: number;
}

export interface GuardOptions {
  timeoutMs: number;
  signal: AbortSignal;
  onUnschedulable(u: Unschedulable): void;
  pollMs?: number;
}

/**
 * Resolves with the task's state when it stayed unschedulable for `timeoutMs`; resolves
 * undefined when `signal` aborts first (the watch ended). Never rejects: a failed poll is no
 * verdict, the watch itself reports an unreachable daemon.
 */
export async function guardSchedulable(
  client: MeshClient,
  id: string,
  o: GuardOptions,
): Promise<Unschedulable | undefined> {
  const pollMs = o.pollMs ?? UNSCHEDULABLE_POLL_MS;
  let since: number | undefined;
  // The first look after one poll period: a watch replays the task's history first.
  let wait = pollMs;
  while (!o.signal.aborted) {
    try {
      await sleep(wait, undefined, { signal: o.signal });
    } catch {
      return undefined;
    }
    let verdict: Unschedulable | undefined;
    let known = false;
    try {
      const { task } = await client.getTask(id);
      known = task !== undefined;
      if (task?.unschedulableReason) {
        verdict = {
          reason: task.unschedulableReason,
          state: taskStateName(task.state),
          attempt: task.attempt,
        };
      }
    } catch {
      // keep the last verdict
    }
    if (o.signal.aborted) return undefined;
    if (known && !verdict) since = undefined;
    if (verdict) {
      if (since === undefined) {
        since = Date.now();
        o.onUnschedulable(verdict);
      }
      if (o.timeoutMs > 0 && Date.now() - since >= o.timeoutMs) return verdict;
    }
    const left = since !== undefined && o.timeoutMs > 0 ? since + o.timeoutMs - Date.now() : pollMs;
    wait = Math.max(0, Math.min(pollMs, left));
  }
  return undefined;
}
