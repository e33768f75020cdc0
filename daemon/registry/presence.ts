/**
 * Presence: each daemon re-puts its WorkerInfo into the `mesh-workers` bucket every interval;
 * the bucket's TTL (3 intervals) drops a dead daemon's key. NATS 2.9 emits no event when a key
 * expires, so readers also drop a worker whose last update is older than its `staleAfterMs`.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { scanKv, WORKERS_BUCKET } from "../nats/index.js";
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
 * that beats every 500 ms. One pass over the bucket (a consumer streaming the last value of
 * every key), never a request per worker.
 */
export async function listWorkers(
  kv: KV,
  jsm: JetStreamManager,
  staleMs: number,
  now = Date.now(),
): Promise<WorkerInfo[]> {
  const out: WorkerInfo[] = [];
  for (const { info } of await readWorkers(kv, jsm)) if (isFresh(info, staleMs, now)) out.push(info);
  return sortWorkers(out);
}

/** Every well-formed presence value in the bucket (stale ones too), with its revision: one pass. */
export async function readWorkers(
  kv: KV,
  jsm: JetStreamManager,
): Promise<Array<{ key: string; info: WorkerInfo; revision: number }>> {
  const out: Array<{ key: string; info: WorkerInfo; revision: number }> = [];
  for (const e of await scanKv({ js: jsm.jetstream(), jsm }, kv, WORKERS_BUCKET)) {
    const info = parseWorker(e.value);
    if (info) out.push({ key: e.key, info, revision: e.revision });
  }
  return out;
}

/** A presence value as a WorkerInfo; undefined when it is empty or malformed (not a worker). */
export function parseWorker(value: Uint8Array): WorkerInfo | undefined {
  if (value.length === 0) return undefined;
  try {
    const w = JSON.parse(dec.decode(value)) as WorkerInfo;
    return typeof w?.workerId === "string" && typeof w.updatedAt === "string" ? w : undefined;
  } catch {
    return undefined;
  }
}

/** How long after an update of its presence `w` counts as gone: its own `staleAfterMs`, else `staleMs`. */
export const staleAfter = (w: WorkerInfo, staleMs: number): number =>
  typeof w.staleAfterMs === "number" && w.staleAfterMs > 0 ? w.staleAfterMs : staleMs;

/** When `w` counts as gone by the writer's wall clock (ms since the epoch). */
export const staleAt = (w: WorkerInfo, staleMs: number): number => Date.parse(w.updatedAt) + staleAfter(w, staleMs);

/**
 * Whether `w` is fresh by the wall clocks: its writer's stamp against the reader's `now`. Used by
 * one-shot reads, which cannot time anything themselves; a reader that watches the bucket (the
 * WorkerDirectory) times each worker's silence on its own monotonic clock instead, so neither
 * clocks set apart between machines nor a jump of its own wall clock make a live worker look gone.
 */
export const isFresh = (w: WorkerInfo, staleMs: number, now: number): boolean => now <= staleAt(w, staleMs);

// By code unit, not localeCompare: an idle daemon lists workers every few seconds, and the
// first localeCompare loads ICU's collator (a few MB of RSS) for an order no one reads as prose.
export const sortWorkers = (ws: WorkerInfo[]): WorkerInfo[] =>
  ws.sort((a, b) => byCodeUnit(a.name, b.name) || byCodeUnit(a.workerId, b.workerId));

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
