/**
 * What to do with one doorbell: claim a queued task, adopt our own redelivery, wait on a live
 * owner, take over from a dead one (its revision unchanged for a whole lease, timed locally),
 * or just ack because the task is finished. The claimer decides which transition applies
 * (tasks/machine) and writes it; the KV compare-and-set decides every race.
 */

import { isMeshError } from "../errors.js";
import { type Delivery, doorbellSnapshot, doorbellTaskId, readDoorbell } from "../queue/index.js";
import { workerServes } from "../registry/index.js";
import {
  applyCancel,
  type Claimant,
  claim,
  type DoorbellAction,
  expectState,
  type HeldRecord,
  inState,
  isTerminal,
  type Notice,
  type Step,
  TRANSITIONS,
  type TakeoverCause,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  takeOver,
  type VersionedRecord,
} from "../tasks/index.js";
import { monotonicNow } from "../util/index.js";
import { settleDoorbell } from "./settle-doorbell.js";

export interface ClaimerIdentity {
  workerId: string;
  host: string;
  pools: string[];
  labels: Record<string, string>;
  runners: string[];
}

/**
 * What the claimer decided for one doorbell, and what to do with the doorbell (`settleDoorbell`).
 * A won claim and a settled task carry the state events to publish (`notices`, for the record
 * as written).
 */
export type Decision =
  | {
      kind: "claimed";
      claimed: VersionedRecord;
      takeoverFrom?: string;
      notices: readonly Notice[];
      doorbell: DoorbellAction;
    }
  | { kind: "ours"; taskId: string; doorbell: DoorbellAction } // our own task's doorbell came back: adopt it
  | {
      kind: "skip";
      taskId: string;
      why: string;
      parked?: boolean;
      /** A doorbell or record that could not be read (set aside). */
      unreadable?: "doorbell" | "record";
      doorbell: DoorbellAction;
    }
  // A queued task with a cancel pending, or a takeover that found it cancelled or exhausted: now terminal.
  | { kind: "settled"; record: TaskRecord; notices: readonly Notice[]; doorbell: DoorbellAction };

export interface ClaimerOptions {
  leaseMs: number;
  /** The wall clock for the record's stamps (a holder's silence is timed on the monotonic clock). */
  now?: () => number;
  /**
   * Whether an attempt of this task has nothing to prepare (no repo to check out), so that its
   * claim writes `running` at once instead of `claimed` and then `running`.
   */
  startsAtClaim?: (spec: TaskSpec) => boolean;
  /**
   * Why a queued task should wait rather than be claimed now (its quota slots are held; see
   * quota/gate.ts), with how long its doorbell waits; undefined: claim it.
   */
  admit?: (spec: TaskSpec) => Promise<{ why: string; delayMs: number } | undefined>;
  /** The Claude account this worker's claude attempts run on (recorded in the attempt). */
  account?: string;
  /** Whether another live worker serves this kind of task (see WorkerDirectory). */
  servedByAnother?: (pool: string, labels: Record<string, string>, runner: string) => boolean;
  /**
   * How long a task of this kind must still wait before its session may start here (its
   * account is paused at a usage limit, quota/AccountBook); 0 or undefined: it may start now.
   */
  startGate?: (r: TaskRecord) => number;
  /** Whether worker `id` is live: a parked task waits a little for the worker holding its session. */
  workerLive?: (workerId: string) => boolean;
}

/** A parked task is left this long after its resume time to the worker whose disk holds its session. */
export const PARKED_AFFINITY_MS = 5_000;
const PARKED_HANDBACK_MS = 50;

/** Hand-back delay for a task another live worker can serve and this one cannot. */
export const HANDBACK_TO_ANOTHER_MS = 200;

export class Claimer {
  /** task id -> (revision, when we first saw it) for staleness judged on our own monotonic clock. */
  private seen = new Map<string, { revision: number; since: number }>();
  private readonly now: () => number;
  private prunedAt = 0;

  constructor(
    private readonly store: TaskStore,
    private readonly me: ClaimerIdentity,
    private readonly opts: ClaimerOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * A lease beacon said task `id` is held at `revision` (beacon.ts): the first observation of
   * that revision is now, unless we saw it earlier. Entries not refreshed for a few leases are
   * dropped (a later doorbell then starts the clock afresh, which is only slower).
   */
  observed(id: string, revision: number): void {
    const t = monotonicNow();
    const obs = this.seen.get(id);
    if (!obs || obs.revision < revision) this.seen.set(id, { revision, since: t });
    if (t - this.prunedAt > this.opts.leaseMs) {
      this.prunedAt = t;
      for (const [k, v] of this.seen) if (t - v.since > 3 * this.opts.leaseMs) this.seen.delete(k);
    }
  }

  /** Decides on the doorbell and settles it as the decision says (for callers without a loop). */
  async decide(msg: Delivery, isRunningHere: (id: string) => boolean): Promise<Decision> {
    const d = await this.judge(msg, isRunningHere);
    await settleDoorbell(msg, d.doorbell);
    return d;
  }

  /**
   * Decides which transition applies to the doorbell's task and writes it (compare-and-set);
   * the doorbell is left for the caller to settle as `doorbell` says ("claimed" and "ours" leave
   * it to the execution).
   */
  async judge(msg: Delivery, isRunningHere: (id: string) => boolean): Promise<Decision> {
    const id = doorbellTaskId(msg.subject);
    const read = readDoorbell(msg);
    if ("problem" in read) {
      // Set aside: nothing can come of it, and a nak would bring it back forever.
      return {
        kind: "skip",
        taskId: id,
        why: `malformed doorbell: ${read.problem}`,
        unreadable: "doorbell",
        doorbell: ACK,
      };
    }
    try {
      // A first delivery usually carries the queued record it was rung for: try the claim on it
      // straight away; a stale snapshot only fails the compare-and-set, and we read then.
      const hint = msg.deliveryCount === 1 ? doorbellSnapshot(read.bell, id) : undefined;
      if (hint) return await this.decideOn(id, hint, isRunningHere, true);
      return await this.decideOn(id, await this.store.get(id), isRunningHere, false);
    } catch (err) {
      if (!isMeshError(err, "DATA_LOSS")) throw err;
      // The record cannot be read (the store reported it): nothing here can run it.
      return { kind: "skip", taskId: id, why: "unreadable record", unreadable: "record", doorbell: ACK };
    }
  }

  private get claimant(): Claimant {
    return { workerId: this.me.workerId, host: this.me.host, leaseMs: this.opts.leaseMs };
  }

  private claimantFor(spec: TaskSpec): Claimant {
    const account = spec.runner === "claude" ? this.opts.account : undefined;
    return account ? { ...this.claimant, account } : this.claimant;
  }

  private async decideOn(
    id: string,
    cur: VersionedRecord | undefined,
    isRunningHere: (id: string) => boolean,
    fromSnapshot: boolean,
  ): Promise<Decision> {
    const skip = (why: string, doorbell: DoorbellAction, parked?: true): Decision => ({
      kind: "skip",
      taskId: id,
      why,
      ...(parked ? { parked } : {}),
      doorbell,
    });
    if (!cur) return skip("no record", ACK);
    const r = cur.record;
    if (isTerminal(r.state)) {
      this.seen.delete(id);
      return skip(`already ${r.state}`, ACK);
    }
    if (r.state === "waiting") {
      // A stale doorbell (a waiting task has none): its release rings a new one.
      this.seen.delete(id);
      return skip("waiting on its dependencies", ACK);
    }
    if (inState(r, ["queued"])) {
      this.seen.delete(id);
      try {
        // A cancel that raced a requeue: whoever sees it first finishes it.
        if (r.cancelRequested) return await this.settled(cur, applyCancel(r, new Date(this.now())));
        if (!workerServes(this.me, r.spec.pool, r.spec.labels, r.spec.runner)) {
          if (this.opts.servedByAnother?.(r.spec.pool, r.spec.labels, r.spec.runner) ?? true) {
            return skip("labels or runner not served here", { kind: "nak", delayMs: HANDBACK_TO_ANOTHER_MS });
          }
          // Nobody live can run it: park it. Its doorbell is acked so that it holds no delivery
          // slot (a nak'ed message waiting for redelivery still counts against MaxAckPending);
          // the record stays queued, shown as unschedulable, and the sweeper rings it again
          // once a worker that serves it is live.
          return skip("parked: no live worker serves it", PARK, true);
        }
        const notBefore = r.notBefore ? Date.parse(r.notBefore) - Date.now() : 0;
        if (notBefore > 0) return skip("retry back-off", { kind: "nak", delayMs: notBefore });
        const wait = await this.opts.admit?.(r.spec);
        if (wait)
          return skip(`waiting for a quota slot: ${wait.why}`, { kind: "nak", delayMs: wait.delayMs });
        const paused = this.opts.startGate?.(r) ?? 0;
        if (paused > 0)
          return skip("its account is paused at a usage limit", { kind: "nak", delayMs: paused });
        const keptFor = this.keptForItsSession(r);
        if (keptFor > 0)
          return skip("parked: the worker holding its session resumes it", { kind: "nak", delayMs: keptFor });
        const next = claim(
          r,
          this.claimantFor(r.spec),
          new Date(this.now()),
          this.opts.startsAtClaim?.(r.spec) ?? false,
        );
        const claimed = await this.store.update(cur, next.record);
        return { kind: "claimed", claimed, notices: next.notices, doorbell: next.doorbell };
      } catch (err) {
        if (!isMeshError(err, "CONFLICT")) throw err;
        // A stale snapshot: decide again on the record as it is now.
        if (fromSnapshot) return this.decideOn(id, await this.store.get(id), isRunningHere, false);
        return skip("lost the claim race", { kind: "nak", delayMs: this.opts.leaseMs });
      }
    }
    const held = expectState(r, "take over", TRANSITIONS.takeOver.from);
    if (held.owner?.workerId === this.me.workerId) {
      if (isRunningHere(id)) return { kind: "ours", taskId: id, doorbell: LEAVE };
      // Never a takeover from ourselves: our attempt has ended (its processes are gone) without
      // its outcome in the record. It is handed on at once, and it does not count as a failure.
      return this.takeover({ ...cur, record: held }, { kind: "abandoned" });
    }
    const obs = this.seen.get(id);
    const t = monotonicNow();
    if (!obs || obs.revision !== cur.revision) {
      this.seen.set(id, { revision: cur.revision, since: t });
      return skip("held by a live owner", { kind: "nak", delayMs: this.opts.leaseMs });
    }
    const silent = Math.round(t - obs.since);
    // The owner self-fences after ITS lease: never take over sooner, whatever ours is.
    const leaseMs = Math.max(this.opts.leaseMs, r.owner?.leaseMs ?? 0);
    if (silent < leaseMs) {
      return skip("held; lease not yet expired", {
        kind: "nak",
        delayMs: Math.max(100, leaseMs - silent + 50),
      });
    }
    // Any worker may finish a dead owner's task that has a cancel pending; running it again needs
    // one that serves it.
    if (!r.cancelRequested && !workerServes(this.me, r.spec.pool, r.spec.labels, r.spec.runner)) {
      if (this.opts.servedByAnother?.(r.spec.pool, r.spec.labels, r.spec.runner) ?? true) {
        return skip("stale, but labels or runner not served here", {
          kind: "nak",
          delayMs: HANDBACK_TO_ANOTHER_MS,
        });
      }
      this.seen.delete(id);
      return skip("stale and parked: no live worker serves it", PARK, true);
    }
    const paused = r.cancelRequested ? 0 : (this.opts.startGate?.(r) ?? 0);
    if (paused > 0)
      return skip("stale, but its account is paused at a usage limit", { kind: "nak", delayMs: paused });
    return this.takeover({ ...cur, record: held }, { kind: "expired", silentMs: silent });
  }

  /** How long to leave a parked task to the live worker that holds its agent session (0: take it). */
  private keptForItsSession(r: TaskRecord): number {
    const p = r.parked;
    if (!p || p.workerId === this.me.workerId || !(this.opts.workerLive?.(p.workerId) ?? false)) return 0;
    const from = Date.parse(r.notBefore ?? p.until);
    const left = from + PARKED_AFFINITY_MS - this.now();
    // A short hand-back: the doorbell soon reaches the holder, which pulls too.
    return left > 0 ? Math.min(left, PARKED_HANDBACK_MS) : 0;
  }

  /** Writes a step that ends the task. Throws CONFLICT like a claim. */
  private async settled(cur: VersionedRecord, step: Step): Promise<Decision> {
    const written = await this.store.update(cur, step.record);
    return { kind: "settled", record: written.record, notices: step.notices, doorbell: step.doorbell };
  }

  private async takeover(
    cur: { record: HeldRecord; revision: number },
    cause: TakeoverCause,
  ): Promise<Decision> {
    const r = cur.record;
    const next = takeOver(r, this.claimantFor(r.spec), cause, new Date(this.now()));
    try {
      if (next.record.state !== "claimed") {
        const d = await this.settled(cur, next);
        this.seen.delete(r.id);
        return d;
      }
      const claimed = await this.store.update(cur, next.record);
      this.seen.delete(r.id);
      return {
        kind: "claimed",
        claimed,
        ...(cause.kind === "expired" ? { takeoverFrom: r.owner?.workerId ?? "unknown" } : {}),
        notices: next.notices,
        doorbell: next.doorbell,
      };
    } catch (err) {
      if (isMeshError(err, "CONFLICT")) {
        return {
          kind: "skip",
          taskId: r.id,
          why: "lost the takeover race",
          doorbell: { kind: "nak", delayMs: this.opts.leaseMs },
        };
      }
      throw err;
    }
  }
}

const ACK: DoorbellAction = { kind: "ack" };
const PARK: DoorbellAction = { kind: "park" };
const LEAVE: DoorbellAction = { kind: "leave" };
