/**
 * Issue 15 §3, the account gauges kept current (the end-to-end cases are in
 * test/quota-limits.test.ts): the utilisation falls back to 0 once the account is open again
 * (its window reset), as the daemon reports it when a recorded state passes its `until`; the
 * parked gauge keeps a task whose record could not be read and drops one read back unparked.
 */
import { describe, expect, it } from "vitest";
import { MeshMetrics } from "../daemon/metrics/index.js";

async function value(m: MeshMetrics, name: string, labels: string): Promise<number | undefined> {
  const body = (await m.render()).body;
  const line = body.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : undefined;
}

describe("account metrics", () => {
  it("utilisation: the last reported value, and 0 once the account is open again", async () => {
    const m = new MeshMetrics({ worker: "w", defaultMetrics: false });
    m.accountUtilization({ account: "team", utilization: 0.42 });
    expect(await value(m, "agentmesh_account_utilization_ratio", 'account="team"')).toBe(0.42);
    m.accountState({ account: "team", state: "rejected", untilMs: Date.now() + 60_000, utilization: 0.97 });
    expect(await value(m, "agentmesh_account_utilization_ratio", 'account="team"')).toBe(0.97);
    // The state's `until` passed: the daemon tells the same record again, now read as open.
    m.accountState({ account: "team", state: "open", untilMs: Date.now() - 1, utilization: 0.97 });
    expect(await value(m, "agentmesh_account_utilization_ratio", 'account="team"')).toBe(0);
  });

  it("parked now: each scrape reads the parked tasks back; an unreadable one is kept, one no longer parked here leaves", async () => {
    const m = new MeshMetrics({ worker: "w", defaultMetrics: false });
    const answers = new Map<string, boolean | undefined>();
    m.bind({
      workerId: "w-1",
      host: "h",
      version: "v",
      pools: ["p"],
      slots: () => ({ total: 1, busy: 0 }),
      running: () => 0,
      ready: () => true,
      queues: async () => new Map(),
      workers: async () => [],
      parkedHere: async (id) => answers.get(id),
    });
    m.accountState({ account: "team", state: "open" });
    const parked = () => value(m, "agentmesh_tasks_parked", 'pool="p",account="team"');
    expect(await parked()).toBe(0);
    m.parked({ pool: "p", account: "team", taskId: "t1" });
    m.parked({ pool: "p", account: "team", taskId: "t2" });
    answers.set("t2", true); // t1: its record cannot be read now
    expect(await parked()).toBe(2);
    answers.set("t2", false); // resumed, settled or taken over elsewhere
    expect(await parked()).toBe(1);
    answers.set("t1", false);
    expect(await parked()).toBe(0);
    expect(await value(m, "agentmesh_tasks_parked_total", 'pool="p",account="team"')).toBe(2);
  });
});
