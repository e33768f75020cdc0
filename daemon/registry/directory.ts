/**
 * A cached view of the live workers. The claim loop asks it whether some other worker can serve
 * a task it cannot, to decide how soon to hand it back; the sweeper asks it who is live.
 *
 * It watches the presence bucket (one push consumer: every presence update arrives as it is
 * written, about N/interval messages a second for N workers) after one pass over the bucket at
 * start, rather than re-reading every key every interval (N requests and replies each time).
 * NATS 2.9 says nothing when a key expires, so a worker not heard from for its `staleAfterMs`
 * is dropped when the view is read; a stopping daemon deletes its key (a DEL arrives). That
 * silence is timed on this daemon's monotonic clock, from when each new revision of a worker's
 * presence reached it, not by comparing the worker's `updatedAt` with this machine's wall clock:
 * machines' clocks differ and a wall clock can jump, and either would hide a live worker or keep
 * a dead one. Only the first value seen of a key (at start, or a worker just joined) is dated by
 * its `updatedAt`, its age capped at its staleness, so an old key from a dead worker is not taken
 * for a live one; a worker whose clock runs behind is then listed from its next update on.
 * If the watch ends, the view is read again and the watch restarted; the bucket is also read
 * whole once a minute (at the default 5 s interval) in case a watch stalls, and at once when a
 * worker goes stale: that is what a stalled watch looks like (e.g. after the loss of the NATS
 * node its consumer was on), so the view is read again and, when the watch has brought nothing
 * for two intervals (every daemon's own presence comes through it), the watch is restarted.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { monotonicNow } from "../util/index.js";
import { parseWorker, readWorkers, sortWorkers, staleAfter } from "./presence.js";
import { type WorkerInfo, workerServes } from "./worker-info.js";

/** The bucket is read whole every this many refresh intervals, besides the watch. */
const REREAD_EVERY = 12;

/** A key stale for this many of its stale periods is forgotten (a later value of it counts as new). */
const FORGET_AFTER = 10;

interface Seen {
  /** Undefined: deleted at this revision. */
  info: WorkerInfo | undefined;
  revision: number;
  /** When this revision reached us (monotonic ms); for a key's first value, less its age (capped). */
  heardAt: number;
  /** Already found stale (so going stale is noticed once). */
  stale?: boolean;
}

export class WorkerDirectory extends Part {
  private readonly seen = new Map<string, Seen>();
  /** The live list as last computed, and until when it holds (monotonic ms: the next worker going stale). */
  private cached: WorkerInfo[] = [];
  private validUntil = 0;
  private dirty = true;
  private refreshing: Promise<void> | undefined;
  private watching: { stop(): void } | undefined;
  private retry: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Per worker: the chore stamp last seen in its presence and when it was new (monotonic ms). */
  private readonly choreSeen = new Map<string, { value: string; at: number }>();
  /** When the watch last delivered an update (monotonic ms). */
  private lastWatchAt = monotonicNow();

  constructor(
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly opts: { refreshMs: number; staleMs: number; log: Logger },
  ) {
    super("directory", opts.log);
  }

  protected async onStart(): Promise<void> {
    await this.watch();
    // A safety net under the watch (one pass every REREAD_EVERY intervals): a watch that stalled
    // without ending would otherwise miss joins until it did.
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs * REREAD_EVERY);
    this.timer.unref();
  }

  /** Stops watching; a read in flight is waited for. */
  protected onStop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.watching?.stop();
    this.watching = undefined;
  }

  /** Starts the watch, then reads the bucket once (what the watch delivers later wins by revision). */
  private async watch(): Promise<void> {
    try {
      const it = await this.kv.watch();
      this.watching = it;
      this.lastWatchAt = monotonicNow();
      void this.life.track(
        (async () => {
          for await (const e of it) this.apply(e);
        })().then(
          () => this.rewatch("ended"),
          (err: unknown) => this.rewatch(errorMessage(err)),
        ),
      );
    } catch (err) {
      this.rewatch(errorMessage(err));
    }
    await this.refresh();
  }

  private rewatch(why: string): void {
    this.watching = undefined;
    if (this.state !== "running" && this.state !== "starting") return;
    this.opts.log.debug({ why }, "worker directory watch stopped: watching again");
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.state === "running") void this.watch();
    }, this.opts.refreshMs);
    this.retry.unref();
  }

  private apply(e: KvWatchEntry): void {
    this.lastWatchAt = monotonicNow();
    const info = e.operation === "PUT" ? parseWorker(e.value) : undefined;
    this.remember(e.key, info, e.revision);
  }

  private remember(key: string, info: WorkerInfo | undefined, revision: number): void {
    const had = this.seen.get(key);
    if (had && had.revision >= revision) return;
    const now = monotonicNow();
    let heardAt = now;
    if (!had && info) {
      // A key's first value: dated by its writer's stamp, but never older than stale, so the next
      // value of a live worker whose clock is behind makes it live.
      const limit = staleAfter(info, this.opts.staleMs) + 1;
      const age = Date.now() - Date.parse(info.updatedAt);
      heardAt = now - (Number.isFinite(age) ? Math.min(Math.max(age, 0), limit) : limit);
    }
    this.seen.set(key, { info, revision, heardAt });
    this.dirty = true;
  }

  /** Reads the whole bucket once (one pass) into the view. */
  refresh(): Promise<void> {
    this.refreshing ??= this.life.track(
      (async () => {
        try {
          const read = new Set<string>();
          for (const { key, info, revision } of await readWorkers(this.kv, this.jsm)) {
            read.add(key);
            this.remember(key, info, revision);
          }
          // Without a watch, a key the pass did not find is gone (deleted, or expired).
          if (!this.watching) {
            for (const k of this.seen.keys()) if (!read.has(k)) this.seen.delete(k);
          }
          this.dirty = true;
        } catch (err) {
          this.opts.log.debug({ err: errorMessage(err) }, "worker directory refresh failed");
        } finally {
          this.refreshing = undefined;
        }
      })(),
    );
    return this.refreshing;
  }

  /** The live workers now, sorted; recomputed only when an update came or someone went stale. */
  private live(): WorkerInfo[] {
    const now = monotonicNow();
    if (!this.dirty && now < this.validUntil) return this.cached;
    const out: WorkerInfo[] = [];
    let next = Number.POSITIVE_INFINITY;
    let wentStale = false;
    for (const [k, s] of this.seen) {
      if (!s.info) continue;
      const after = staleAfter(s.info, this.opts.staleMs);
      if (now > s.heardAt + after) {
        // Gone (its key expired): a new put brings it back. Kept a while so that put counts
        // as heard now, not dated by its writer's clock.
        if (!s.stale) wentStale = true;
        s.stale = true;
        if (now > s.heardAt + FORGET_AFTER * after) this.seen.delete(k);
        continue;
      }
      out.push(s.info);
      next = Math.min(next, s.heardAt + after + 1);
    }
    this.cached = sortWorkers(out);
    this.validUntil = next;
    this.dirty = false;
    if (wentStale) this.checkWatch(now);
    return this.cached;
  }

  /** A worker went stale: read the bucket again, and restart a watch that went quiet. */
  private checkWatch(now: number): void {
    if (this.state !== "running") return;
    if (this.watching && now - this.lastWatchAt > 2 * this.opts.refreshMs) {
      this.opts.log.debug({ quietMs: now - this.lastWatchAt }, "worker directory watch quiet: watching again");
      this.watching.stop();
    }
    void this.refresh();
  }

  /**
   * Whether `self` should do a mesh-wide chore such as sweeping (as last seen): it comes first
   * among the live workers that are not draining (lowest id), or every worker before it has
   * failed to report the chore done (`doneAt`) within `staleMs` since it started, so a first
   * worker that is alive but cannot do it does not stop the mesh from having it done. Only the
   * first stamp seen of a worker is dated by the wall clocks; a changed one counts as heard now,
   * and the time since is timed here.
   */
  isChoreHolder(self: string, doneAt: (w: WorkerInfo) => string | undefined, staleMs: number): boolean {
    const now = monotonicNow();
    const live = this.live();
    if (this.choreSeen.size > 2 * live.length + 16) {
      const ids = new Set(live.map((w) => w.workerId));
      for (const id of this.choreSeen.keys()) if (!ids.has(id)) this.choreSeen.delete(id);
    }
    return live
      .filter((w) => w.workerId < self && !w.draining)
      .every((w) => {
        const value = doneAt(w) ?? w.startedAt;
        let seen = this.choreSeen.get(w.workerId);
        if (seen?.value !== value) {
          // The first stamp seen of a worker is dated by the wall clocks (its age at least 0, a
          // clock ahead of ours, and at most past staleMs); a later, changed one is news heard
          // now. From then on the time since is timed here, on the monotonic clock.
          let age = 0;
          if (!seen) {
            age = Date.now() - Date.parse(value);
            if (!Number.isFinite(age)) return false;
          }
          seen = { value, at: now - Math.min(Math.max(age, 0), staleMs + 1) };
          this.choreSeen.set(w.workerId, seen);
        }
        return now - seen.at > staleMs;
      });
  }

  /** The live workers, as last seen. */
  list(): readonly WorkerInfo[] {
    return this.live();
  }

  /** Whether worker `id` is live (as last seen). */
  isLive(id: string): boolean {
    return this.live().some((w) => w.workerId === id);
  }

  /** Whether a live worker other than `self` serves this kind of task (as last seen). */
  servedByAnother(self: string, pool: string, labels: Record<string, string>, runner: string): boolean {
    return this.live().some(
      (w) => w.workerId !== self && !w.draining && workerServes(w, pool, labels, runner),
    );
  }
}
