/**
 * A dependent's worktree starts from its needs' result branches (issue 14 §2, last bullet),
 * across daemons: each test submits a plan (checked whole by validatePlanSubmit, as `mesh plan
 * submit` does) whose needs run on daemon A and dependents on daemon B (pools steer them; B has
 * its own state dir and repo cache), on a repo shipped through the mesh, so every result reaches
 * B as a bundle. The dependents wait until their needs have succeeded, then the plan releases them.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { planEventSubject } from "../daemon/nats/index.js";
import { validatePlanSubmit } from "../daemon/plans/index.js";
import type { TaskRecord } from "../daemon/tasks/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { cacheDirFor, parseRepo } from "../daemon/workspace/index.js";
import { waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { waitForState } from "./support/mesh.js";
import {
  git,
  type PlanMesh,
  planStep,
  type SubmittedPlan,
  startPlanMesh,
  submitTestPlan,
} from "./support/plan-mesh.js";
import { uniqueId } from "./support/tasks.js";

const fx = useMesh();
const LONG = 60_000;
const TERMINAL = ["succeeded", "failed", "dead", "cancelled"];

/** Submits the plan and waits until each named task is terminal; returns their records. */
async function run(
  plan: string,
  tasks: Array<Record<string, unknown>>,
): Promise<{ p: SubmittedPlan; rec: (name: string) => TaskRecord }> {
  const p = await submitTestPlan(fx, plan, tasks);
  const recs = new Map<string, TaskRecord>();
  await Promise.all(
    tasks.map(async (t) => {
      const name = t.id as string;
      recs.set(name, (await waitForState(fx.client.api, p.id(name), TERMINAL)).record);
    }),
  );
  return { p, rec: (name) => recs.get(name)! };
}

/** What submit said of the plan's task `name`. */
const submittedState = (p: SubmittedPlan, name: string) =>
  p.submitted.tasks.find((t) => t.id === p.id(name))?.state;

const cacheOf = (m: PlanMesh, which: "a" | "b") =>
  cacheDirFor(join(m[which].daemon.config.stateDir, "repos"), parseRepo(`mesh://${m.repoId}`));

describe("a dependent starts from its needs' branches", () => {
  let m: PlanMesh;

  it(
    "one need: the task branch starts at that need's head, and its base is that head",
    async () => {
      m = await startPlanMesh(fx, "pb");
      const { p, rec } = await run(uniqueId("one"), [
        planStep(m, "need", m.a, { writes: { "n1.txt": "from the need\n" } }),
        planStep(m, "dep", m.b, { needs: ["need"], expects: ["n1.txt"], writes: { "d.txt": "dep\n" } }),
      ]);
      // The dependent waited for its need; the plan released it.
      expect(submittedState(p, "dep")).toBe("waiting");
      const n = rec("need");
      const d = rec("dep");
      expect(n.state).toBe("succeeded");
      const needHead = n.result!.bundle!.head;
      expect(d.reason).toBeUndefined();
      expect(d.state).toBe("succeeded");
      // The need ran on daemon A, the dependent on daemon B (another repo cache).
      expect(n.attempts[0]!.workerId).toBe(m.a.daemon.workerId);
      expect(d.attempts[0]!.workerId).toBe(m.b.daemon.workerId);
      expect(cacheOf(m, "a")).not.toBe(cacheOf(m, "b"));
      // The dependent's result is its own commits on top of the need's: base..head from there.
      expect(d.result!.bundle!.base).toBe(needHead);
      const cache = cacheOf(m, "b");
      expect(await git(cache, "rev-parse", `${d.result!.bundle!.head}^`)).toBe(needHead);
    },
    LONG,
  );

  it(
    "two needs that touch different files: it starts from their merge, sees both files, and its result imports anywhere",
    async () => {
      const { p, rec } = await run(uniqueId("two"), [
        planStep(m, "need-x", m.a, { writes: { "x.txt": "x\n" } }),
        planStep(m, "need-y", m.a, { writes: { "y.txt": "y\n" } }),
        // Listed out of order: the merge follows the task ids.
        planStep(m, "dep", m.b, {
          needs: ["need-y", "need-x"],
          expects: ["x.txt", "y.txt"],
          writes: { "d.txt": "dep\n" },
        }),
      ]);
      const [n1, n2, dep] = [p.id("need-x"), p.id("need-y"), p.id("dep")];
      expect([rec("need-x").state, rec("need-y").state]).toEqual(["succeeded", "succeeded"]);
      const heads = { [n1]: rec("need-x").result!.bundle!.head, [n2]: rec("need-y").result!.bundle!.head };
      const d = rec("dep");
      expect(d.reason).toBeUndefined();
      expect(d.state).toBe("succeeded");
      expect(d.attempts[0]!.workerId).toBe(m.b.daemon.workerId);
      const base = d.result!.bundle!.base;
      const cache = cacheOf(m, "b");
      const [commit, ...parents] = (await git(cache, "rev-list", "--parents", "-n", "1", base)).split(" ");
      expect(commit).toBe(base);
      expect(parents).toEqual([n1, n2].sort().map((id) => heads[id]));
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
      const plan = uniqueId("clash");
      const seen: Array<Record<string, unknown>> = [];
      const sub = fx.client.nc.subscribe(planEventSubject(plan), {
        callback: (_e, msg) => {
          seen.push(msg.json());
        },
      });
      try {
        const { p, rec } = await run(plan, [
          planStep(m, "need-p", m.a, { writes: { "shared.txt": "one\nTWO from p\nthree\nfour\nfive\n" } }),
          planStep(m, "need-q", m.a, { writes: { "shared.txt": "one\nTWO from q\nthree\nfour\nfive\n" } }),
          planStep(m, "dep", m.b, { needs: ["need-p", "need-q"], maxAttempts: 3 }),
        ]);
        const [n1, n2, dep] = [p.id("need-p"), p.id("need-q"), p.id("dep")];
        expect([rec("need-p").state, rec("need-q").state]).toEqual(["succeeded", "succeeded"]);
        const d = rec("dep");
        expect(d.state).toBe("failed");
        // Permanent: the same results merge the same way on every try.
        expect(d.attempts).toHaveLength(1);
        expect(d.attempts[0]!.workerId).toBe(m.b.daemon.workerId);
        expect(d.reason).toContain("shared.txt");
        expect(d.reason).toContain(n1);
        expect(d.reason).toContain(n2);
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

  it("a need on another repo is refused at submit, naming both tasks and both repos; nothing is written", async () => {
    const plan = uniqueId("repos");
    // The same repository named by its path: another repo string, another cache.
    const doc = {
      plan,
      tasks: [
        { ...planStep(m, "need", m.a, { writes: { "p.txt": "p\n" } }), repo: m.repo, ref: "main" },
        planStep(m, "dep", m.b, { needs: ["need"] }),
      ],
    };
    let err: unknown;
    try {
      validatePlanSubmit(doc);
    } catch (e) {
      err = e;
    }
    expect(isMeshError(err, "INVALID_ARGUMENT"), String(err)).toBe(true);
    expect((err as { field?: string }).field).toBe("tasks[1].repo");
    expect((err as Error).message).toBe(
      `tasks[1].repo: "dep" works on repo "mesh://${m.repoId}" but needs "need", which works on repo "${m.repo}"; a task starts from the branches of the tasks it needs, so they share one repo`,
    );
    await expect(fx.client.api.getPlan(plan)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(fx.client.api.getTask(`${plan}-dep`)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it(
    "a need that does not succeed cancels the dependent by policy, naming the need; the dependent never runs",
    async () => {
      const { p, rec } = await run(uniqueId("fails"), [
        planStep(m, "need", m.a, { writes: { "f.txt": "f\n" }, exit: 5, maxAttempts: 1 }),
        planStep(m, "dep", m.b, { needs: ["need"] }),
      ]);
      expect(rec("need").state).toBe("dead");
      const d = rec("dep");
      expect(d.state).toBe("cancelled");
      expect(d.cancelCause).toEqual({ dependency: p.id("need") });
      expect(d.reason).toBe(`dependency ${p.id("need")} died: attempts exhausted (1/1); last: exit code 5`);
      expect(d.attempts).toEqual([]);
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

  it("refuses needs outside a plan, a task that needs itself, one need twice, and ids that are not task ids", () => {
    expect(refusal({ needs: ["a"] })).toEqual({
      field: "needs",
      message:
        "needs: only a task of a plan has needs: write the tasks in a plan document and use `mesh plan submit`",
    });
    expect(refusal({ plan: "p1", needs: ["d1"] })).toEqual({
      field: "needs",
      message: "needs: a task cannot need itself",
    });
    expect(refusal({ plan: "p1", needs: ["a", "a"] })).toEqual({
      field: "needs",
      message: "needs: lists a task twice",
    });
    expect(refusal({ plan: "p1", needs: ["a b"] })?.field).toBe("needs[0]");
    expect(refusal({ plan: "../x" })?.field).toBe("plan");
  });
});
