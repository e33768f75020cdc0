/**
 * Presence: each daemon re-puts its WorkerInfo into the `mesh-workers` bucket every interval;
 * the bucket's TTL (3 intervals) drops a dead daemon's key. NATS 2.9 emits no event when a key
 * expires, so discovery rescans instead of watching.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { kvKeys, WORKERS_BUCKET } from "../nats/index.js";
import type { WorkerInfo } from "./worker-info.js";

const dec = new TextDecoder();

export class Presence extends Part {
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;

  constructor(
    private readonly kv: KV,
    private readonly snapshot: () => WorkerInfo,
    private readonly intervalMs: number,
    log: Logger,
  ) {
    super("presence", log);
  }

  protected async onStart(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
  }

  /** Publishes shortly, coalescing bursts (slot changes under load would be a write per task). */
  beatSoon(delayMs = 250): void {
    if (this.soon || !this.live) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.beat();
    }, delayMs);
  }

  private get live(): boolean {
    return this.state === "starting" || this.state === "running";
  }

  /** Publishes now (also while the daemon drains: the snapshot then says so). */
  beat(): Promise<void> {
    if (!this.live) return Promise.resolve();
    const info = this.snapshot();
    return this.life.track(
      this.kv.put(info.workerId, JSON.stringify(info)).then(
        () => undefined,
        (err: unknown) => this.life.log.warn({ err: errorMessage(err) }, "presence update failed"),
      ),
    );
  }

  /** Removes our key so we leave discovery at once, after any update in flight. */
  protected async onStop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    await this.life.idle();
    try {
      await this.kv.delete(this.snapshot().workerId);
    } catch {
      // the TTL removes it anyway
    }
  }
}

/**
 * Live workers: the bucket's current keys, each older than its own `staleAfterMs` (else
 * `staleMs`, the reader's) filtered out: a worker that beats every 5 s is not gone to a reader
 * that beats every 500 ms.
 */
export async function listWorkers(
  kv: KV,
  jsm: JetStreamManager,
  staleMs: number,
  now = Date.now(),
): Promise<WorkerInfo[]> {
  const keys = await kvKeys(jsm, WORKERS_BUCKET);
  const out: WorkerInfo[] = [];
  await Promise.all(
    keys.map(async (k) => {
      const e = await kv.get(k);
      if (e?.operation !== "PUT" || e.value.length === 0) return;
      try {
        const w = JSON.parse(dec.decode(e.value)) as WorkerInfo;
        const stale = typeof w.staleAfterMs === "number" && w.staleAfterMs > 0 ? w.staleAfterMs : staleMs;
        if (now - Date.parse(w.updatedAt) <= stale) out.push(w);
      } catch {
        // a malformed key is not a worker
      }
    }),
  );
  // By code unit, not localeCompare: an idle daemon lists workers every few seconds, and the
  // first localeCompare loads ICU's collator (a few MB of RSS) for an order no one reads as prose.
  return out.sort((a, b) => byCodeUnit(a.name, b.name) || byCodeUnit(a.workerId, b.workerId));
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
