/**
 * Admission to the task records bucket. The bucket has a hard byte limit (JetStream
 * `max_bytes` with discard "new": a write that does not fit is refused, no record is ever
 * dropped), but records keep growing after submit (every attempt adds to its record), and a
 * refused heartbeat or finish would cost a running task its lease. So new submits stop
 * earlier, at `SOFT_RATIO` of the limit: the rest is headroom for the records already there.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { MeshError } from "../errors.js";
import { formatBytes, monotonicNow } from "../util/index.js";

/** New submits stop when the bucket would pass this share of its byte limit. */
export const SOFT_RATIO = 0.9;
/** Stream info is read again after this long; submits in between are counted locally. */
const REFRESH_MS = 1000;
/**
 * A reading up to this old that leaves room (below CLOSE_RATIO of the soft limit) admits at
 * once and is read again behind the submit; an older one, or one near the limit, is waited for.
 * Without this every submit after a quiet second waited a stream info round trip before its
 * record was even written (the idle pickup: issue 17).
 */
export const MAX_STALE_MS = 10_000;
const CLOSE_RATIO = 0.8;

export class BucketCapacity {
  private seen: { bytes: number; maxBytes: number; at: number } | undefined;
  /** The stream info read under way: concurrent submits share it, so none overwrites another's count. */
  private reading: Promise<void> | undefined;

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly field: string,
    private readonly now: () => number = monotonicNow,
  ) {}

  /** Throws RESOURCE_EXHAUSTED when `bytes` more would pass the soft limit; else counts them. */
  async admit(bytes: number): Promise<void> {
    const t = this.now();
    const last = this.seen;
    if (!last || t - last.at > REFRESH_MS) {
      this.reading ??= this.jsm.streams
        .info(this.stream)
        .then((si) => {
          this.seen = { bytes: si.state.bytes, maxBytes: si.config.max_bytes, at: t };
        })
        .finally(() => {
          this.reading = undefined;
        });
      const roomy =
        last !== undefined &&
        t - last.at <= MAX_STALE_MS &&
        (last.maxBytes <= 0 || last.bytes + bytes <= last.maxBytes * SOFT_RATIO * CLOSE_RATIO);
      // A failed read behind the submit is simply tried again by the next one.
      if (roomy) this.reading.catch(() => undefined);
      else await this.reading;
    }
    if (!this.seen) return;
    const { maxBytes } = this.seen;
    if (maxBytes <= 0) return;
    const soft = Math.floor(maxBytes * SOFT_RATIO);
    if (this.seen.bytes + bytes > soft) {
      throw new MeshError(
        "RESOURCE_EXHAUSTED",
        `the task records bucket is full: ${formatBytes(this.seen.bytes)} of its ${formatBytes(maxBytes)} are used and new submits stop at ${SOFT_RATIO * 100}% (${this.field}); nothing was submitted. Finished tasks' records are deleted after taskRetention: wait for that, lower taskRetention, or raise ${this.field}`,
        { field: this.field },
      );
    }
    this.seen.bytes += bytes;
  }
}
