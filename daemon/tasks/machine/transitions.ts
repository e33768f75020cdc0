/**
 * The task state machine: every change a daemon makes to a task record, as pure functions over
 * records. Each takes the record (never changed: a new one is returned) and `now`, and returns
 * a Step: the next record, what to do with the doorbell and which state events to publish. No
 * NATS, no clock, no I/O: callers write the record (compare-and-set on its revision), settle the
 * doorbell and publish. Who calls which: README "Task states"; the table is `TRANSITIONS`.
 */
import { MeshError } from "../../errors.js";
import {
  type AttemptInfo,
  type AttemptOutcome,
  newTaskRecord,
  type ParkedInfo,
  rateLimitedAttempts,
  type ResultBundle,
  type TaskRecord,
  type TaskResultInfo,
  type TaskState,
} from "../record.js";
import type { TaskSpec } from "../spec.js";
import { expectState, type RecordIn } from "./states.js";
import type { DoorbellAction, Notice, Step } from "./step.js";

/** Each transition's legal source states and the states it may end in. */
export const TRANSITIONS = {
  /** A new task (written with create: there is no source record); `waiting` when it has needs. */
  submit: { from: [], to: ["waiting", "queued"] },
  /** Every need of a waiting task succeeded: it is queued (once: compare-and-set on the record). */
  release: { from: ["waiting"], to: ["queued"] },
  /** A need failed, died or was cancelled: the task is cancelled, or stays waiting, by its policy. */
  blockByDependency: { from: ["waiting"], to: ["cancelled", "waiting"] },
  /** `mesh retry` of a need: a task it had cancelled (or blocked) waits for it again. */
  reopen: { from: ["cancelled", "waiting"], to: ["waiting"] },
  /** A worker wins the task: `claimed`, or `running` at once when it has nothing to prepare. */
  claim: { from: ["queued"], to: ["claimed", "running"] },
  /** The workspace is ready (a claim straight into `running` only announces it). */
  start: { from: ["claimed", "running"], to: ["running"] },
  /** The owner's heartbeat. */
  renew: { from: ["claimed", "running"], to: ["claimed", "running"] },
  /** The agent's session id, kept at once so that a later attempt can resume it. */
  noteSession: { from: ["claimed", "running"], to: ["claimed", "running"] },
  /** A cancel asked of a held task: its owner stops the run and settles it `cancelled`. */
  requestCancel: { from: ["claimed", "running"], to: ["claimed", "running"] },
  /** The attempt ended with an outcome: finished, or back to `queued` for another attempt. */
  settle: { from: ["claimed", "running"], to: ["succeeded", "failed", "dead", "cancelled", "queued"] },
  /** A dead owner's task (lease expired), or our own abandoned attempt: claimed anew, or ended. */
  takeOver: { from: ["claimed", "running"], to: ["claimed", "cancelled", "dead"] },
  /** A cancel of a waiting or queued task, at once (the API). */
  cancel: { from: ["waiting", "queued"], to: ["cancelled"] },
  /** A cancel left pending on a task that went back to the queue (claimer, sweeper). */
  applyCancel: { from: ["queued"], to: ["cancelled"] },
  /** `mesh retry`: one more attempt. */
  retry: { from: ["failed", "dead"], to: ["queued"] },
} as const satisfies Record<string, { from: readonly TaskState[]; to: readonly TaskState[] }>;

export type TransitionName = keyof typeof TRANSITIONS;
/** A record in a legal source state of transition `T`. */
export type From<T extends TransitionName> = RecordIn<(typeof TRANSITIONS)[T]["from"][number]>;
/** A step of transition `T`. */
export type StepOf<T extends TransitionName> = Step<(typeof TRANSITIONS)[T]["to"][number]>;

/** The worker claiming a task: the record's owner from then on. */
export interface Claimant {
  workerId: string;
  host: string;
  /** Its lease: others take over only after the longer of theirs and this (see TaskRecord.owner). */
  leaseMs: number;
  /** The Claude account the attempt will run on (claude tasks), kept in its attempt info. */
  account?: string;
}

/** How an attempt ended, as its owner saw it. `lost` is never the owner's word (see takeOver). */
export interface AttemptEnd {
  outcome: Exclude<AttemptOutcome, "lost">;
  /** The owner: named in the state event. */
  workerId: string;
  reason?: string | undefined;
  exitCode?: number | null | undefined;
  signal?: string | null | undefined;
  /** Merged into the record's result. */
  result?: TaskResultInfo | undefined;
  /** A failure retrying cannot fix: `failed` at once. */
  permanent?: boolean | undefined;
  /** A rate-limited attempt: try again after this (else the policy's delay); an interrupted one: after this, if set. */
  retryAfterMs?: number | undefined;
  /**
   * A rate-limited attempt that met its account's usage limit: the task is parked (queued with
   * this field) until `resumeAt` (epoch ms), counting towards nothing.
   */
  parked?: { info: ParkedInfo; resumeAt: number } | undefined;
  /** The attempt's commits, stored as a bundle (kept for failed attempts too). */
  bundle?: ResultBundle | undefined;
}

export interface RetryPolicy {
  /** The first retry's delay; each counted failure doubles it, up to MAX_BACKOFF_MS. */
  retryDelayMs: number;
}

export const MAX_BACKOFF_MS = 5 * 60_000;

/** Why a takeover happens: another owner's lease expired, or our own attempt ended unrecorded. */
export type TakeoverCause = { kind: "expired"; silentMs: number } | { kind: "abandoned" };

const LEAVE: DoorbellAction = { kind: "leave" };
const ACK: DoorbellAction = { kind: "ack" };
const OF_RECORD: readonly Notice[] = [{ of: "record" }];

function guard<T extends TransitionName>(r: TaskRecord, name: T): From<T> {
  return expectState(r, name, TRANSITIONS[name].from) as From<T>;
}

/**
 * A copy of `r` a transition may change: its own owner, attempts (each entry) and result; the
 * spec and the values inside an attempt or result (bundles, usage) are shared, as no transition
 * changes them in place. About 60x cheaper than structuredClone, on every write of the claim
 * path; the unit tests run every transition on deep-frozen input to hold it to that.
 */
export function copyRecord(r: TaskRecord): TaskRecord {
  const next: TaskRecord = { ...r, attempts: r.attempts.map((a) => ({ ...a })) };
  if (r.owner) next.owner = { ...r.owner };
  if (r.result) next.result = { ...r.result };
  return next;
}

/** A copy of `r` moved to `state` (the copy is the next record). */
function moved<S extends TaskState>(r: TaskRecord, state: S): RecordIn<S> {
  const next = copyRecord(r);
  next.state = state;
  return next as RecordIn<S>;
}

function step<S extends TaskState>(
  record: RecordIn<S>,
  doorbell: DoorbellAction,
  notices: readonly Notice[],
  write = true,
): Step<S> {
  return { record, write, doorbell, notices };
}

/** Makes `who` the owner of a new attempt of `r` (in place: `r` is already a copy). */
function own(r: TaskRecord, who: Claimant, at: string): AttemptInfo {
  r.attempt += 1;
  r.owner = { workerId: who.workerId, host: who.host, leaseMs: who.leaseMs };
  r.heartbeatAt = at;
  const a: AttemptInfo = {
    attempt: r.attempt,
    workerId: who.workerId,
    host: who.host,
    claimedAt: at,
    ...(who.account ? { account: who.account } : {}),
  };
  r.attempts.push(a);
  return a;
}

/** Ends `r` (a copy) in a terminal state. */
function finished<S extends "succeeded" | "failed" | "cancelled" | "dead">(
  r: TaskRecord,
  state: S,
  reason: string | undefined,
  now: Date,
): RecordIn<S> {
  r.state = state;
  r.finishedAt = now.toISOString();
  if (reason) r.reason = reason;
  delete r.owner;
  delete r.cancelRequested;
  return r as RecordIn<S>;
}

/** A new record: queued with a doorbell, or waiting (no doorbell) when it has needs. */
export function submit(spec: TaskSpec, now: Date): StepOf<"submit"> {
  const r = newTaskRecord(spec, now) as RecordIn<"waiting" | "queued">;
  return step(r, r.state === "queued" ? { kind: "ring" } : LEAVE, OF_RECORD);
}

/** The state of a task's need as its releaser read it (undefined: no such record). */
export type NeedState = (id: string) => TaskState | undefined;

/**
 * Every need of `r` has succeeded (as `needState` read them, after the caller's own success
 * was written): it is queued and a doorbell announces it. Throws FAILED_PRECONDITION naming
 * a need that has not succeeded.
 */
export function release(r: From<"release">, needState: NeedState): StepOf<"release"> {
  guard(r, "release");
  for (const n of r.spec.needs ?? []) {
    const s = needState(n);
    if (s !== "succeeded") {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `task ${r.id}: cannot release it; its need ${n} is ${s ?? "missing"}`,
      );
    }
  }
  const next = moved(r, "queued");
  delete next.blockedBy;
  return step(next, { kind: "ring" }, OF_RECORD);
}

/** A need that ended without success, as the settler saw it. */
export interface FailedNeed {
  id: string;
  state: "failed" | "dead" | "cancelled";
  /** The need's own reason, quoted in the dependent's. */
  reason?: string | undefined;
}

/** The human reason a failed need gives its dependent. */
export function dependencyReason(need: FailedNeed): string {
  const why = need.reason ? `: ${need.reason}` : "";
  return `dependency ${need.id} ${need.state === "dead" ? "died" : need.state}${why}`;
}

/**
 * A need of `r` failed, died or was cancelled. Policy `cancel` (the default): `r` is cancelled
 * with the reason naming the need and `cancelCause` (what `mesh retry` of the need re-opens).
 * Policy `wait`: `r` stays waiting, the need named in `blockedBy`; a retried need that then
 * succeeds releases it. Idempotent for the same need.
 */
export function blockByDependency(
  r: From<"blockByDependency">,
  need: FailedNeed,
  now: Date,
): StepOf<"blockByDependency"> {
  guard(r, "blockByDependency");
  if (!(r.spec.needs ?? []).includes(need.id)) {
    throw new MeshError("FAILED_PRECONDITION", `task ${r.id}: ${need.id} is not one of its needs`);
  }
  const reason = dependencyReason(need);
  if ((r.spec.dependencyFailure ?? "cancel") === "wait") {
    if (r.blockedBy?.dependency === need.id && r.blockedBy.reason === reason)
      return step(r, LEAVE, [], false);
    const next = moved(r, "waiting");
    next.blockedBy = { dependency: need.id, reason };
    return step(next, LEAVE, []);
  }
  const next = moved(r, "cancelled");
  next.finishedAt = now.toISOString();
  next.reason = reason;
  next.cancelCause = { dependency: need.id };
  delete next.blockedBy;
  delete next.cancelRequested;
  return step(next, LEAVE, OF_RECORD);
}

/**
 * `mesh retry` of `need`: `r`, cancelled because of it (cancelCause), waits again; a waiting
 * `r` blocked by it is no longer blocked. Not for a task cancelled for any other reason.
 */
export function reopen(r: From<"reopen">, need: string): StepOf<"reopen"> {
  guard(r, "reopen");
  if (r.state === "waiting") {
    if (r.blockedBy?.dependency !== need) return step(r as RecordIn<"waiting">, LEAVE, [], false);
    const next = moved(r, "waiting");
    delete next.blockedBy;
    return step(next, LEAVE, []);
  }
  if (r.cancelCause?.dependency !== need) {
    throw new MeshError(
      "FAILED_PRECONDITION",
      `task ${r.id}: it was not cancelled by its dependency ${need}; nothing to re-open`,
    );
  }
  const next = moved(r, "waiting");
  delete next.finishedAt;
  delete next.reason;
  delete next.cancelCause;
  return step(next, LEAVE, OF_RECORD);
}

/**
 * `who` claims `r`. `startsNow`: the attempt has nothing to prepare, so the claim writes
 * `running` at once (watchers still see `claimed`, then `running` from start()). A queued task
 * with a cancel pending is not claimed: applyCancel() it.
 */
export function claim(r: From<"claim">, who: Claimant, now: Date, startsNow = false): StepOf<"claim"> {
  guard(r, "claim");
  if (r.cancelRequested) {
    throw new MeshError("FAILED_PRECONDITION", `task ${r.id}: a cancel is pending; apply it, not a claim`);
  }
  const next: TaskRecord = moved(r, "claimed");
  // Parked no more: this attempt resumes it.
  delete next.parked;
  const a = own(next, who, now.toISOString());
  if (startsNow) {
    next.state = "running";
    a.startedAt = a.claimedAt;
  }
  return step(next as RecordIn<"claimed" | "running">, LEAVE, [{ of: "claim" }]);
}

/** The attempt's workspace is ready: `running`. A record claimed straight into it is not written again. */
export function start(r: From<"start">, workerId: string, now: Date): StepOf<"start"> {
  guard(r, "start");
  const notices: Notice[] = [{ of: "record", workerId }];
  if (r.state === "running") return step(r as RecordIn<"running">, LEAVE, notices, false);
  const next = moved(r, "running");
  const a = next.attempts[next.attempts.length - 1];
  if (a) a.startedAt = now.toISOString();
  return step(next, LEAVE, notices);
}

export function renew(r: From<"renew">, now: Date): StepOf<"renew"> {
  guard(r, "renew");
  return step({ ...r, heartbeatAt: now.toISOString() }, LEAVE, []);
}

export function noteSession(r: From<"noteSession">, sessionId: string): StepOf<"noteSession"> {
  guard(r, "noteSession");
  if (r.result?.sessionId === sessionId) return step(r, LEAVE, [], false);
  return step({ ...r, result: { ...r.result, sessionId } }, LEAVE, []);
}

/** Asks the owner to stop (it learns of it from the record and the cancel subject). Idempotent. */
export function requestCancel(r: From<"requestCancel">): StepOf<"requestCancel"> {
  guard(r, "requestCancel");
  if (r.cancelRequested) return step(r, LEAVE, [], false);
  return step({ ...r, cancelRequested: true }, LEAVE, []);
}

/** A queued task (also one in a retry back-off, or handed back with a cancel pending) is cancelled now. */
export function cancel(r: From<"cancel">, now: Date): StepOf<"cancel"> {
  guard(r, "cancel");
  const next = moved(r, "cancelled");
  next.finishedAt = now.toISOString();
  next.reason =
    r.attempt > 0 ? "cancelled by request between attempts" : "cancelled by request before it started";
  delete next.cancelRequested;
  delete next.notBefore;
  delete next.blockedBy;
  delete next.parked;
  return step(next, ACK, OF_RECORD);
}

/** A queued task with a cancel pending (one that raced a requeue): whoever sees it finishes it. */
export function applyCancel(r: From<"applyCancel">, now: Date): StepOf<"applyCancel"> {
  guard(r, "applyCancel");
  if (!r.cancelRequested) {
    throw new MeshError("FAILED_PRECONDITION", `task ${r.id}: no cancel is pending; nothing to apply`);
  }
  const next = moved(r, "cancelled");
  next.finishedAt = now.toISOString();
  next.reason = "cancelled by request";
  delete next.owner;
  delete next.cancelRequested;
  delete next.notBefore;
  delete next.parked;
  return step(next, ACK, OF_RECORD);
}

/** One more attempt than have counted so far; a new doorbell announces it. */
export function retry(r: From<"retry">): StepOf<"retry"> {
  guard(r, "retry");
  const next = moved(r, "queued");
  next.maxAttempts = Math.max(r.maxAttempts, r.countedFailures + 1);
  delete next.finishedAt;
  delete next.reason;
  delete next.notBefore;
  return step(next, { kind: "ring" }, OF_RECORD);
}

/**
 * `who` takes `r` over: the holder's unfinished attempt is recorded as `lost` (counted) when
 * its lease expired, or `interrupted` (not counted) when it was our own and ended without its
 * outcome. Then a pending cancel ends the task `cancelled`, used-up attempts end it `dead`, and
 * otherwise `who` claims it (always `claimed`: the new attempt prepares its workspace).
 */
export function takeOver(
  r: From<"takeOver">,
  who: Claimant,
  cause: TakeoverCause,
  now: Date,
): StepOf<"takeOver"> {
  guard(r, "takeOver");
  const next: TaskRecord = copyRecord(r);
  const prevOwner = r.owner?.workerId ?? "unknown";
  const last = next.attempts[next.attempts.length - 1];
  const at = now.toISOString();
  const abandoned = cause.kind === "abandoned";
  if (last && !last.outcome) {
    last.outcome = abandoned ? "interrupted" : "lost";
    last.endedAt = at;
    last.reason = abandoned
      ? `worker ${prevOwner} ended this attempt without recording its outcome`
      : `worker ${prevOwner} stopped heartbeating (silent ${Math.round(cause.silentMs)} ms); lease expired`;
  }
  if (!abandoned) next.countedFailures += 1;
  const done: DoorbellAction = { kind: "ack", confirm: true };
  if (next.cancelRequested) {
    return step(
      finished(next, "cancelled", "cancelled by request (its worker had died)", now),
      done,
      OF_RECORD,
    );
  }
  if (next.countedFailures >= next.maxAttempts) {
    const reason = `attempts exhausted (${next.countedFailures}/${next.maxAttempts}); last: ${last?.reason ?? "lost"}`;
    return step(finished(next, "dead", reason, now), done, OF_RECORD);
  }
  next.state = "claimed";
  own(next, who, at);
  return step(next as RecordIn<"claimed">, LEAVE, [{ of: "claim" }]);
}

/** The delay before retry number `failures` (1 for the first). */
export function backoffMs(retryDelayMs: number, failures: number): number {
  return Math.min(retryDelayMs * 2 ** Math.max(0, failures - 1), MAX_BACKOFF_MS);
}

/**
 * The attempt's outcome, written by its owner. A cancel requested meanwhile wins over every
 * outcome but success (never `queued` with a cancel pending); an interrupted attempt goes back
 * at once and does not count; a rate-limited one goes back after its delay and does not count
 * (but too many of them end the task `dead`); a failure counts: `failed` when permanent, `dead`
 * when the attempts are used up, else back to `queued` after an exponential back-off.
 */
export function settle(r: From<"settle">, end: AttemptEnd, policy: RetryPolicy, now: Date): StepOf<"settle"> {
  guard(r, "settle");
  if (end.outcome === "succeeded" && r.state !== "running") {
    throw new MeshError("FAILED_PRECONDITION", `task ${r.id}: cannot succeed from ${r.state}; it never ran`);
  }
  const next: TaskRecord = copyRecord(r);
  const a = next.attempts[next.attempts.length - 1];
  if (a) {
    a.endedAt = now.toISOString();
    a.outcome = end.outcome;
    if (end.reason) a.reason = end.reason;
    if (end.exitCode !== undefined) a.exitCode = end.exitCode;
    if (end.signal !== undefined) a.signal = end.signal;
    if (end.bundle) a.bundle = end.bundle;
  }
  if (end.result) next.result = { ...next.result, ...end.result };
  delete next.notBefore;
  delete next.parked;
  const notices: Notice[] = [{ of: "record", workerId: end.workerId }];
  const done = <S extends "succeeded" | "failed" | "cancelled" | "dead">(state: S, reason?: string) =>
    step(finished(next, state, reason, now), ACK, notices);
  const again = (notBefore?: number) => {
    next.state = "queued";
    delete next.owner;
    delete next.heartbeatAt;
    if (notBefore !== undefined) next.notBefore = new Date(notBefore).toISOString();
    const doorbell: DoorbellAction = next.notBefore
      ? { kind: "nak", until: next.notBefore }
      : { kind: "nak" };
    return step(next as RecordIn<"queued">, doorbell, notices);
  };
  if (next.cancelRequested && end.outcome !== "succeeded") return done("cancelled", "cancelled by request");
  switch (end.outcome) {
    case "succeeded":
      return done("succeeded");
    case "cancelled":
      return done("cancelled", "cancelled by request");
    case "interrupted":
      // Handed back without running (no free quota slot, issue 15): after its delay.
      return again(end.retryAfterMs !== undefined ? now.getTime() + end.retryAfterMs : undefined);
    case "rate_limited": {
      // Parked at the account's limit: no attempt counts, not even towards the rate-limit cap.
      if (end.parked) {
        if (a) a.parked = true;
        next.parked = end.parked.info;
        return again(end.parked.resumeAt);
      }
      const limited = rateLimitedAttempts(next);
      if (limited > next.maxAttempts * 5) return done("dead", `rate limited ${limited} times`);
      return again(now.getTime() + (end.retryAfterMs ?? policy.retryDelayMs));
    }
    default: {
      next.countedFailures += 1;
      if (end.permanent) return done("failed", end.reason);
      if (next.countedFailures >= next.maxAttempts) {
        return done(
          "dead",
          `attempts exhausted (${next.countedFailures}/${next.maxAttempts}); last: ${end.reason}`,
        );
      }
      return again(now.getTime() + backoffMs(policy.retryDelayMs, next.countedFailures));
    }
  }
}
