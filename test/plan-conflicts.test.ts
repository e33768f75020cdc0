/**
 * Conflicts found early (issue 14 §4, §7): two tasks of one plan (submitted whole, as `mesh
 * plan submit` does), run on two daemons (their own repo caches; a repo shipped through the
 * mesh, so each daemon gets the other's branch from the bundle store), edit the same lines. The conflict is reported on the plan's event
 * subject, counted in `agentmesh_plan_conflicts_total` and stored for `mesh plan status`
 * (listPlanConflicts), while nobody has fetched either branch. Branches that touch other files,
 * or of which one contains the other (a task that needs the other), are not conflicts.
 */
import { describe, expect, it } from "vitest";
import { planEventSubject } from "../daemon/nats/index.js";
import {
  listPlanBranches,
  listPlanConflicts,
  PlanBranchStore,
  type PlanConflict,
} from "../daemon/plans/index.js";
import { ensureTopology } from "../daemon/queue/topology.js";
import { waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { waitForState } from "./support/mesh.js";
import {
  conflictsCounted,
  git,
  type PlanMesh,
  planStep,
  startPlanMesh,
  submitTestPlan,
} from "./support/plan-mesh.js";
import { uniqueId } from "./support/tasks.js";

const fx = useMesh();
const LONG = 60_000;

const topo = () => ensureTopology(fx.client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
const conflictsOf = async (plan: string) => listPlanConflicts(await topo(), plan);
/** The changed paths the check recorded per task of the plan. */
const pathsOf = async (plan: string) =>
  Object.fromEntries((await listPlanBranches(await topo(), plan)).map((b) => [b.taskId, b.paths]));

describe("conflicts between finished branches of a plan", () => {
  let m: PlanMesh;

  it(
    "two tasks on two daemons editing the same lines: event, metric and stored entry, before any fetch",
    async () => {
      m = await startPlanMesh(fx, "pc");
      const plan = uniqueId("plan");
      const seen: Array<Record<string, unknown>> = [];
      const sub = fx.client.nc.subscribe(planEventSubject(plan), {
        callback: (_e, msg) => {
          seen.push(msg.json());
        },
      });
      try {
        const sp = await submitTestPlan(fx, plan, [
          planStep(m, "p", m.a, { writes: { "shared.txt": "one\nTWO by p\nthree\nfour\nfive\n" } }),
          planStep(m, "q", m.b, { writes: { "shared.txt": "one\nTWO by q\nthree\nfour\nfive\n" } }),
          // Another file: never compared with the two.
          planStep(m, "other", m.a, { writes: { "other.txt": "other\n" } }),
        ]);
        const [p, q, other] = [sp.id("p"), sp.id("q"), sp.id("other")];
        for (const id of [p, q, other]) await waitForState(fx.client.api, id, ["succeeded"]);
        // Two daemons ran them: each found the other's branch through the bundle store.
        expect((await fx.client.api.getTask(p)).record.attempts[0]!.workerId).toBe(m.a.daemon.workerId);
        expect((await fx.client.api.getTask(q)).record.attempts[0]!.workerId).toBe(m.b.daemon.workerId);
        const [stored] = await waitFor(
          async () => {
            const c = await conflictsOf(plan);
            return c.length ? c : undefined;
          },
          { name: "the stored conflict", timeoutMs: 15_000 },
        );
        const tasks = [p, q].sort();
        expect(stored).toMatchObject({ plan, tasks, files: ["shared.txt"] });
        const ev = await waitFor(() => seen.find((e) => e.type === "conflict"), {
          name: "the conflict event",
          timeoutMs: 10_000,
        });
        expect(ev).toMatchObject({ plan, tasks, files: ["shared.txt"], heads: stored!.heads });
        await waitFor(async () => (await conflictsCounted(m.a)) + (await conflictsCounted(m.b)) === 1, {
          name: "one conflict counted",
          timeoutMs: 10_000,
        });
        // Found before either branch was fetched: the submitter's repo has no task branch yet.
        expect(await git(m.repo, "for-each-ref", "--format=%(refname)", "refs/heads/mesh/")).toBe("");
        // The checks in progress end with the daemons: after that, still one conflict, one event.
        await Promise.all([m.a.daemon.stop(), m.b.daemon.stop()]);
        expect(await conflictsOf(plan)).toHaveLength(1);
        expect(await pathsOf(plan)).toEqual({
          [p]: ["shared.txt"],
          [q]: ["shared.txt"],
          [other]: ["other.txt"],
        });
        expect(seen.filter((e) => e.type === "conflict")).toHaveLength(1);
        expect((await conflictsCounted(m.a)) + (await conflictsCounted(m.b))).toBe(1);
      } finally {
        sub.unsubscribe();
      }
    },
    LONG,
  );

  it(
    "a task that needs another may edit the same lines: its branch contains the other's, no conflict",
    async () => {
      m = await startPlanMesh(fx, "pd");
      const plan = uniqueId("plan");
      const sp = await submitTestPlan(fx, plan, [
        planStep(m, "first", m.a, { writes: { "shared.txt": "one\nTWO by first\nthree\nfour\nfive\n" } }),
        planStep(m, "second", m.b, {
          needs: ["first"],
          writes: { "shared.txt": "one\nTWO by second\nthree\nfour\nfive\n" },
        }),
      ]);
      const [first, second] = [sp.id("first"), sp.id("second")];
      await waitForState(fx.client.api, second, ["succeeded"]);
      expect((await fx.client.api.getTask(first)).record.state).toBe("succeeded");
      // Stopping the daemons waits for their checks: both branches were checked, nothing was found.
      await Promise.all([m.a.daemon.stop(), m.b.daemon.stop()]);
      expect(await pathsOf(plan)).toEqual({ [first]: ["shared.txt"], [second]: ["shared.txt"] });
      expect(await conflictsOf(plan)).toEqual([]);
      expect((await conflictsCounted(m.a)) + (await conflictsCounted(m.b))).toBe(0);
    },
    LONG,
  );

  it("a pair found by several workers at once is news once; new heads make it news again", async () => {
    const t = await topo();
    const store = await PlanBranchStore.open(t, { replicas: 1, ttlMs: 0 });
    const plan = uniqueId("plan");
    const c = (heads: [string, string], by: string): PlanConflict => ({
      v: 1,
      plan,
      tasks: ["a", "b"],
      heads,
      files: ["f"],
      foundAt: new Date().toISOString(),
      foundBy: by,
    });
    const h = (n: number) => String(n).repeat(40);
    const first = await Promise.all(
      ["w1", "w2", "w3", "w4"].map((w) => store.addConflict(c([h(1), h(2)], w))),
    );
    expect(first.filter(Boolean)).toHaveLength(1);
    expect(await store.addConflict(c([h(1), h(3)], "w1"))).toBe(true);
    expect(await store.addConflict(c([h(1), h(3)], "w2"))).toBe(false);
    expect((await listPlanConflicts(t, plan)).map((x) => x.heads)).toEqual([[h(1), h(3)]]);
  });
});
