/**
 * A dependent's worktree starts from its needs' result branches (issue 14 §2, last bullet),
 * across daemons: the needs run on daemon A, the dependents on daemon B (its own state dir and
 * repo cache), on a repo shipped through the mesh, so every result reaches B as a bundle.
 * Dependents are submitted once their needs have succeeded (the plan's waiting state releases
 * them so; here the normal submit stands in for it).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { planEventSubject } from "../daemon/nats/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { cacheDirFor, parseRepo } from "../daemon/workspace/index.js";
import { waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { waitForState } from "./support/mesh.js";
import { git, type PlanMesh, planTask, startPlanMesh } from "./support/plan-mesh.js";
import { uniqueId } from "./support/tasks.js";

const fx = useMesh();
const LONG = 60_000;

/** Submits the specs and waits until each one is terminal; returns the records. */
async function run(...specs: Parameters<typeof fx.client.api.submit>[0]) {
  await fx.client.api.submit(specs);
  return Promise.all(
    specs.map(
      async (s) =>
        (await waitForState(fx.client.api, s.id, ["succeeded", "failed", "dead", "cancelled"])).record,
    ),
  );
}

const cacheOf = (m: PlanMesh, which: "a" | "b") =>
  cacheDirFor(join(m[which].daemon.config.stateDir, "repos"), parseRepo(`mesh://${m.repoId}`));

describe("a dependent starts from its needs' branches", () => {
  let m: PlanMesh;

  it(
    "one need: the task branch starts at that need's head, and its base is that head",
    async () => {
      m = await startPlanMesh(fx, "pb");
      const need = uniqueId("need");
      const dep = uniqueId("dep");
      const [n] = await run(planTask(m, need, m.a, { writes: { "n1.txt": "from the need\n" } }));
      expect(n?.state).toBe("succeeded");
      const needHead = n!.result!.bundle!.head;
      const [d] = await run(
        planTask(m, dep, m.b, { needs: [need], expects: ["n1.txt"], writes: { "d.txt": "dep\n" } }),
      );
      expect(d?.reason).toBeUndefined();
      expect(d?.state).toBe("succeeded");
      // The need ran on daemon A, the dependent on daemon B (another repo cache).
      expect(n!.attempts[0]!.workerId).toBe(m.a.daemon.workerId);
      expect(d!.attempts[0]!.workerId).toBe(m.b.daemon.workerId);
      expect(cacheOf(m, "a")).not.toBe(cacheOf(m, "b"));
      // The dependent's result is its own commits on top of the need's: base..head from there.
      expect(d!.result!.bundle!.base).toBe(needHead);
      const cache = cacheOf(m, "b");
      expect(await git(cache, "rev-parse", `${d!.result!.bundle!.head}^`)).toBe(needHead);
    },
    LONG,
  );

  it(
    "two needs that touch different files: it starts from their merge, sees both files, and its result imports anywhere",
    async () => {
      const n1 = uniqueId("need-x");
      const n2 = uniqueId("need-y");
      const dep = uniqueId("dep2");
      const needs = await run(
        planTask(m, n1, m.a, { writes: { "x.txt": "x\n" } }),
        planTask(m, n2, m.a, { writes: { "y.txt": "y\n" } }),
      );
      expect(needs.map((r) => r.state)).toEqual(["succeeded", "succeeded"]);
      const heads = needs.map((r) => r.result!.bundle!.head);
      // Listed out of order: the merge follows the task ids.
      const [d] = await run(
        planTask(m, dep, m.b, { needs: [n2, n1], expects: ["x.txt", "y.txt"], writes: { "d.txt": "dep\n" } }),
      );
      expect(d?.reason).toBeUndefined();
      expect(d?.state).toBe("succeeded");
      const base = d!.result!.bundle!.base;
      const cache = cacheOf(m, "b");
      const [commit, ...parents] = (await git(cache, "rev-list", "--parents", "-n", "1", base)).split(" ");
      expect(commit).toBe(base);
      expect(parents).toEqual([n1, n2].sort().map((id) => heads[id === n1 ? 0 : 1]));
      // The submitter's repo gets the dependent's branch, merge and needs included, from the store.
      const [fetched] = await m.a.daemon.transfer!.fetch(fx.client.api, {
        path: m.repo,
        ids: [dep],
        all: false,
        force: false,
        hidden: false,
      });
      expect(fetched?.outcome, JSON.stringify(fetched)).not.toBe("failed");
      expect((await git(m.repo, "ls-tree", "--name-only", `mesh/${dep}`)).split("\n").sort()).toEqual(
        ["README.md", "d.txt", "shared.txt", "x.txt", "y.txt"].sort(),
      );
    },
    LONG,
  );

  it(
    "two needs that edit the same lines: it fails at once, naming the file and the needs, with a plan event",
    async () => {
      const plan = uniqueId("plan");
      const n1 = uniqueId("need-p");
      const n2 = uniqueId("need-q");
      const dep = uniqueId("dep3");
      const seen: Array<Record<string, unknown>> = [];
      const sub = fx.client.nc.subscribe(planEventSubject(plan), {
        callback: (_e, msg) => {
          seen.push(msg.json());
        },
      });
      try {
        const needs = await run(
          planTask(m, n1, m.a, { plan, writes: { "shared.txt": "one\nTWO from p\nthree\nfour\nfive\n" } }),
          planTask(m, n2, m.a, { plan, writes: { "shared.txt": "one\nTWO from q\nthree\nfour\nfive\n" } }),
        );
        expect(needs.map((r) => r.state)).toEqual(["succeeded", "succeeded"]);
        const [d] = await run(planTask(m, dep, m.b, { plan, needs: [n1, n2], maxAttempts: 3 }));
        expect(d?.state).toBe("failed");
        // Permanent: the same results merge the same way on every try.
        expect(d?.attempts).toHaveLength(1);
        expect(d?.reason).toContain("shared.txt");
        expect(d?.reason).toContain(n1);
        expect(d?.reason).toContain(n2);
        const ev = await waitFor(() => seen.find((e) => e.type === "needs_conflict" && e.taskId === dep), {
          name: "the needs_conflict event",
          timeoutMs: 10_000,
        });
        expect(ev).toMatchObject({ plan, needs: [n1, n2].sort(), files: ["shared.txt"] });
      } finally {
        sub.unsubscribe();
      }
    },
    LONG,
  );

  it(
    "a need on another repo fails the dependent permanently, naming both repos",
    async () => {
      const need = uniqueId("need-path");
      const dep = uniqueId("dep5");
      // The same repository named by its path: another repo string, another cache.
      const [n] = await run({
        ...planTask(m, need, m.a, { writes: { "p.txt": "p\n" } }),
        repo: m.repo,
        ref: "main",
      });
      expect(n?.state).toBe("succeeded");
      const [d] = await run(planTask(m, dep, m.b, { needs: [need] }));
      expect(d?.state).toBe("failed");
      expect(d?.attempts).toHaveLength(1);
      expect(d?.reason).toContain(
        `needs: task ${need} works on repo ${m.repo}, this task on mesh://${m.repoId}`,
      );
    },
    LONG,
  );

  it(
    "a need that has not succeeded fails the dependent permanently, naming it",
    async () => {
      const dep = uniqueId("dep4");
      const [d] = await run(planTask(m, dep, m.b, { needs: ["no-such-task"] }));
      expect(d?.state).toBe("failed");
      expect(d?.attempts).toHaveLength(1);
      expect(d?.reason).toContain("needs: there is no task no-such-task");
    },
    LONG,
  );
});

describe("plan and needs in the task spec", () => {
  const base = { id: "d1", prompt: "p", runner: "noop" };
  const refusal = (extra: Record<string, unknown>) => {
    try {
      validateTaskSpec({ ...base, ...extra });
    } catch (err) {
      if (isMeshError(err, "INVALID_ARGUMENT")) return { field: err.field, message: err.message };
      throw err;
    }
    return undefined;
  };

  it("takes a plan id and the task ids it needs", () => {
    const s = validateTaskSpec({ ...base, plan: "p1", needs: ["a", "b"] });
    expect(s.plan).toBe("p1");
    expect(s.needs).toEqual(["a", "b"]);
  });

  it("refuses a task that needs itself, one need twice, and ids that are not task ids", () => {
    expect(refusal({ needs: ["d1"] })).toEqual({
      field: "needs",
      message: "needs: task d1 cannot need itself",
    });
    expect(refusal({ needs: ["a", "a"] })).toMatchObject({
      field: "needs",
      message: "needs: names a task twice",
    });
    expect(refusal({ needs: ["a b"] })?.field).toBe("needs[0]");
    expect(refusal({ plan: "../x" })?.field).toBe("plan");
  });
});
