/**
 * The keys of a KV bucket written (put, deleted or purged with a marker) after a stream
 * sequence: one pass of a headers-only ordered consumer from that sequence to the stream's last
 * message, so a reader that knew the bucket at that sequence reads only what changed since,
 * not every key again. A key rewritten meanwhile shows up through its newest message (the
 * older ones are gone from a history-1 bucket); its value is read by key afterwards.
 *
 * Undefined when reading the changes would cost about as much as reading the whole bucket (more
 * messages since than the bucket holds), or when the pass takes longer than `timeoutMs`: the
 * caller then reads the whole bucket instead. (A purge without a marker, as `TaskStore.purge`
 * does, leaves no message: a reader learns of it by reading the key.)
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { kvStream, kvSubjectPrefix } from "./names.js";
import { readOrdered } from "./ordered-read.js";

const OPERATION_HEADER = "KV-Operation";

export interface KvChanges {
  /**
   * Keys with a message after the given sequence: the sequence of the last one seen, and whether
   * it was a put (else a delete or purge marker). A read of the key that finds an older revision
   * than a put's sequence came from a replica that is behind (direct gets).
   */
  keys: Map<string, { seq: number; put: boolean }>;
  /** The stream's last sequence when the pass began: the next pass starts after it. */
  lastSeq: number;
  /** How many messages (keys, for history 1) the bucket held then. */
  messages: number;
}

/** The stream's last sequence now (one stream-info request). */
export async function kvLastSeq(jsm: JetStreamManager, bucket: string): Promise<number> {
  return (await jsm.streams.info(kvStream(bucket))).state.last_seq;
}

export async function kvChangedKeys(
  nats: { js: JetStreamClient; jsm: JetStreamManager },
  bucket: string,
  afterSeq: number,
  opts: { timeoutMs?: number; idleCheckMs?: number } = {},
): Promise<KvChanges | undefined> {
  const stream = kvStream(bucket);
  const prefix = kvSubjectPrefix(bucket);
  const { state } = await nats.jsm.streams.info(stream);
  const until = state.last_seq;
  const keys = new Map<string, { seq: number; put: boolean }>();
  if (until <= afterSeq) return { keys, lastSeq: until, messages: state.messages };
  if (until - afterSeq > Math.max(state.messages, 1024)) return undefined;
  const consumer = await nats.js.consumers.get(stream, {
    filter_subjects: `${prefix}>`,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: afterSeq + 1,
    headers_only: true,
  });
  // Every message in the range may have been rewritten away: then nothing comes ("idle").
  const end = await readOrdered(
    consumer,
    until,
    (m) => {
      if (m.seq > until) return; // the next pass reads it
      const op = m.headers?.get(OPERATION_HEADER);
      keys.set(m.subject.slice(prefix.length), { seq: m.seq, put: op !== "DEL" && op !== "PURGE" });
    },
    { maxMessages: 1024, timeoutMs: opts.timeoutMs ?? 30_000, idleMs: opts.idleCheckMs ?? 500 },
  );
  return end === "reached" || end === "idle" ? { keys, lastSeq: until, messages: state.messages } : undefined;
}
