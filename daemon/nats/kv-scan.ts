/**
 * Reads the newest entry of every key of a KV bucket in one pass: an ordered consumer with
 * "last per subject" delivery streams them, where a get per key would cost a request and a
 * reply each (a bucket of a week of tasks, read by every sweep and `mesh tasks`).
 *
 * Keys are rewritten while the pass reads (task records are, all the time), and `kv.keys()`,
 * which waits for "nothing pending", may then never end. So the pass takes the keys and the last
 * sequence from one stream-info request first, streams until it reaches that sequence, and then
 * reads the few keys it has not seen (rewritten or removed meanwhile) one by one.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { MeshError } from "../errors.js";

export interface KvScanEntry {
  key: string;
  value: Uint8Array;
  revision: number;
}

const OPERATION_HEADER = "KV-Operation";

/** The live entries (deleted and purged keys left out) of `bucket`, one per key, newest value. */
export async function scanKv(
  nats: { js: JetStreamClient; jsm: JetStreamManager },
  kv: KV,
  bucket: string,
  timeoutMs = 60_000,
): Promise<KvScanEntry[]> {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  const info = await nats.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
  const keys = Object.keys(info.state.subjects ?? {})
    .filter((s) => s.startsWith(prefix))
    .map((s) => s.slice(prefix.length));
  if (keys.length === 0) return [];
  const until = info.state.last_seq;
  const seen = new Map<string, KvScanEntry | undefined>();

  const consumer = await nats.js.consumers.get(stream, {
    filter_subjects: `${prefix}>`,
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  const messages = await consumer.consume({ max_messages: 512 });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void messages.close();
  }, timeoutMs);
  try {
    for await (const m of messages) {
      const key = m.subject.slice(prefix.length);
      const op = m.headers?.get(OPERATION_HEADER);
      // A key rewritten during the pass shows up again, later: the newest wins.
      seen.set(key, op === "DEL" || op === "PURGE" ? undefined : { key, value: m.data, revision: m.seq });
      if (m.seq >= until || m.info.pending === 0 || seen.size >= keys.length) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  if (timedOut) {
    throw new MeshError("UNAVAILABLE", `reading bucket ${bucket} took longer than ${timeoutMs} ms`);
  }
  // Keys whose message was replaced or removed before the pass reached it.
  const missing = keys.filter((k) => !seen.has(k));
  for (let i = 0; i < missing.length; i += 64) {
    const got = await Promise.all(missing.slice(i, i + 64).map((k) => kv.get(k)));
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
