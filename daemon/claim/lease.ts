/**
 * A fenced lease on one task attempt. The KV revision is the fencing token: every write is a
 * compare-and-set; if another writer changed ownership, this holder is fenced out and must stop
 * at once. If NATS cannot be reached for most of a lease period the holder fences itself, so it
 * has stopped before anyone else may take over (takeover waits a full lease of silence).
 * The attempt's last write, its outcome, is retried through NATS outages for as long as the
 * record may still be ours (see `settle`): a finished run is never thrown away for a blip.
 */

import { isMeshError, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Delivery } from "../queue/index.js";
import {
  expectState,
  isTerminal,
  renew,
  type Step,
  TRANSITIONS,
  type TaskRecord,
  type TaskStore,
  type VersionedRecord,
} from "../tasks/index.js";
import { monotonicNow } from "../util/index.js";

export interface LeaseOptions {
  workerId: string;
  heartbeatMs: number;
  leaseMs: number;
  log: Logger;
  /** The holder lost the task (fenced by another writer, or self-fenced). */
  onLost(reason: string): void;
  /** Someone asked to cancel this task. */
  onCancelRequested(): void;
  /** The record is ours at `revision` (after the claim and each successful write). */
  onHeld?(revision: number): void;
  /** The wall clock for the record's stamps (the silence that fences is timed on the monotonic clock). */
  now?: () => number;
}

/** Who ended the lease: another writer (the record is not ours), or this holder's watchdog. */
export type LostBy = "other" | "self";

/** Outcome-write failures worth another try: a lost race, or NATS away or slow. */
const RETRIED = new Set<MeshError["code"]>(["CONFLICT", "UNAVAILABLE", "TIMEOUT"]);

/** Pause between tries of an outcome write that could not reach NATS. */
const SETTLE_RETRY_MS = 200;

export class Lease {
  private rec: VersionedRecord;
  private msg: Delivery;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private announce: NodeJS.Timeout | undefined;
  /** When a lease write last succeeded (monotonic ms). */
  private lastOkAt: number;
  private lost = false;
  private lostBy: LostBy | undefined;
  private readonly now: () => number;
  readonly attempt: number;

  constructor(
    private readonly store: TaskStore,
    initial: VersionedRecord,
    msg: Delivery,
    private readonly opts: LeaseOptions,
  ) {
    this.rec = initial;
    this.msg = msg;
    this.attempt = initial.record.attempt;
    this.now = opts.now ?? Date.now;
    this.lastOkAt = monotonicNow();
  }

  get record(): TaskRecord {
    return this.rec.record;
  }
  get revision(): number {
    return this.rec.revision;
  }
  get isLost(): boolean {
    return this.lost;
  }
  /** Set once the lease is lost. */
  get lostTo(): LostBy | undefined {
    return this.lostBy;
  }
  get message(): Delivery {
    return this.msg;
  }

  /** A redelivery of our own doorbell (e.g. after a NATS restart): ack through the newest one. */
  adopt(msg: Delivery): void {
    this.msg = msg;
    msg.working();
  }

  start(): void {
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.heartbeat().finally(() => {
          if (!this.lost && this.timer) tick();
        });
      }, this.opts.heartbeatMs);
    };
    tick();
    // The claim's revision is announced unless the attempt is over at once (a no-op task).
    this.announce = setTimeout(() => this.opts.onHeld?.(this.rec.revision), 250);
    // Independent of pending writes (a hung request must not delay self-fencing).
    this.watchdog = setInterval(
      () => {
        const silentFor = Math.round(monotonicNow() - this.lastOkAt);
        if (silentFor > this.opts.leaseMs * 0.6) {
          this.markLost(`self-fenced: no successful heartbeat for ${silentFor} ms`, "self");
        }
      },
      Math.max(50, Math.floor(this.opts.heartbeatMs / 4)),
    );
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.announce) clearTimeout(this.announce);
    this.timer = undefined;
    this.watchdog = undefined;
    this.announce = undefined;
  }

  private ours(r: TaskRecord): boolean {
    return r.owner?.workerId === this.opts.workerId && r.attempt === this.attempt && !isTerminal(r.state);
  }

  /**
   * Fenced write: applies the transition `next` to the current record and writes its step at
   * the held revision (nothing when the step changes nothing). A conflict caused only by a
   * cancel request is absorbed (re-read, still ours, retry); any change of owner or attempt
   * throws FENCED.
   */
  write(next: (r: TaskRecord) => Step): Promise<VersionedRecord> {
    const run = async (): Promise<VersionedRecord> => {
      if (this.lost) throw new MeshError("FENCED", `task ${this.rec.record.id}: lease lost`);
      for (let i = 0; i < 5; i++) {
        try {
          const step = next(this.rec.record);
          if (!step.write) return this.rec;
          this.rec = await this.store.update(this.rec, step.record);
          this.lastOkAt = monotonicNow();
          if (this.timer) this.opts.onHeld?.(this.rec.revision);
          return this.rec;
        } catch (err) {
          if (!isMeshError(err, "CONFLICT")) throw err;
          const cur = await this.store.get(this.rec.record.id);
          if (!cur || !this.ours(cur.record)) {
            this.markLost(
              `fenced: task ${this.rec.record.id} now held by ${cur?.record.owner?.workerId ?? "nobody"}`,
              "other",
            );
            throw new MeshError("FENCED", `task ${this.rec.record.id}: another writer took over`, {
              cause: err,
            });
          }
          this.rec = cur;
          if (cur.record.cancelRequested) this.opts.onCancelRequested();
        }
      }
      throw new MeshError("CONFLICT", `task ${this.rec.record.id}: too much contention`);
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * The attempt's outcome: the step of the transition `next` written at the held revision,
   * retried while NATS cannot be reached. A write whose answer was lost may have landed, so
   * after each failure the record is read: it shows our outcome (`landed`) -> done; it is still
   * ours (the same revision, or a newer one of ours: a heartbeat that landed, a cancel request)
   * -> write again on it; anything else -> FENCED. A self-fenced holder whose run has stopped may still write: the
   * compare-and-set fails once anyone else has taken over. Gives up only when `quit()` says so
   * (the daemon is stopping): throws UNAVAILABLE then.
   */
  settle(
    next: (r: TaskRecord) => Step,
    landed: (r: TaskRecord) => boolean,
    quit: () => boolean,
  ): Promise<VersionedRecord> {
    const id = this.rec.record.id;
    const tryMs = Math.max(250, Math.min(this.opts.heartbeatMs, 1000));
    const run = async (): Promise<VersionedRecord> => {
      if (this.lostBy === "other") throw new MeshError("FENCED", `task ${id}: another writer took over`);
      for (let tries = 0; ; tries++) {
        let failure: unknown;
        try {
          // Each try is bounded: a write sent as the connection dropped would otherwise hold us
          // for the publisher's whole timeout, while the lease runs out. If it lands after all,
          // the next try's compare-and-set fails and the read below finds our outcome.
          this.rec = await bounded(this.store.update(this.rec, next(this.rec.record).record), tryMs);
          this.lastOkAt = monotonicNow();
          return this.rec;
        } catch (err) {
          // A refusal of the record itself (an illegal transition) is a bug: never retried.
          if (isMeshError(err) && !RETRIED.has(err.code)) throw err;
          failure = err;
        }
        const cur = await bounded(this.store.get(id), tryMs).then(
          (v) => ({ v }),
          () => undefined,
        );
        if (cur) {
          if (cur.v && landed(cur.v.record)) {
            this.rec = cur.v;
            return cur.v;
          }
          if (!cur.v || (cur.v.revision !== this.rec.revision && !this.ours(cur.v.record))) {
            this.markLost(
              `fenced: task ${id} now held by ${cur.v?.record.owner?.workerId ?? "nobody"}`,
              "other",
            );
            throw new MeshError("FENCED", `task ${id}: another writer took over`, { cause: failure });
          }
          if (cur.v.revision !== this.rec.revision) {
            this.rec = cur.v; // ours still, at a newer revision: write again on it at once
            continue;
          }
        }
        if (quit()) {
          throw new MeshError("UNAVAILABLE", `task ${id}: could not record the outcome`, { cause: failure });
        }
        if (tries === 0 || tries % 20 === 0) {
          this.opts.log.warn(
            { taskId: id, err: failure instanceof Error ? failure.message : String(failure), tries },
            "recording the outcome failed; retrying while the record is still ours",
          );
        }
        await sleep(SETTLE_RETRY_MS);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async heartbeat(): Promise<void> {
    if (this.lost) return;
    try {
      this.msg.working();
    } catch {
      // connection trouble: the KV write below decides
    }
    try {
      const at = new Date(this.now());
      const r = await this.write((rec) => renew(expectState(rec, "renew", TRANSITIONS.renew.from), at));
      if (r.record.cancelRequested) this.opts.onCancelRequested();
    } catch (err) {
      if (isMeshError(err, "FENCED")) return;
      const silentFor = Math.round(monotonicNow() - this.lastOkAt);
      this.opts.log.warn({ err, taskId: this.rec.record.id, silentFor }, "heartbeat failed");
    }
  }

  private markLost(reason: string, by: LostBy): void {
    if (by === "other") this.lostBy = "other"; // worse news than a self-fence that came first
    if (this.lost) return;
    this.lostBy = by;
    this.lost = true;
    this.stop();
    this.opts.onLost(reason);
  }
}

/** `p`, or a TIMEOUT MeshError after `ms` (`p` goes on; its result is then ignored). */
function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new MeshError("TIMEOUT", `no answer from NATS within ${ms} ms`)), ms);
  });
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
