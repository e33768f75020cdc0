/**
 * The queue message is only a doorbell: "task <id> may need a worker". Ownership lives in the
 * KV record, so a duplicate doorbell is harmless and a missing one is re-rung by the sweeper.
 *
 * A doorbell may carry a snapshot: the record as written at `revision`. A claimer can then try
 * its compare-and-set at that revision without reading the record first. The snapshot is only
 * a hint: if the record changed since, the compare fails and the claimer reads the record.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import {
  isNoMessageFound,
  isStreamNotFound,
  type JsPublish,
  poolFilter,
  TASKS_STREAM,
  TASKS_SUBJECTS,
  taskSubject,
} from "../nats/index.js";
import { ID_RE, recordProblem, type TaskRecord, type VersionedRecord } from "../tasks/index.js";
import type { Delivery } from "./delivery.js";

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
  let body = JSON.stringify({ id } satisfies Doorbell);
  // Only a queued record is worth a snapshot (nothing else is claimed from it), and only a small
  // one: a big prompt would make every doorbell big; the claimer then reads the record instead.
  if (snapshot?.record.state === "queued") {
    const withSnapshot = JSON.stringify({
      id,
      revision: snapshot.revision,
      record: snapshot.record,
    } satisfies Doorbell);
    if (withSnapshot.length <= MAX_SNAPSHOT_BYTES) body = withSnapshot;
  }
  await js.publish(taskSubject(pool, id), body, { msgID: dedupKey });
}

/** Doorbells carry a snapshot only below this size (serialized). */
export const MAX_SNAPSHOT_BYTES = 16 * 1024;

/** No doorbell ringDoorbell makes is bigger (a snapshot is only sent below MAX_SNAPSHOT_BYTES). */
const MAX_DOORBELL_BYTES = MAX_SNAPSHOT_BYTES + 1024;
const dec = new TextDecoder("utf-8", { fatal: true });

/**
 * The doorbell in this delivery, or why it is not one: the subject's last token must be a task
 * id and the body a JSON object naming that same id. A malformed doorbell is set aside (acked)
 * by the claimer rather than redelivered forever.
 */
export function readDoorbell(msg: Delivery): { bell: Doorbell } | { problem: string } {
  const id = doorbellTaskId(msg.subject);
  if (!ID_RE.test(id)) return { problem: `subject ${msg.subject} does not end in a task id` };
  if (msg.data.length > MAX_DOORBELL_BYTES)
    return { problem: `body of ${msg.data.length} bytes is too big for a doorbell` };
  let bell: unknown;
  try {
    bell = JSON.parse(dec.decode(msg.data));
  } catch {
    return { problem: "body is not JSON" };
  }
  if (typeof bell !== "object" || bell === null || Array.isArray(bell))
    return { problem: "body is not a JSON object" };
  const named = (bell as { id?: unknown }).id;
  if (named !== id) return { problem: `body names task ${JSON.stringify(named) ?? "(none)"}, not ${id}` };
  return { bell: bell as Doorbell };
}

/**
 * The doorbell's snapshot when it is a well-formed queued record of this task, else undefined
 * (the claimer then reads the record). Its content is trusted like the bucket's: whoever may
 * publish on the mesh's subjects may as well write the KV records (see README, Security).
 */
export function doorbellSnapshot(msg: Delivery | Doorbell, id: string): VersionedRecord | undefined {
  let bell: Doorbell;
  if ("subject" in msg) {
    const read = readDoorbell(msg);
    if (!("bell" in read)) return undefined;
    bell = read.bell;
  } else bell = msg;
  const r = bell.record;
  if (!Number.isSafeInteger(bell.revision) || (bell.revision ?? 0) <= 0 || !r || typeof r !== "object")
    return undefined;
  const wellFormed = recordProblem(r, id) === undefined && r.state === "queued" && r.spec.id === id;
  return wellFormed ? { record: r, revision: bell.revision as number } : undefined;
}

export async function hasDoorbell(jsm: JetStreamManager, pool: string, id: string): Promise<boolean> {
  try {
    const m = await jsm.streams.getMessage(TASKS_STREAM, { last_by_subj: taskSubject(pool, id) });
    return m !== null && m !== undefined;
  } catch (err) {
    // No message on that subject (nats.js usually answers null), or no tasks stream at all.
    if (isNoMessageFound(err) || isStreamNotFound(err)) return false;
    throw err;
  }
}

/**
 * The ids of the tasks that have a doorbell in the queue (of `pool`, or of every pool), from one
 * stream-info request: its cost grows with the doorbells waiting, not with the task records.
 * Every queued task a live worker serves has one (submit, requeue and retry ring it, a back-off
 * keeps it, the sweeper rings a lost one again); a task parked because no live worker serves it
 * has none (its doorbell was acked, see claim/claim.ts).
 */
export async function doorbellIds(jsm: JetStreamManager, pool?: string): Promise<string[]> {
  let info: Awaited<ReturnType<JetStreamManager["streams"]["info"]>>;
  try {
    info = await jsm.streams.info(TASKS_STREAM, {
      subjects_filter: pool ? poolFilter(pool) : TASKS_SUBJECTS,
    });
  } catch (err) {
    if (isStreamNotFound(err)) return [];
    throw err;
  }
  const ids = new Set<string>();
  for (const s of Object.keys(info.state.subjects ?? {})) {
    const id = doorbellTaskId(s);
    if (ID_RE.test(id)) ids.add(id);
  }
  return [...ids];
}

export function doorbellTaskId(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}
