/**
 * What to do with one doorbell: claim a queued task, adopt our own redelivery, wait on a live
 * owner, take over from a dead one (its revision unchanged for a whole lease, timed locally),
 * or just ack because the task is finished. The KV compare-and-set decides every race.
 */

import { isMeshError } from "../errors.js";
import { type Delivery, doorbellSnapshot, doorbellTaskId, readDoorbell } from "../queue/index.js";
import { workerServes } from "../registry/index.js";
import {
  type AttemptInfo,
  isTerminal,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  type VersionedRecord,
} from "../tasks/index.js";

export interface ClaimerIdentity {
  workerId: string;
  host: string;
  pools: string[];
  labels: Record<string, string>;
  runners: string[];
}

export type Decision =
  | { kind: "claimed"; claimed: VersionedRecord; takeoverFrom?: string }
  | { kind: "ours"; taskId: string } // our own task's doorbell came back: adopt it
  | {
      kind: "skip";
      taskId: string;
      why: string;
      parked?: boolean;
      /** A doorbell or record that could not be read (set aside). */
      unreadable?: "doorbell" | "record";
    }
  | { kind: "settled"; record: TaskRecord }; // a takeover found it exhausted or cancelled: now terminal

export interface ClaimerOptions {
  leaseMs: number;
  now?: () => number;
  /**
   * Whether an attempt of this task has nothing to prepare (no repo to check out), so that its
   * claim writes `running` at once instead of `claimed` and then `running`.
   */
  startsAtClaim?: (spec: TaskSpec) => boolean;
  /** Whether another live worker serves this kind of task (see WorkerDirectory). */
  servedByAnother?: (pool: string, labels: Record<string, string>, runner: string) => boolean;
}

/** Hand-back delay for a task another live worker can serve and this one cannot. */
export const HANDBACK_TO_ANOTHER_MS = 200;

export class Claimer {
  /** task id -> (revision, when we first saw it) for staleness judged on our own clock. */
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
    const t = this.now();
    const obs = this.seen.get(id);
    if (!obs || obs.revision < revision) this.seen.set(id, { revision, since: t });
    if (t - this.prunedAt > this.opts.leaseMs) {
      this.prunedAt = t;
      for (const [k, v] of this.seen) if (t - v.since > 3 * this.opts.leaseMs) this.seen.delete(k);
    }
  }

  /** Handles the doorbell's ack/nak itself except for "claimed"/"ours" (the execution keeps it). */
  async decide(msg: Delivery, isRunningHere: (id: string) => boolean): Promise<Decision> {
    const id = doorbellTaskId(msg.subject);
    const read = readDoorbell(msg);
    if ("problem" in read) {
      // Set aside: nothing can come of it, and a nak would bring it back forever.
      msg.ack();
      return { kind: "skip", taskId: id, why: `malformed doorbell: ${read.problem}`, unreadable: "doorbell" };
    }
    try {
      // A first delivery usually carries the queued record it was rung for: try the claim on it
      // straight away; a stale snapshot only fails the compare-and-set, and we read then.
      const hint = msg.deliveryCount === 1 ? doorbellSnapshot(read.bell, id) : undefined;
      if (hint) return await this.decideOn(id, hint, msg, isRunningHere, true);
      return await this.decideOn(id, await this.store.get(id), msg, isRunningHere, false);
    } catch (err) {
      if (!isMeshError(err, "DATA_LOSS")) throw err;
      // The record cannot be read (the store reported it): nothing here can run it.
      msg.ack();
      return { kind: "skip", taskId: id, why: "unreadable record", unreadable: "record" };
    }
  }

  private async decideOn(
    id: string,
    cur: VersionedRecord | undefined,
    msg: Delivery,
    isRunningHere: (id: string) => boolean,
    fromSnapshot: boolean,
  ): Promise<Decision> {
    if (!cur) {
      msg.ack();
      return { kind: "skip", taskId: id, why: "no record" };
    }
    const r = cur.record;
    if (isTerminal(r.state)) {
      this.seen.delete(id);
      msg.ack();
      return { kind: "skip", taskId: id, why: `already ${r.state}` };
    }
    if (r.state === "queued") {
      this.seen.delete(id);
      try {
        // A cancel that raced a requeue: whoever sees it first finishes it.
        if (r.cancelRequested) return await this.settleCancelled(cur, msg);
        if (!workerServes(this.me, r.spec.pool, r.spec.labels, r.spec.runner)) {
          if (this.opts.servedByAnother?.(r.spec.pool, r.spec.labels, r.spec.runner) ?? true) {
            msg.nak(HANDBACK_TO_ANOTHER_MS);
            return { kind: "skip", taskId: id, why: "labels or runner not served here" };
          }
          // Nobody live can run it: park it. Its doorbell is acked so that it holds no delivery
          // slot (a nak'ed message waiting for redelivery still counts against MaxAckPending);
          // the record stays queued, shown as unschedulable, and the sweeper rings it again
          // once a worker that serves it is live.
          msg.ack();
          return { kind: "skip", taskId: id, why: "parked: no live worker serves it", parked: true };
        }
        const notBefore = r.notBefore ? Date.parse(r.notBefore) - Date.now() : 0;
        if (notBefore > 0) {
          msg.nak(notBefore);
          return { kind: "skip", taskId: id, why: "retry back-off" };
        }
        return await this.claim(cur);
      } catch (err) {
        if (!isMeshError(err, "CONFLICT")) throw err;
        // A stale snapshot: decide again on the record as it is now.
        if (fromSnapshot) return this.decideOn(id, await this.store.get(id), msg, isRunningHere, false);
        msg.nak(this.opts.leaseMs);
        return { kind: "skip", taskId: id, why: "lost the claim race" };
      }
    }
    // claimed or running
    if (r.owner?.workerId === this.me.workerId) {
      if (isRunningHere(id)) return { kind: "ours", taskId: id };
      // Never a takeover from ourselves: our attempt has ended (its processes are gone) without
      // its outcome in the record. It is handed on at once, and it does not count as a failure.
      return this.takeover(cur, msg, 0, true);
    }
    const obs = this.seen.get(id);
    const t = this.now();
    if (!obs || obs.revision !== cur.revision) {
      this.seen.set(id, { revision: cur.revision, since: t });
      msg.nak(this.opts.leaseMs);
      return { kind: "skip", taskId: id, why: "held by a live owner" };
    }
    const silent = t - obs.since;
    // The owner self-fences after ITS lease: never take over sooner, whatever ours is.
    const leaseMs = Math.max(this.opts.leaseMs, r.owner?.leaseMs ?? 0);
    if (silent < leaseMs) {
      msg.nak(Math.max(100, leaseMs - silent + 50));
      return { kind: "skip", taskId: id, why: "held; lease not yet expired" };
    }
    // Any worker may finish a dead owner's task that has a cancel pending; running it again needs
    // one that serves it.
    if (!r.cancelRequested && !workerServes(this.me, r.spec.pool, r.spec.labels, r.spec.runner)) {
      if (this.opts.servedByAnother?.(r.spec.pool, r.spec.labels, r.spec.runner) ?? true) {
        msg.nak(HANDBACK_TO_ANOTHER_MS);
        return { kind: "skip", taskId: id, why: "stale, but labels or runner not served here" };
      }
      this.seen.delete(id);
      msg.ack();
      return { kind: "skip", taskId: id, why: "stale and parked: no live worker serves it", parked: true };
    }
    return this.takeover(cur, msg, silent);
  }

  /** A queued task with a cancel pending ends cancelled. Throws CONFLICT like claim(). */
  private async settleCancelled(cur: VersionedRecord, msg: Delivery): Promise<Decision> {
    const r = structuredClone(cur.record);
    r.state = "cancelled";
    r.finishedAt = new Date(this.now()).toISOString();
    r.reason = "cancelled by request";
    delete r.owner;
    delete r.cancelRequested;
    delete r.notBefore;
    const written = await this.store.update(cur, r);
    msg.ack();
    return { kind: "settled", record: written.record };
  }

  /** Throws CONFLICT when the record is no longer at `cur.revision` (the caller decides). */
  private async claim(cur: VersionedRecord): Promise<Decision> {
    const next = structuredClone(cur.record);
    next.state = "claimed";
    const a = this.own(next);
    if (this.opts.startsAtClaim?.(next.spec)) {
      next.state = "running";
      a.startedAt = a.claimedAt;
    }
    return { kind: "claimed", claimed: await this.store.update(cur, next) };
  }

  private async takeover(
    cur: VersionedRecord,
    msg: Delivery,
    silentMs: number,
    fromSelf = false,
  ): Promise<Decision> {
    const r = structuredClone(cur.record);
    const prevOwner = r.owner?.workerId ?? "unknown";
    const last = r.attempts[r.attempts.length - 1];
    const at = new Date(this.now()).toISOString();
    if (last && !last.outcome) {
      last.outcome = fromSelf ? "interrupted" : "lost";
      last.endedAt = at;
      last.reason = fromSelf
        ? `worker ${prevOwner} ended this attempt without recording its outcome`
        : `worker ${prevOwner} stopped heartbeating (silent ${Math.round(silentMs)} ms); lease expired`;
    }
    if (!fromSelf) r.countedFailures += 1;
    try {
      if (r.cancelRequested) {
        r.state = "cancelled";
        r.finishedAt = at;
        r.reason = "cancelled by request (its worker had died)";
        delete r.owner;
        delete r.cancelRequested;
        const written = await this.store.update(cur, r);
        this.seen.delete(r.id);
        await msg.ackAck().catch(() => undefined);
        return { kind: "settled", record: written.record };
      }
      if (r.countedFailures >= r.maxAttempts) {
        r.state = "dead";
        r.finishedAt = at;
        r.reason = `attempts exhausted (${r.countedFailures}/${r.maxAttempts}); last: ${last?.reason ?? "lost"}`;
        delete r.owner;
        delete r.cancelRequested;
        const written = await this.store.update(cur, r);
        this.seen.delete(r.id);
        await msg.ackAck().catch(() => undefined);
        return { kind: "settled", record: written.record };
      }
      r.state = "claimed";
      this.own(r);
      const claimed = await this.store.update(cur, r);
      this.seen.delete(r.id);
      return { kind: "claimed", claimed, ...(fromSelf ? {} : { takeoverFrom: prevOwner }) };
    } catch (err) {
      if (isMeshError(err, "CONFLICT")) {
        msg.nak(this.opts.leaseMs);
        return { kind: "skip", taskId: r.id, why: "lost the takeover race" };
      }
      throw err;
    }
  }

  private own(r: TaskRecord): AttemptInfo {
    const at = new Date(this.now()).toISOString();
    r.attempt += 1;
    r.owner = { workerId: this.me.workerId, host: this.me.host, leaseMs: this.opts.leaseMs };
    r.heartbeatAt = at;
    const a: AttemptInfo = {
      attempt: r.attempt,
      workerId: this.me.workerId,
      host: this.me.host,
      claimedAt: at,
    };
    r.attempts.push(a);
    return a;
  }
}
