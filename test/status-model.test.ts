// The one status model (daemon/api/status.ts): every kind from the record, presence, lease and
// agent events; remote looks like local; the optional fields of other parts (parked, conflicts).
import { describe, expect, it } from "vitest";
import {
  type AgentActivity,
  type ActivityEvent,
  foldActivity,
  type StatusRecord,
  statusRank,
  taskStatus,
} from "../daemon/api/status.js";

const NOW = Date.parse("2026-01-01T00:01:00Z");
const at = (msAgo: number) => new Date(NOW - msAgo).toISOString();

function running(over: Partial<StatusRecord> = {}): StatusRecord {
  return {
    state: "running",
    attempt: 1,
    owner: { workerId: "w1", leaseMs: 3000 },
    heartbeatAt: at(500),
    updatedAt: at(500),
    ...over,
  };
}
const live = new Set(["w1", "w2"]);
const fold = (events: ActivityEvent[]): AgentActivity | undefined =>
  events.reduce<AgentActivity | undefined>((a, e) => foldActivity(a, e), undefined);
const agent = (kind: string, data: Record<string, unknown>, attempt = 1): ActivityEvent => ({
  type: "agent",
  attempt,
  kind,
  data,
});

describe("taskStatus", () => {
  it("a running task with a live owner and a fresh lease is working", () => {
    const s = taskStatus({ record: running(), liveWorkers: live, now: NOW });
    expect(s).toMatchObject({ kind: "working", attention: false, workerId: "w1" });
  });

  it("a claimed task is working, starting", () => {
    expect(taskStatus({ record: running({ state: "claimed" }), liveWorkers: live, now: NOW })).toMatchObject({
      kind: "working",
      detail: "starting",
    });
  });

  it("is lost when the owner's presence is gone, at once", () => {
    const s = taskStatus({ record: running(), liveWorkers: new Set(["w2"]), now: NOW });
    expect(s).toMatchObject({ kind: "lost", attention: true });
    expect(s.detail).toContain("w1");
  });

  it("is lost when the lease is silent for three heartbeats (the owner's leaseMs), not before", () => {
    const fresh = running({ heartbeatAt: at(2900), updatedAt: at(2900) });
    expect(taskStatus({ record: fresh, liveWorkers: live, now: NOW }).kind).toBe("working");
    const silent = running({ heartbeatAt: at(3100), updatedAt: at(3100) });
    expect(taskStatus({ record: silent, liveWorkers: live, now: NOW }).kind).toBe("lost");
  });

  it("a skewed owner clock does not make a live task lost: the reader's own sighting counts", () => {
    const skewed = running({ heartbeatAt: at(60_000) });
    expect(taskStatus({ record: skewed, liveWorkers: live, now: NOW, revisionSeenForMs: 200 }).kind).toBe(
      "working",
    );
    expect(taskStatus({ record: skewed, liveWorkers: live, now: NOW, revisionSeenForMs: 5000 }).kind).toBe(
      "lost",
    );
  });

  it("a tool in flight is waiting for a tool, cleared by its result", () => {
    const use = agent("tool_use", { tool: "Bash", toolUseId: "t1" });
    const s = taskStatus({ record: running(), liveWorkers: live, now: NOW, activity: fold([use]) });
    expect(s).toMatchObject({ kind: "tool", detail: "Bash", attention: false });
    const done = fold([use, agent("tool_result", { toolUseId: "t1", isError: false })]);
    expect(taskStatus({ record: running(), liveWorkers: live, now: NOW, activity: done }).kind).toBe(
      "working",
    );
  });

  it("a denied tool needs attention", () => {
    const act = fold([
      agent("tool_use", { tool: "Write", toolUseId: "t1" }),
      agent("tool_denied", { tool: "Write" }),
    ]);
    const s = taskStatus({ record: running(), liveWorkers: live, now: NOW, activity: act });
    expect(s).toMatchObject({ kind: "attention", attention: true, detail: "tool denied: Write" });
  });

  it("activity of an earlier attempt does not count", () => {
    const act = fold([agent("tool_denied", { tool: "Write" }, 1)]);
    const s = taskStatus({ record: running({ attempt: 2 }), liveWorkers: live, now: NOW, activity: act });
    expect(s.kind).toBe("working");
    expect(foldActivity(act, { type: "state", attempt: 2 })).toEqual({ attempt: 2, inFlight: {} });
  });

  it("parked on quota and conflicts need attention (fields of other parts)", () => {
    const parked = taskStatus({
      record: running({ state: "queued", parked: { account: "team", reason: "429 limit" } }),
      liveWorkers: live,
      now: NOW,
    });
    expect(parked).toMatchObject({ kind: "attention", detail: "parked on quota: account team: 429 limit" });
    const conflict = taskStatus({
      record: running({ conflicts: [{ file: "a.ts" }, "b.ts"] }),
      liveWorkers: live,
      now: NOW,
    });
    expect(conflict).toMatchObject({ kind: "attention", detail: "conflict: a.ts, b.ts" });
  });

  it("queued, unschedulable, waiting and the terminal states", () => {
    const base = { liveWorkers: live, now: NOW };
    expect(taskStatus({ ...base, record: { state: "queued", attempt: 0, updatedAt: at(0) } }).kind).toBe(
      "queued",
    );
    expect(
      taskStatus({
        ...base,
        record: { state: "queued", attempt: 0, updatedAt: at(0) },
        unschedulable: "no gpu",
      }),
    ).toMatchObject({ kind: "attention", detail: "no live worker serves it: no gpu" });
    // The scheduler's own reason already says "no live worker serves ...": not said twice.
    const reason =
      'no live worker serves pool "default" and runner "claude": w1 does not offer runner "claude"';
    expect(
      taskStatus({
        ...base,
        record: { state: "queued", attempt: 0, updatedAt: at(0) },
        unschedulable: reason,
      }),
    ).toMatchObject({ kind: "attention", detail: reason });
    expect(taskStatus({ ...base, record: { state: "waiting", attempt: 0, updatedAt: at(0) } }).kind).toBe(
      "waiting",
    );
    for (const [state, kind] of [
      ["succeeded", "succeeded"],
      ["failed", "failed"],
      ["dead", "failed"],
      ["cancelled", "cancelled"],
    ] as const) {
      // A finished task's owner may be long gone: it is finished, not lost.
      const s = taskStatus({
        liveWorkers: new Set(),
        now: NOW,
        record: { state, attempt: 1, updatedAt: at(99_000), attempts: [{ workerId: "w9" }] },
      });
      expect(s).toMatchObject({ kind, attention: false, workerId: "w9" });
    }
    // Queued again after a retry (or handed back): it waits for a worker, it is not on its last one.
    const again = taskStatus({
      liveWorkers: new Set(["w9"]),
      now: NOW,
      record: { state: "queued", attempt: 1, updatedAt: at(0), attempts: [{ workerId: "w9" }] },
    });
    expect(again.kind).toBe("queued");
    expect(again.workerId).toBeUndefined();
  });

  it("a remote task reads exactly like a local one: the model has no notion of 'this machine'", () => {
    const a = taskStatus({
      record: running({ owner: { workerId: "w1", leaseMs: 3000 } }),
      liveWorkers: live,
      now: NOW,
    });
    const b = taskStatus({
      record: running({ owner: { workerId: "w2", leaseMs: 3000 } }),
      liveWorkers: live,
      now: NOW,
    });
    expect({ ...a, workerId: undefined }).toEqual({ ...b, workerId: undefined });
  });

  it("ranks attention first and finished last", () => {
    expect(statusRank("attention")).toBeLessThan(statusRank("working"));
    expect(statusRank("lost")).toBeLessThan(statusRank("queued"));
    expect(statusRank("queued")).toBeLessThan(statusRank("succeeded"));
  });
});
