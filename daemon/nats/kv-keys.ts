/**
 * Lists a KV bucket's keys from the stream's per-subject counts. `kv.keys()` iterates an ordered
 * consumer and can wait forever on a bucket whose keys are rewritten or expire while it reads
 * (presence keys do, every few seconds); one stream-info request cannot.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { kvStream, kvSubjectPrefix } from "./names.js";

export async function kvKeys(jsm: JetStreamManager, bucket: string): Promise<string[]> {
  const prefix = kvSubjectPrefix(bucket);
  const info = await jsm.streams.info(kvStream(bucket), { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {})
    .filter((s) => s.startsWith(prefix))
    .map((s) => s.slice(prefix.length));
}
