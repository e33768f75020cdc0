/**
 * The task state machine without NATS: every transition of tasks/machine, its next record,
 * doorbell action and state events; every illegal source state refused at runtime; the store's
 * edge table equal to the edges the transitions take; and (checked by `npm run typecheck`, as
 * test/ is in the tsconfig) calls on records of illegal states do not compile.
 */
import { describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import {
  type AttemptEnd,
  applyCancel,
  backoffMs,
  blockByDependency,
  type Claimant,
  canTransition,
  cancel,
  claim,
  EDGES,
  expectState,
  MAX_BACKOFF_MS,
  nakDelayMs,
  noteSession,
  type RecordIn,
  release,
  renew,
  reopen,
  requestCancel,
  retry,
  type Step,
  settle,
  start,
  stateEvents,
  submit,
  TRANSITIONS,
  type TransitionName,
  takeOver,
} from "../daemon/tasks/machine/index.js";
import { MAX_REASON_CHARS, TASK_STATES, type TaskRecord, type TaskState } from "../daemon/tasks/record.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";

const T0 = new Date("2026-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(T0.getTime() + ms);
const iso = (ms: number) => at(ms).toISOString();
const me: Claimant = { workerId: "w-me", host: "h-me", leaseMs: 3000 };
const other: Claimant = { workerId: "w-other", host: "h-other", leaseMs: 5000 };
const policy = { retryDelayMs: 1000 };

/** Edges (from -> to, a change of state) the steps below took, to compare with the store's table. */
const taken = new Set<string>();

/** Any in-place change of a transition's input throws (ESM is strict mode). */
function frozen<T>(x: T): T {
  if (x && typeof x === "object") {
    for (const v of Object.values(x)) frozen(v);
    Object.freeze(x);
  }
  return x;
}

/** Checks a step against the table (`name`'s `to`) and notes its edge. */
function took<S extends TaskState>(name: TransitionName, from: TaskRecord, s: Step<S>): Step<S> {
  expect(TRANSITIONS[name].to as readonly TaskState[]).toContain(s.record.state);
  if (s.write) expect(s.record).not.toBe(from);
  // A takeover is an edge even when the state stays (claimed -> claimed: a new owner).
  if (s.record.state !== from.state || name === "takeOver") taken.add(`${from.state}->${s.record.state}`);
  return s;
}

/** The record as the store would write it: stamped (and here, otherwise as the step made it). */
const written = (r: TaskRecord, ms: number): TaskRecord => ({ ...r, updatedAt: iso(ms) });

function queued(extra: Record<string, unknown> = {}): RecordIn<"queued"> {
  const spec = validateTaskSpec({ id: "t-1", prompt: "p", runner: "noop", maxAttempts: 3, ...extra });
  return frozen(submit(spec, T0).record as RecordIn<"queued">);
}
/** A task of plan p that needs p-a and p-b. */
function waiting(extra: Record<string, unknown> = {}): RecordIn<"waiting"> {
  const spec = validateTaskSpec({
    id: "t-1",
    prompt: "p",
    runner: "noop",
    plan: "p",
    needs: ["p-a", "p-b"],
    ...extra,
  });
  return frozen(submit(spec, T0).record as RecordIn<"waiting">);
}
function claimed(from = queued()): RecordIn<"claimed"> {
  return frozen(claim(from, me, at(10)).record as RecordIn<"claimed">);
}
function running(from = claimed()): RecordIn<"running"> {
  return frozen(start(from, me.workerId, at(20)).record);
}
/** A record that claims to be in `state` (the runtime guards look at the state only). */
function inAnyState(state: TaskState): TaskRecord {
  return frozen({ ...structuredClone(running()), state });
}

const end = (outcome: AttemptEnd["outcome"], more: Partial<AttemptEnd> = {}): AttemptEnd => ({
  outcome,
  workerId: me.workerId,
  ...more,
});

describe("submit and claim", () => {
  it("submit: a queued record and a doorbell to ring; its event waits for attempt 1", () => {
    const s = submit(validateTaskSpec({ id: "t-1", prompt: "p", runner: "noop" }), T0);
    expect(s.record).toMatchObject({ v: 1, id: "t-1", state: "queued", attempt: 0, countedFailures: 0 });
    expect(s.record.submittedAt).toBe(T0.toISOString());
    expect(s.doorbell).toEqual({ kind: "ring" });
    expect(stateEvents(written(s.record, 1), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(1), state: "queued", attempt: 1 },
    ]);
  });

  it("claim: a new attempt owned by the claimant, the doorbell left to it, a `claimed` event", () => {
    const q = queued();
    const s = took("claim", q, claim(q, me, at(10)));
    expect(s.record).toMatchObject({
      state: "claimed",
      attempt: 1,
      owner: { workerId: "w-me", host: "h-me", leaseMs: 3000 },
      heartbeatAt: iso(10),
      attempts: [{ attempt: 1, workerId: "w-me", host: "h-me", claimedAt: iso(10) }],
    });
    expect(s.record.attempts[0]?.startedAt).toBeUndefined();
    expect(s.doorbell).toEqual({ kind: "leave" });
    expect(stateEvents(written(s.record, 11), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(10), state: "claimed", attempt: 1, workerId: "w-me" },
    ]);
  });

  it("claim with nothing to prepare: straight into running, still announced as `claimed`", () => {
    const q = queued();
    const s = took("claim", q, claim(q, me, at(10), true));
    expect(s.record.state).toBe("running");
    expect(s.record.attempts[0]?.startedAt).toBe(iso(10));
    expect(stateEvents(written(s.record, 11), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(10), state: "claimed", attempt: 1, workerId: "w-me" },
    ]);
  });

  it("claim refuses a queued task with a cancel pending (applyCancel ends it instead)", () => {
    const q = frozen({ ...structuredClone(queued()), cancelRequested: true });
    expect(() => claim(q, me, at(10))).toThrow(expect.objectContaining({ code: "FAILED_PRECONDITION" }));
  });
});

describe("start, renew, noteSession, requestCancel", () => {
  it("start: claimed -> running with startedAt, a `running` event naming the worker", () => {
    const c = claimed();
    const s = took("start", c, start(c, me.workerId, at(20)));
    expect(s.write).toBe(true);
    expect(s.record.state).toBe("running");
    expect(s.record.attempts[0]?.startedAt).toBe(iso(20));
    expect(s.doorbell).toEqual({ kind: "leave" });
    expect(stateEvents(written(s.record, 21), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(21), state: "running", attempt: 1, workerId: "w-me" },
    ]);
  });

  it("start of a record claimed straight into running writes nothing and only announces it", () => {
    const r = frozen(claim(queued(), me, at(10), true).record as RecordIn<"running">);
    const s = start(r, me.workerId, at(20));
    expect(s.write).toBe(false);
    expect(s.record).toBe(r);
    expect(stateEvents(r, s.notices)).toMatchObject([{ state: "running", attempt: 1, workerId: "w-me" }]);
  });

  it("renew: the heartbeat time, same state, no event", () => {
    for (const r of [claimed(), running()]) {
      const s = renew(r, at(500));
      expect(s.record).toEqual({ ...r, heartbeatAt: iso(500) });
      expect(s.write).toBe(true);
      expect(s.notices).toEqual([]);
      expect(s.doorbell).toEqual({ kind: "leave" });
    }
  });

  it("noteSession: the session id joins the result; the same one again writes nothing", () => {
    const s = noteSession(running(), "sess-1");
    expect(s.record.result).toEqual({ sessionId: "sess-1" });
    expect(s.notices).toEqual([]);
    expect(noteSession(frozen(s.record), "sess-1").write).toBe(false);
  });

  it("requestCancel: the flag for the owner; asked again, nothing to write", () => {
    const s = requestCancel(running());
    expect(s.record).toMatchObject({ state: "running", cancelRequested: true });
    expect(s.notices).toEqual([]);
    expect(requestCancel(frozen(s.record)).write).toBe(false);
  });
});

describe("settle: the attempt's outcome and the retry policy", () => {
  it("succeeded: finished, no owner, the result merged, the doorbell acked", () => {
    const base = frozen({ ...structuredClone(running()), result: { sessionId: "s" } });
    const s = took(
      "settle",
      base,
      settle(
        base,
        end("succeeded", { exitCode: 0, signal: null, result: { branch: "mesh/t-1" } }),
        policy,
        at(90),
      ),
    );
    expect(s.record).toMatchObject({ state: "succeeded", finishedAt: iso(90) });
    expect(s.record.owner).toBeUndefined();
    expect(s.record.result).toEqual({ sessionId: "s", branch: "mesh/t-1" });
    expect(s.record.attempts[0]).toMatchObject({
      outcome: "succeeded",
      endedAt: iso(90),
      exitCode: 0,
      signal: null,
    });
    expect(s.doorbell).toEqual({ kind: "ack" });
    expect(stateEvents(written(s.record, 91), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(91), state: "succeeded", attempt: 1, workerId: "w-me" },
    ]);
  });

  it("a cancel requested meanwhile wins over every outcome but success", () => {
    const asked = frozen(requestCancel(running()).record);
    for (const o of ["failed", "timeout", "interrupted", "rate_limited", "cancelled"] as const) {
      const s = took("settle", asked, settle(asked, end(o, { reason: "x" }), policy, at(90)));
      expect(s.record).toMatchObject({ state: "cancelled", reason: "cancelled by request" });
      expect(s.record.cancelRequested).toBeUndefined();
      expect(s.doorbell).toEqual({ kind: "ack" });
    }
    expect(settle(asked, end("succeeded"), policy, at(90)).record.state).toBe("succeeded");
  });

  it("interrupted (shutdown, self-fence): back to queued at once, not counted, nak'ed without delay", () => {
    const r = frozen({ ...structuredClone(running()), notBefore: iso(5) });
    const s = took("settle", r, settle(r, end("interrupted"), policy, at(90)));
    expect(s.record).toMatchObject({ state: "queued", countedFailures: 0 });
    expect(s.record.owner).toBeUndefined();
    expect(s.record.heartbeatAt).toBeUndefined();
    expect(s.record.notBefore).toBeUndefined();
    expect(s.doorbell).toEqual({ kind: "nak" });
    expect(nakDelayMs(s.doorbell as { kind: "nak" }, 0)).toBe(0);
    // A queued task's event belongs to its next attempt.
    expect(stateEvents(written(s.record, 91), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(91), state: "queued", attempt: 2, workerId: "w-me" },
    ]);
  });

  it("rate limited: queued after the agent's delay (or the policy's), not counted; too many end it dead", () => {
    const r = running();
    const s = took("settle", r, settle(r, end("rate_limited", { retryAfterMs: 7000 }), policy, at(90)));
    expect(s.record).toMatchObject({ state: "queued", countedFailures: 0, notBefore: iso(7090) });
    expect(s.doorbell).toEqual({ kind: "nak", until: iso(7090) });
    expect(nakDelayMs(s.doorbell as { kind: "nak" }, at(90).getTime())).toBe(7000);
    expect(settle(r, end("rate_limited"), policy, at(90)).record.notBefore).toBe(iso(1090));
    const many = frozen({ ...structuredClone(r), droppedRateLimited: 15 }); // 15 + this one > 3 * 5
    const dead = took("settle", many, settle(many, end("rate_limited"), policy, at(90)));
    expect(dead.record).toMatchObject({ state: "dead", reason: "rate limited 16 times" });
  });

  it("parked at the account's limit: queued until the resume time with `parked`, counting for nothing", () => {
    const r = running();
    const info = { account: "team", until: iso(5000), reason: "api error 429", workerId: me.workerId };
    const many = frozen({ ...structuredClone(r), droppedRateLimited: 15 }); // would end it dead unparked
    const s = took(
      "settle",
      many,
      settle(many, end("rate_limited", { parked: { info, resumeAt: at(6200).getTime() } }), policy, at(90)),
    );
    expect(s.record).toMatchObject({
      state: "queued",
      countedFailures: 0,
      notBefore: iso(6200),
      parked: info,
    });
    expect(s.record.attempts.at(-1)).toMatchObject({ outcome: "rate_limited", parked: true });
    expect(s.doorbell).toEqual({ kind: "nak", until: iso(6200) });
    expect(stateEvents(written(s.record, 91), s.notices)[0]).toMatchObject({
      state: "queued",
      parked: { account: "team", until: iso(5000) },
    });
    // The next claim resumes it: parked no more.
    const again = claim(frozen(s.record as RecordIn<"queued">), me, at(7000));
    expect(again.record.parked).toBeUndefined();
  });

  it("a failure with attempts left counts and goes back after an exponential back-off", () => {
    let r: TaskRecord = running();
    const delays: number[] = [];
    for (let n = 1; n <= 2; n++) {
      const s = took(
        "settle",
        r,
        settle(r as RecordIn<"running">, end("failed", { reason: `boom ${n}` }), policy, at(90)),
      );
      expect(s.record).toMatchObject({ state: "queued", countedFailures: n });
      expect(s.record.attempts.at(-1)).toMatchObject({ outcome: "failed", reason: `boom ${n}` });
      delays.push(Date.parse(s.record.notBefore!) - at(90).getTime());
      r = running(claimed(frozen(s.record as RecordIn<"queued">)));
    }
    expect(delays).toEqual([1000, 2000]);
    // The third counted failure of three: dead, with the last reason.
    const s = took(
      "settle",
      r,
      settle(r as RecordIn<"running">, end("timeout", { reason: "timed out" }), policy, at(90)),
    );
    expect(s.record).toMatchObject({
      state: "dead",
      countedFailures: 3,
      reason: "attempts exhausted (3/3); last: timed out",
    });
    expect(s.doorbell).toEqual({ kind: "ack" });
    expect(backoffMs(1000, 30)).toBe(MAX_BACKOFF_MS);
  });

  it("a permanent failure ends `failed` at once with its reason; from `claimed` too (the workspace failed)", () => {
    const c = claimed();
    const s = took(
      "settle",
      c,
      settle(c, end("failed", { reason: "workspace: no repo", permanent: true }), policy, at(90)),
    );
    expect(s.record).toMatchObject({ state: "failed", reason: "workspace: no repo", countedFailures: 1 });
    expect(took("settle", c, settle(c, end("failed", { reason: "x" }), policy, at(90))).record.state).toBe(
      "queued",
    );
    expect(took("settle", c, settle(c, end("cancelled"), policy, at(90))).record.state).toBe("cancelled");
    const last = frozen({ ...structuredClone(c), maxAttempts: 1 });
    expect(
      took("settle", last, settle(last, end("failed", { reason: "x" }), policy, at(90))).record.state,
    ).toBe("dead");
    const sr = running();
    expect(
      took("settle", sr, settle(sr, end("failed", { reason: "x", permanent: true }), policy, at(90))).record
        .state,
    ).toBe("failed");
  });

  it("an attempt that never ran cannot succeed", () => {
    expect(() => settle(claimed(), end("succeeded"), policy, at(90))).toThrow(
      expect.objectContaining({ code: "FAILED_PRECONDITION" }),
    );
  });
});

describe("takeOver: a dead owner's task, or our own abandoned attempt", () => {
  const theirs = (): RecordIn<"running"> =>
    frozen(
      start(claim(queued(), other, at(10)).record as RecordIn<"claimed">, other.workerId, at(20)).record,
    );

  it("lease expired: the attempt is lost (counted) and the claimant claims it anew", () => {
    const r = theirs();
    const s = took("takeOver", r, takeOver(r, me, { kind: "expired", silentMs: 5123.4 }, at(6000)));
    expect(s.record).toMatchObject({
      state: "claimed",
      attempt: 2,
      countedFailures: 1,
      owner: { workerId: "w-me", host: "h-me", leaseMs: 3000 },
      heartbeatAt: iso(6000),
    });
    expect(s.record.attempts[0]).toMatchObject({
      outcome: "lost",
      endedAt: iso(6000),
      reason: "worker w-other stopped heartbeating (silent 5123 ms); lease expired",
    });
    expect(s.record.attempts[1]).toEqual({
      attempt: 2,
      workerId: "w-me",
      host: "h-me",
      claimedAt: iso(6000),
    });
    expect(s.doorbell).toEqual({ kind: "leave" });
    expect(stateEvents(written(s.record, 6001), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(6000), state: "claimed", attempt: 2, workerId: "w-me" },
    ]);
    // From `claimed` too (it died preparing), and a claim is always `claimed`.
    const c = frozen(claim(queued(), other, at(10)).record as RecordIn<"claimed">);
    expect(
      took("takeOver", c, takeOver(c, me, { kind: "expired", silentMs: 1 }, at(6000))).record.state,
    ).toBe("claimed");
  });

  it("abandoned (ours, ended unrecorded): interrupted, not counted, no takeover counted", () => {
    const r = running();
    const s = took("takeOver", r, takeOver(r, me, { kind: "abandoned" }, at(6000)));
    expect(s.record).toMatchObject({ state: "claimed", attempt: 2, countedFailures: 0 });
    expect(s.record.attempts[0]).toMatchObject({
      outcome: "interrupted",
      reason: "worker w-me ended this attempt without recording its outcome",
    });
  });

  it("with a cancel pending it ends cancelled; with the attempts used up, dead; both acked and confirmed", () => {
    const asked = frozen(requestCancel(theirs()).record);
    const c = took("takeOver", asked, takeOver(asked, me, { kind: "expired", silentMs: 9000 }, at(9000)));
    expect(c.record).toMatchObject({
      state: "cancelled",
      reason: "cancelled by request (its worker had died)",
      finishedAt: iso(9000),
    });
    expect(c.record.owner).toBeUndefined();
    expect(c.record.cancelRequested).toBeUndefined();
    expect(c.doorbell).toEqual({ kind: "ack", confirm: true });
    expect(stateEvents(written(c.record, 9001), c.notices)).toEqual([
      {
        type: "state",
        taskId: "t-1",
        at: iso(9001),
        state: "cancelled",
        attempt: 1,
        reason: "cancelled by request (its worker had died)",
      },
    ]);
    const last = frozen({ ...structuredClone(theirs()), maxAttempts: 1 });
    const d = took("takeOver", last, takeOver(last, me, { kind: "expired", silentMs: 9000 }, at(9000)));
    expect(d.record).toMatchObject({ state: "dead", countedFailures: 1 });
    expect(d.record.reason).toMatch(
      /^attempts exhausted \(1\/1\); last: worker w-other stopped heartbeating/,
    );
    expect(d.doorbell).toEqual({ kind: "ack", confirm: true });
  });
});

describe("cancel, applyCancel, retry", () => {
  it("cancel of a queued task: cancelled at once, the reason says whether it ever ran", () => {
    const q = queued();
    const s = took("cancel", q, cancel(q, at(5)));
    expect(s.record).toMatchObject({
      state: "cancelled",
      finishedAt: iso(5),
      reason: "cancelled by request before it started",
    });
    expect(s.doorbell).toEqual({ kind: "ack" });
    expect(stateEvents(written(s.record, 6), s.notices)).toEqual([
      {
        type: "state",
        taskId: "t-1",
        at: iso(6),
        state: "cancelled",
        attempt: 0,
        reason: "cancelled by request before it started",
      },
    ]);
    const between = frozen(
      settle(running(), end("failed", { reason: "x" }), policy, at(90)).record as RecordIn<"queued">,
    );
    const b = took("cancel", between, cancel(between, at(95)));
    expect(b.record.reason).toBe("cancelled by request between attempts");
    expect(b.record.notBefore).toBeUndefined();
  });

  it("applyCancel: a cancel left pending on a queued task ends it", () => {
    const q = frozen({ ...structuredClone(queued()), cancelRequested: true, notBefore: iso(99) });
    const s = took("applyCancel", q, applyCancel(q, at(5)));
    expect(s.record).toMatchObject({
      state: "cancelled",
      reason: "cancelled by request",
      finishedAt: iso(5),
    });
    expect(s.record.cancelRequested).toBeUndefined();
    expect(s.record.notBefore).toBeUndefined();
    expect(s.doorbell).toEqual({ kind: "ack" });
    expect(() => applyCancel(queued(), at(5))).toThrow(
      expect.objectContaining({ code: "FAILED_PRECONDITION" }),
    );
  });

  it("retry: failed or dead back to queued with one more attempt than have counted, a doorbell rung", () => {
    const r = running();
    const dead = frozen(
      settle(
        frozen({ ...structuredClone(r), maxAttempts: 1 }),
        end("failed", { reason: "x" }),
        policy,
        at(90),
      ).record as RecordIn<"dead">,
    );
    const s = took("retry", dead, retry(dead));
    expect(s.record).toMatchObject({ state: "queued", maxAttempts: 2, countedFailures: 1, attempt: 1 });
    expect(s.record.finishedAt).toBeUndefined();
    expect(s.record.reason).toBeUndefined();
    expect(s.doorbell).toEqual({ kind: "ring" });
    expect(stateEvents(written(s.record, 100), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(100), state: "queued", attempt: 2 },
    ]);
    const failed = frozen(
      settle(r, end("failed", { reason: "x", permanent: true }), policy, at(90)).record as RecordIn<"failed">,
    );
    expect(took("retry", failed, retry(failed)).record).toMatchObject({ state: "queued", maxAttempts: 3 });
  });
});

describe("plans: waiting, release, blocked by a dependency, re-opened", () => {
  it("submit with needs: a waiting record, no doorbell, a `waiting` event", () => {
    const s = submit(waiting().spec, T0);
    expect(s.record.state).toBe("waiting");
    expect(s.doorbell).toEqual({ kind: "leave" });
    expect(stateEvents(written(s.record, 1), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(1), state: "waiting", attempt: 0 },
    ]);
  });

  it("release: queued with a doorbell only when every need succeeded; else refused naming the need", () => {
    const w = waiting();
    const s = took(
      "release",
      w,
      release(w, () => "succeeded"),
    );
    expect(s.record.state).toBe("queued");
    expect(s.doorbell).toEqual({ kind: "ring" });
    expect(stateEvents(written(s.record, 5), s.notices)).toEqual([
      { type: "state", taskId: "t-1", at: iso(5), state: "queued", attempt: 1 },
    ]);
    const states: Record<string, TaskState> = { "p-a": "succeeded", "p-b": "running" };
    expect(() => release(w, (id) => states[id])).toThrow("its need p-b is running");
    expect(() => release(w, () => undefined)).toThrow("its need p-a is missing");
  });

  it("blockByDependency (default cancel): cancelled, the reason naming the need, cancelCause set", () => {
    const w = waiting();
    const s = took(
      "blockByDependency",
      w,
      blockByDependency(w, { id: "p-b", state: "dead", reason: "exit 3" }, at(7)),
    );
    expect(s.record).toMatchObject({
      state: "cancelled",
      reason: "dependency p-b died: exit 3",
      cancelCause: { dependency: "p-b" },
      finishedAt: iso(7),
    });
    expect(stateEvents(written(s.record, 8), s.notices)).toEqual([
      {
        type: "state",
        taskId: "t-1",
        at: iso(8),
        state: "cancelled",
        attempt: 0,
        reason: "dependency p-b died: exit 3",
      },
    ]);
    expect(() => blockByDependency(w, { id: "p-z", state: "failed" }, T0)).toThrow(
      "p-z is not one of its needs",
    );
  });

  it("blockByDependency under policy wait: stays waiting, blocked visibly; the same need again writes nothing", () => {
    const w = waiting({ dependencyFailure: "wait" });
    const s = took("blockByDependency", w, blockByDependency(w, { id: "p-a", state: "failed" }, T0));
    expect(s.record).toMatchObject({
      state: "waiting",
      blockedBy: { dependency: "p-a", reason: "dependency p-a failed" },
    });
    expect(s.write).toBe(true);
    const blocked = frozen(s.record as RecordIn<"waiting">);
    const again = blockByDependency(blocked, { id: "p-a", state: "failed" }, T0);
    expect(again.write).toBe(false);
    // Its need succeeds after a retry: the release clears the block.
    expect(release(blocked, () => "succeeded").record.blockedBy).toBeUndefined();
  });

  it("reopen: a task cancelled by a need waits again; one cancelled otherwise is refused", () => {
    const c = frozen(
      blockByDependency(waiting(), { id: "p-a", state: "failed" }, at(7)).record as RecordIn<"cancelled">,
    );
    const s = took("reopen", c, reopen(c, "p-a"));
    expect(s.record.state).toBe("waiting");
    expect(s.record.reason).toBeUndefined();
    expect(s.record.finishedAt).toBeUndefined();
    expect(s.record.cancelCause).toBeUndefined();
    expect(s.notices).toEqual([{ of: "record" }]);
    expect(() => reopen(c, "p-b")).toThrow("it was not cancelled by its dependency p-b");
    const byHand = frozen(cancel(waiting(), at(3)).record);
    expect(byHand.reason).toBe("cancelled by request before it started");
    expect(() => reopen(byHand, "p-a")).toThrow(expect.objectContaining({ code: "FAILED_PRECONDITION" }));
    // A waiting task blocked by the need is unblocked; one blocked by another need is left.
    const blocked = frozen(
      blockByDependency(waiting({ dependencyFailure: "wait" }), { id: "p-a", state: "failed" }, T0)
        .record as RecordIn<"waiting">,
    );
    expect(took("reopen", blocked, reopen(blocked, "p-a")).record.blockedBy).toBeUndefined();
    expect(reopen(blocked, "p-b").write).toBe(false);
  });

  it("cancel of a waiting task: cancelled at once", () => {
    const w = waiting();
    const s = took("cancel", w, cancel(w, at(3)));
    expect(s.record.state).toBe("cancelled");
  });

  it("the spec: needs only in a plan, never itself, never twice", () => {
    expect(() => validateTaskSpec({ id: "x", prompt: "p", needs: ["a"] })).toThrow(
      /needs: only a task of a plan has needs/,
    );
    expect(() => validateTaskSpec({ id: "x", prompt: "p", plan: "p", needs: ["x"] })).toThrow(
      "needs: a task cannot need itself",
    );
    expect(() => validateTaskSpec({ id: "x", prompt: "p", plan: "p", needs: ["a", "a"] })).toThrow(
      "needs: lists a task twice",
    );
    expect(() => validateTaskSpec({ id: "x", prompt: "p", dependencyFailure: "later" })).toThrow(
      /dependencyFailure/,
    );
  });
});

describe("the table", () => {
  /** Each transition called on any record (the runtime guard is what is tested). */
  const calls: Record<Exclude<TransitionName, "submit">, (r: TaskRecord) => unknown> = {
    claim: (r) => claim(r as never, me, T0),
    start: (r) => start(r as never, me.workerId, T0),
    renew: (r) => renew(r as never, T0),
    noteSession: (r) => noteSession(r as never, "s"),
    requestCancel: (r) => requestCancel(r as never),
    settle: (r) => settle(r as never, end("failed", { reason: "x" }), policy, T0),
    takeOver: (r) => takeOver(r as never, me, { kind: "expired", silentMs: 1 }, T0),
    cancel: (r) => cancel(r as never, T0),
    applyCancel: (r) => applyCancel(r as never, T0),
    retry: (r) => retry(r as never),
    release: (r) => release(r as never, () => "succeeded"),
    blockByDependency: (r) => blockByDependency(r as never, { id: "p-a", state: "failed" }, T0),
    reopen: (r) => reopen(r as never, "p-a"),
  };

  it("every transition refuses every state it does not start from, naming the task and the state", () => {
    let refused = 0;
    for (const [name, call] of Object.entries(calls)) {
      const from = TRANSITIONS[name as TransitionName].from as readonly TaskState[];
      for (const state of TASK_STATES) {
        if (from.includes(state)) continue;
        let err: unknown;
        try {
          call(inAnyState(state));
        } catch (e) {
          err = e;
        }
        expect(isMeshError(err, "FAILED_PRECONDITION"), `${name} from ${state}`).toBe(true);
        expect((err as Error).message).toContain(`task t-1: cannot ${name} a ${state} task`);
        refused++;
      }
    }
    expect(refused).toBe(82); // 13 transitions x 8 states, less the 22 legal pairs
  });

  it("expectState: a record read from KV becomes a typed record, or a clear refusal", () => {
    const r: TaskRecord = running();
    expect(expectState(r, "settle", TRANSITIONS.settle.from)).toBe(r);
    expect(() => expectState(r, "retry", TRANSITIONS.retry.from)).toThrow(
      "task t-1: cannot retry a running task (only failed or dead)",
    );
  });

  it("a state event carries the written record's reason (bounded by the store), not the step's", () => {
    const s = settle(running(), end("failed", { reason: "x", permanent: true }), policy, at(90));
    const stored = { ...written(s.record, 91), reason: "y".repeat(MAX_REASON_CHARS) };
    expect(stateEvents(stored, s.notices)[0]?.reason).toBe(stored.reason);
  });
});

describe("illegal calls do not compile (checked by tsc: test/ is in the tsconfig)", () => {
  it("each line below is a type error and, at runtime, a refusal", () => {
    const refused = (f: () => unknown) =>
      expect(f).toThrow(expect.objectContaining({ code: "FAILED_PRECONDITION" }));
    const q = queued();
    const c = claimed();
    const r = running();
    const fromKv: TaskRecord = inAnyState("succeeded");
    // @ts-expect-error a queued task cannot start: it has no attempt
    refused(() => start(q, me.workerId, T0));
    // @ts-expect-error a running task cannot be claimed
    refused(() => claim(r, me, T0));
    // @ts-expect-error only failed or dead tasks are retried
    refused(() => retry(q));
    // @ts-expect-error a held task is cancelled by request, not at once
    refused(() => cancel(c, T0));
    // @ts-expect-error a queued task has no attempt to settle
    refused(() => settle(q, end("failed"), policy, T0));
    // @ts-expect-error a queued task has no owner to take over from
    refused(() => takeOver(q, me, { kind: "abandoned" }, T0));
    // @ts-expect-error a record read from KV is of any state: it goes through expectState first
    refused(() => renew(fromKv, T0));
    // @ts-expect-error a running record is not queued
    const notQueued: RecordIn<"queued"> = r;
    expect(notQueued.state).toBe("running");
  });
});

describe("the store's edge table", () => {
  // Last in the file: the tests above have run (in order) and noted the edges they took.
  it("is exactly the edges the transitions take, no more (a write no transition makes is refused)", () => {
    const table = new Set<string>();
    for (const from of TASK_STATES)
      for (const to of TASK_STATES) if (canTransition(from, to)) table.add(`${from}->${to}`);
    expect([...taken].sort()).toEqual([...table].sort());
    expect(Object.keys(EDGES).sort()).toEqual([...TASK_STATES].sort());
  });
});
