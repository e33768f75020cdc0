/**
 * The index of parked tasks. A queued task that a claimer parks because no live worker serves
 * it has no doorbell (the claimer acks it, see claim/claim.ts), so the doorbells alone do not
 * name every queued task. Stream MESH_PARKED holds one message per parked task on
 * `mesh.parked.<pool>.<id>`, and a limited queued listing reads its subjects with one
 * stream-info request, the way it reads the doorbells (task-listing.ts).
 *
 * The index is a hint, never the truth: whoever reads it reads each record it names by key and
 * keeps only the ones still queued, so a stale entry costs one read and never a wrong answer (a
 * record deleted by retention stays deleted).
 * - The claimer writes the entry BEFORE it acks the parked doorbell, so a parked task is always
 *   in one of the two places (a daemon that dies in between leaves the doorbell, which comes
 *   back).
 * - The sweeper removes entries: after it rings a parked task again, and when it read the task's
 *   record as no longer queued (claimed, finished, deleted). Each removal only takes the
 *   messages already there when the pass read the index (`upTo`), so an entry written since,
 *   by a claimer parking the task again, stays.
 * - The sweeper repairs it: a queued task no live worker serves that has no entry (parked by a
 *   daemon without the index, or an entry removed in a race) gets one at its next pass.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import {
  isStreamNotFound,
  type JsPublish,
  PARKED_STREAM,
  PARKED_SUBJECT_PREFIX,
  PARKED_SUBJECTS,
  parkedPoolFilter,
  parkedSubject,
} from "../nats/index.js";
import { ID_RE } from "../tasks/index.js";

/** The index as read at one moment: each parked task's pool by id, and the stream's last sequence then. */
export interface ParkedIndex {
  pools: Map<string, string>;
  /** Every entry in `pools` was written at or before this sequence. */
  lastSeq: number;
}

/** Records that task `id` of `pool` is parked (written before its doorbell is acked). */
export async function markParked(js: JsPublish, pool: string, id: string): Promise<void> {
  await js.publish(parkedSubject(pool, id), JSON.stringify({ id }));
}

/**
 * The parked tasks the index names (of `pool`, or of every pool), from one stream-info request:
 * its cost grows with the parked tasks, not with the task records. No stream: none.
 */
export async function readParked(jsm: JetStreamManager, pool?: string): Promise<ParkedIndex> {
  let info: Awaited<ReturnType<JetStreamManager["streams"]["info"]>>;
  try {
    info = await jsm.streams.info(PARKED_STREAM, {
      subjects_filter: pool ? parkedPoolFilter(pool) : PARKED_SUBJECTS,
    });
  } catch (err) {
    if (isStreamNotFound(err)) return { pools: new Map(), lastSeq: 0 };
    throw err;
  }
  const pools = new Map<string, string>();
  for (const s of Object.keys(info.state.subjects ?? {})) {
    const rest = s.slice(PARKED_SUBJECT_PREFIX.length);
    const dot = rest.lastIndexOf(".");
    const id = rest.slice(dot + 1);
    if (dot > 0 && ID_RE.test(id)) pools.set(id, rest.slice(0, dot));
  }
  return { pools, lastSeq: info.state.last_seq };
}

/** The ids of the parked tasks the index names (see readParked). */
export async function parkedIds(jsm: JetStreamManager, pool?: string): Promise<string[]> {
  return [...(await readParked(jsm, pool)).pools.keys()];
}

/**
 * Removes task `id`'s entry as written up to sequence `upTo` (an index read's lastSeq): an entry
 * written later stays. No stream: nothing to remove.
 */
export async function unmarkParked(
  jsm: JetStreamManager,
  pool: string,
  id: string,
  upTo: number,
): Promise<void> {
  try {
    await jsm.streams.purge(PARKED_STREAM, { filter: parkedSubject(pool, id), seq: upTo + 1 });
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
}
