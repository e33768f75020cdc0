/**
 * Queue depth of one pool, read from JetStream at scrape time: two cheap API calls.
 * The pool's durable consumer knows how many doorbells are undelivered (`num_pending`) and
 * delivered but unacknowledged (`num_ack_pending`: claimed or running tasks, and doorbells
 * waiting out a nak delay). The oldest undelivered doorbell is the first message on the pool's
 * subjects after the consumer's delivered stream sequence (`next_by_subj`, nats-server 2.9+).
 */
import type { JetStreamManager, MsgRequest } from "@nats-io/jetstream";
import { poolConsumerName, poolFilter, TASKS_STREAM } from "../queue/topology.js";

export interface QueueStats {
  pending: number;
  ackPending: number;
  redelivered: number;
  /** Age of the oldest undelivered doorbell; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
}

export async function readQueueStats(
  jsm: JetStreamManager,
  pool: string,
  now: () => number = Date.now,
): Promise<QueueStats> {
  const ci = await jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
  let oldest = 0;
  if (ci.num_pending > 0) {
    // The client's types predate `next_by_subj` for STREAM.MSG.GET; the server has it since 2.9.
    const query = {
      seq: ci.delivered.stream_seq + 1,
      next_by_subj: poolFilter(pool),
    } as unknown as MsgRequest;
    const first = await jsm.streams.getMessage(TASKS_STREAM, query);
    // Server and local clocks may differ a little: never report a negative age.
    if (first) oldest = Math.max(0, (now() - first.time.getTime()) / 1000);
  }
  return {
    pending: ci.num_pending,
    ackPending: ci.num_ack_pending,
    redelivered: ci.num_redelivered,
    oldestPendingAgeSeconds: oldest,
  };
}
