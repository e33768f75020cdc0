/**
 * The queue message is only a doorbell: "task <id> may need a worker". Ownership lives in the
 * KV record, so a duplicate doorbell is harmless and a missing one is re-rung by the sweeper.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { TASKS_STREAM, taskSubject } from "./topology.js";

export interface Doorbell {
  id: string;
}

/** `dedupKey` makes the enqueue idempotent inside JetStream's duplicate window. */
export async function ringDoorbell(
  js: JetStreamClient,
  pool: string,
  id: string,
  dedupKey: string,
): Promise<void> {
  await js.publish(taskSubject(pool, id), JSON.stringify({ id } satisfies Doorbell), { msgID: dedupKey });
}

export async function hasDoorbell(jsm: JetStreamManager, pool: string, id: string): Promise<boolean> {
  try {
    const m = await jsm.streams.getMessage(TASKS_STREAM, { last_by_subj: taskSubject(pool, id) });
    return m !== null && m !== undefined;
  } catch (err) {
    if (/no message found|not found/i.test(String(err))) return false;
    throw err;
  }
}

export function doorbellTaskId(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}
