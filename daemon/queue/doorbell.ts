/**
 * The queue message is only a doorbell: "task <id> may need a worker". Ownership lives in the
 * KV record, so a duplicate doorbell is harmless and a missing one is re-rung by the sweeper.
 *
 * A doorbell may carry a snapshot: the record as written at `revision`. A claimer can then try
 * its compare-and-set at that revision without reading the record first. The snapshot is only
 * a hint: if the record changed since, the compare fails and the claimer reads the record.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { JsPublish } from "../nats/js-publisher.js";
import type { TaskRecord, VersionedRecord } from "../tasks/record.js";
import type { Delivery } from "./delivery.js";
import { TASKS_STREAM, taskSubject } from "./topology.js";

export interface Doorbell {
  id: string;
  /** The KV revision `record` was written at. */
  revision?: number;
  record?: TaskRecord;
}

/** `dedupKey` makes the enqueue idempotent inside JetStream's duplicate window. */
export async function ringDoorbell(
  js: JsPublish,
  pool: string,
  id: string,
  dedupKey: string,
  snapshot?: VersionedRecord,
): Promise<void> {
  const bell: Doorbell = snapshot ? { id, revision: snapshot.revision, record: snapshot.record } : { id };
  await js.publish(taskSubject(pool, id), JSON.stringify(bell), { msgID: dedupKey });
}

/** The doorbell's snapshot when it is one of a queued record of this task, else undefined. */
export function doorbellSnapshot(msg: Delivery, id: string): VersionedRecord | undefined {
  if (msg.data.length < 3) return undefined;
  try {
    const bell = msg.json<Doorbell>();
    const r = bell.record;
    if (typeof bell.revision !== "number" || !r || r.id !== id || r.state !== "queued") return undefined;
    return { record: r, revision: bell.revision };
  } catch {
    return undefined;
  }
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
