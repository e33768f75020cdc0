/**
 * Queue depth per pool, read from JetStream at scrape time, for every pool that has tasks: the
 * daemon's own pools, every pool with a durable consumer (served now or earlier), and every pool
 * with doorbells in the stream, served by nobody (its backlog would otherwise be invisible).
 *
 * A pool's durable consumer knows how many doorbells are undelivered (`num_pending`) and
 * delivered but unacknowledged (`num_ack_pending`: claimed or running tasks, and doorbells
 * waiting out a nak delay). A pool without a consumer has only undelivered doorbells: the
 * stream's per-subject counts (one subject per task, `mesh.task.<pool>.<id>`) give their number.
 * The oldest undelivered doorbell is the first message on the pool's subjects after the
 * consumer's delivered stream sequence (`next_by_subj`, nats-server 2.9+).
 *
 * Cost per scrape: one consumer list, one stream info listing the subjects of the doorbells
 * held (one per unfinished task, paged by the client), one message read per pool with a backlog.
 */
import type { ConsumerInfo, JetStreamManager, MsgRequest } from "@nats-io/jetstream";
import {
  poolConsumerName,
  poolFilter,
  TASK_SUBJECT_PREFIX,
  TASKS_STREAM,
  TASKS_SUBJECTS,
} from "../nats/index.js";

export interface QueueStats {
  pending: number;
  ackPending: number;
  redelivered: number;
  /** Age of the oldest undelivered doorbell; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
}

const CONSUMER_PREFIX = poolConsumerName("");

async function oldestAge(
  jsm: JetStreamManager,
  pool: string,
  fromSeq: number,
  now: () => number,
): Promise<number> {
  // The client's types predate `next_by_subj` for STREAM.MSG.GET; the server has it since 2.9.
  const query = { seq: Math.max(1, fromSeq), next_by_subj: poolFilter(pool) } as unknown as MsgRequest;
  const first = await jsm.streams.getMessage(TASKS_STREAM, query);
  // Server and local clocks may differ a little: never report a negative age.
  return first ? Math.max(0, (now() - first.time.getTime()) / 1000) : 0;
}

function fromConsumer(ci: ConsumerInfo): Omit<QueueStats, "oldestPendingAgeSeconds"> {
  return { pending: ci.num_pending, ackPending: ci.num_ack_pending, redelivered: ci.num_redelivered };
}

/** One pool, through its durable consumer (which must exist). */
export async function readQueueStats(
  jsm: JetStreamManager,
  pool: string,
  now: () => number = Date.now,
): Promise<QueueStats> {
  const ci = await jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
  const oldest = ci.num_pending > 0 ? await oldestAge(jsm, pool, ci.delivered.stream_seq + 1, now) : 0;
  return { ...fromConsumer(ci), oldestPendingAgeSeconds: oldest };
}

/** Every pool that has tasks (see above), and `pools` always. */
export async function readMeshQueueStats(
  jsm: JetStreamManager,
  pools: readonly string[],
  now: () => number = Date.now,
): Promise<Map<string, QueueStats>> {
  const consumers = new Map<string, ConsumerInfo>();
  for await (const ci of jsm.consumers.list(TASKS_STREAM)) {
    if (ci.name.startsWith(CONSUMER_PREFIX)) consumers.set(ci.name.slice(CONSUMER_PREFIX.length), ci);
  }
  const si = await jsm.streams.info(TASKS_STREAM, { subjects_filter: TASKS_SUBJECTS });
  const doorbells = new Map<string, number>();
  for (const [subject, n] of Object.entries(si.state.subjects ?? {})) {
    const pool = subject.slice(TASK_SUBJECT_PREFIX.length).split(".")[0];
    if (pool) doorbells.set(pool, (doorbells.get(pool) ?? 0) + n);
  }
  const names = [...new Set([...pools, ...consumers.keys(), ...doorbells.keys()])];
  const out = new Map<string, QueueStats>();
  await Promise.all(
    names.map(async (pool) => {
      const ci = consumers.get(pool);
      const counts = ci
        ? fromConsumer(ci)
        : { pending: doorbells.get(pool) ?? 0, ackPending: 0, redelivered: 0 };
      const from = ci ? ci.delivered.stream_seq + 1 : si.state.first_seq;
      const oldest = counts.pending > 0 ? await oldestAge(jsm, pool, from, now) : 0;
      out.set(pool, { ...counts, oldestPendingAgeSeconds: oldest });
    }),
  );
  return out;
}
