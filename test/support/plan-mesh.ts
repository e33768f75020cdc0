/**
 * Test support for plans across daemons: a repository shipped through the mesh (`mesh://`, so
 * every result travels as a bundle), two in-process daemons with their own state dirs (repo
 * caches) serving one pool each, and plans of command tasks that edit files of the worktree.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import type { PlanSubmitResult } from "../../daemon/api/index.js";
import type { Daemon } from "../../daemon/index.js";
import { MeshMetrics } from "../../daemon/metrics/index.js";
import { type PlanSpec, planTaskId, validatePlanSubmit } from "../../daemon/plans/index.js";
import { makeTempDir } from "../harness/index.js";
import type { MeshFixture } from "./fixture.js";
import { startDaemon } from "./mesh.js";

const ID = ["-c", "user.name=Plan Test", "-c", "user.email=plan@example.com"];

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", [...ID, ...args], { cwd, env: { LC_ALL: "C" } });
  return r.stdout.trim();
}

export interface PlanHost {
  daemon: Daemon;
  metrics: MeshMetrics;
  pool: string;
}

export interface PlanMesh {
  /** The submitter's repository (never given to a worker: they get `mesh://`). */
  repo: string;
  repoId: string;
  commit: string;
  a: PlanHost;
  b: PlanHost;
}

/** A repo with `shared.txt` (five lines) and `README.md`, shipped; two daemons, pools `<p>-a`, `<p>-b`. */
export async function startPlanMesh(fx: MeshFixture, prefix: string): Promise<PlanMesh> {
  const repo = await makeTempDir(`${prefix}-repo-`);
  await git(repo, "init", "--quiet", "-b", "main");
  await writeFile(join(repo, "README.md"), "plan test\n");
  await writeFile(join(repo, "shared.txt"), "one\ntwo\nthree\nfour\nfive\n");
  await git(repo, "add", ".");
  await git(repo, "commit", "--quiet", "-m", "base");
  const host = async (name: string): Promise<PlanHost> => {
    const metrics = new MeshMetrics({ worker: name, defaultMetrics: false });
    const pool = `${prefix}-${name}`;
    const daemon = await startDaemon(fx.nats.url, { name, pools: [pool] }, { observer: metrics });
    fx.daemons.push(daemon);
    return { daemon, metrics, pool };
  };
  const a = await host("a");
  const b = await host("b");
  const shipped = await a.daemon.transfer!.ship({ path: repo, dirty: false });
  return { repo, repoId: shipped.repoId, commit: shipped.commit, a, b };
}

/** What one task of a test plan does; `needs` are names of tasks of the same plan. */
export interface StepOpts {
  writes?: Record<string, string>;
  expects?: string[];
  needs?: string[];
  maxAttempts?: number;
  /** Exit with this code after the writes (a need that fails). */
  exit?: number;
}

/**
 * A command task of a plan document on the shipped repo, steered to `host` by its pool: runs
 * node in its worktree. `writes` maps file names to the content written; `expects` lists
 * files that must be there first (else exit 3).
 */
export function planStep(m: PlanMesh, name: string, host: PlanHost, o: StepOpts): Record<string, unknown> {
  const js = `
const fs = require("fs");
for (const f of ${JSON.stringify(o.expects ?? [])}) {
  if (!fs.existsSync(f)) { console.error("missing " + f); process.exit(3); }
}
for (const [f, text] of Object.entries(${JSON.stringify(o.writes ?? {})})) fs.writeFileSync(f, text);
console.log("seen: " + fs.readdirSync(".").filter((f) => f !== ".git").sort().join(","));
process.exit(${o.exit ?? 0});
`;
  return {
    id: name,
    prompt: "plan test task",
    runner: "command",
    command: [process.execPath, "-e", js],
    repo: `mesh://${m.repoId}`,
    ref: m.commit,
    pool: host.pool,
    maxAttempts: o.maxAttempts ?? 3,
    ...(o.needs ? { needs: o.needs } : {}),
  };
}

export interface SubmittedPlan {
  plan: PlanSpec;
  /** What submit answered, per task. */
  submitted: PlanSubmitResult;
  /** The task id of the plan's task `name`. */
  id(name: string): string;
}

/** Checks the plan document whole (as `mesh plan submit` does) and submits it through the API. */
export async function submitTestPlan(
  fx: MeshFixture,
  plan: string,
  tasks: Array<Record<string, unknown>>,
): Promise<SubmittedPlan> {
  const p = validatePlanSubmit({ plan, tasks });
  const submitted = await fx.client.api.submitPlan(p, "plan-test");
  return { plan: p, submitted, id: (name) => planTaskId(plan, name) };
}

/** The value of `agentmesh_plan_conflicts_total` summed over its pools. */
export async function conflictsCounted(h: PlanHost): Promise<number> {
  const metric = await h.metrics.registry.getSingleMetric("agentmesh_plan_conflicts_total")?.get();
  return (metric?.values ?? []).reduce((n, v) => n + v.value, 0);
}
