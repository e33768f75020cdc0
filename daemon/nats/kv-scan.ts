/**
 * Reads the newest entry of every key of a KV bucket in one pass: an ordered consumer with
 * "last per subject" delivery streams them, where a get per key would cost a request and a
 * reply each (a bucket of a week of tasks, read by every sweep and `mesh tasks`).
 *
 * Keys are rewritten while the pass reads (task records are, all the time), and `kv.keys()`,
 * which waits for "nothing pending", may then never end. So the pass takes the keys and the last
 * sequence from one stream-info request first, streams until it reaches that sequence, and then
 * reads the keys it has not seen (rewritten or removed meanwhile) one by one. If the stream
 * stops delivering before that (the rest was purged without a marker), or the pass takes longer
 * than `timeoutMs`, the same per-key reads finish it. The consumer is deleted afterwards.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { kvStream, kvSubjectPrefix } from "./names.js";
import { readOrdered } from "./ordered-read.js";

export interface KvScanEntry {
  key: string;
  value: Uint8Array;
  revision: number;
}

export interface KvScanOptions {
  /** Give up streaming after this long and read the rest by key (default 60 s). */
  timeoutMs?: number;
  /** How long without a message before asking the server whether any are left (default 1 s). */
  idleCheckMs?: number;
  /** Tests: runs after the keys were listed, before the consumer is created. */
  afterListing?: () => Promise<void>;
  /** A key whose read by name failed (e.g. not a valid KV key): skipped, not fatal. */
  onUnreadableKey?: (key: string, reason: string) => void;
}

const OPERATION_HEADER = "KV-Operation";

/** The live entries (deleted and purged keys left out) of `bucket`, one per key, newest value. */
export async function scanKv(
  nats: { js: JetStreamClient; jsm: JetStreamManager },
  kv: KV,
  bucket: string,
  opts: KvScanOptions = {},
): Promise<KvScanEntry[]> {
  const stream = kvStream(bucket);
  const prefix = kvSubjectPrefix(bucket);
  const info = await nats.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
  const keys = Object.keys(info.state.subjects ?? {})
    .filter((s) => s.startsWith(prefix))
    .map((s) => s.slice(prefix.length));
  if (keys.length === 0) return [];
  const until = info.state.last_seq;
  await opts.afterListing?.();
  const seen = new Map<string, KvScanEntry | undefined>();

  const consumer = await nats.js.consumers.get(stream, {
    filter_subjects: `${prefix}>`,
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  // However the pass ends, the keys it did not reach are read by key below.
  await readOrdered(
    consumer,
    until,
    (m) => {
      const key = m.subject.slice(prefix.length);
      const op = m.headers?.get(OPERATION_HEADER);
      // A key rewritten during the pass shows up again, later: the newest wins.
      seen.set(key, op === "DEL" || op === "PURGE" ? undefined : { key, value: m.data, revision: m.seq });
    },
    { maxMessages: 512, timeoutMs: opts.timeoutMs ?? 60_000, idleMs: opts.idleCheckMs ?? 1000 },
  );
  // Keys whose message was replaced or removed before the pass reached it.
  const missing = keys.filter((k) => !seen.has(k));
  for (let i = 0; i < missing.length; i += 64) {
    const got = await Promise.all(
      missing.slice(i, i + 64).map((k) =>
        Promise.resolve(k)
          .then((key) => kv.get(key))
          .catch((err: unknown) => {
            // One bad key (a subject written around the KV client) does not fail the pass.
            opts.onUnreadableKey?.(k, err instanceof Error ? err.message : String(err));
            return null;
          }),
      ),
    );
    for (const e of got) {
      if (e)
        seen.set(
          e.key,
          e.operation === "PUT" ? { key: e.key, value: e.value, revision: e.revision } : undefined,
        );
    }
  }
  return [...seen.values()].filter((e): e is KvScanEntry => e !== undefined);
}
