/**
 * Reads a KV bucket from its newest write backwards, by stream sequence: each key's newest
 * entry once, newest first (a bucket with history 1 keeps one message per key, so every message
 * met is its key's current entry; a key rewritten while the read goes on is met at its older
 * sequence and yields that entry, as a scan would have). Sequences whose message is gone (a
 * rewrite or a purge removed it) cost one request each and yield nothing.
 *
 * This is what answers "the N most recently written records" without reading the whole bucket;
 * `maxSequences` bounds its cost, and the caller falls back to a full scan when it is reached.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { kvStream, kvSubjectPrefix } from "./names.js";

export interface KvTailEntry {
  key: string;
  value: Uint8Array;
  revision: number;
}

export interface KvTailOptions {
  /**
   * Stop after looking at this many sequences (the tail is then `exhausted: false`); a function
   * gets the stream's span (last - first sequence + 1) first.
   */
  maxSequences: number | ((span: number) => number);
  /** Gets in flight at once (default 64). */
  window?: number;
}

export interface KvTailRead {
  /** Sequences looked at so far (messages and holes). */
  looked: number;
  /** The whole stream was read down to its first sequence. */
  exhausted: boolean;
}

const OPERATION_HEADER = "KV-Operation";

/**
 * Calls `visit` with each live key's newest entry, newest first, until `visit` returns true
 * (enough), the stream's first sequence is passed, or `maxSequences` were looked at.
 */
export async function readKvTail(
  jsm: JetStreamManager,
  bucket: string,
  opts: KvTailOptions,
  visit: (e: KvTailEntry) => boolean,
): Promise<KvTailRead> {
  const stream = kvStream(bucket);
  const prefix = kvSubjectPrefix(bucket);
  const info = await jsm.streams.info(stream);
  const first = Math.max(1, info.state.first_seq);
  let seq = info.state.last_seq;
  const window = opts.window ?? 64;
  const max =
    typeof opts.maxSequences === "function" ? opts.maxSequences(seq - first + 1) : opts.maxSequences;
  const seen = new Set<string>();
  let looked = 0;
  if (info.state.messages === 0) return { looked, exhausted: true };
  while (seq >= first) {
    if (looked >= max) return { looked, exhausted: false };
    const n = Math.min(window, seq - first + 1, max - looked);
    const seqs = Array.from({ length: n }, (_, i) => seq - i);
    const got = await Promise.all(seqs.map((s) => jsm.streams.getMessage(stream, { seq: s })));
    looked += n;
    seq -= n;
    for (const m of got) {
      if (!m?.subject.startsWith(prefix)) continue;
      const key = m.subject.slice(prefix.length);
      if (seen.has(key)) continue;
      seen.add(key);
      const op = m.header?.get(OPERATION_HEADER);
      if (op === "DEL" || op === "PURGE" || m.data.length === 0) continue;
      if (visit({ key, value: m.data, revision: m.seq })) return { looked, exhausted: false };
    }
  }
  return { looked, exhausted: true };
}
