/**
 * Plans across machines, with real nats-server and meshd processes: a diamond and a wide
 * fan-out/fan-in (1 -> 12 -> 1) over two daemons, one SIGKILLed mid-plan, on one repository.
 * The checkers are independent of the daemon: the tasks' side-effect log, the raw KV records, and
 * what each task found in its worktree (its needs' files: it starts from their branches).
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { validatePlanSubmit } from "../daemon/plans/index.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { checkChaos, readRecords, writeChaosScript } from "./support/chaos.js";
import { openClient } from "./support/mesh.js";
import { loggedRuns, orderProblems, PLAN_POOL, PlanFleet, untilAllTerminal } from "./support/plans.js";

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

describe("plans across two daemons", () => {
  it("a diamond and a 1 -> 12 -> 1 fan run every task once, each only after all its needs and from their branches, through a SIGKILL", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const dir = await makeTempDir("plans-chaos-");
    const script = await writeChaosScript(dir);
    const logFile = join(dir, "side-effects.log");
    // Every task works on one repository: it checks that its worktree holds what each of its needs
    // wrote (it starts from their branches: one need's head, or the merge of several), writes its
    // own file, then runs the chaos script (the side-effect log the checker reads).
    const origin = join(dir, "origin");
    const sh = promisify(execFile);
    await sh("git", ["init", "-q", "-b", "main", origin]);
    await writeFile(join(origin, "README.md"), "plan chaos\n");
    await sh("git", ["-C", origin, "add", "."]);
    await sh("git", ["-C", origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]);
    const branchLog = join(dir, "branches.log");
    const wrapper = join(dir, "plan-task.cjs");
    await writeFile(
      wrapper,
      `const fs = require("node:fs");
const { spawnSync } = require("node:child_process");
const id = process.env.MESH_TASK_ID;
const needs = (process.env.TASK_PLAN_NEEDS || "").split(",").filter(Boolean);
const missing = needs.filter((n) => !fs.existsSync(n + ".out"));
fs.appendFileSync(process.env.TASK_PLAN_BRANCH_LOG, (missing.length ? "missing " + id + " " + missing.join(",") : "ok " + id) + "\\n");
if (missing.length) process.exit(7);
fs.writeFileSync(id + ".out", id + "\\n");
const r = spawnSync(process.execPath, [process.env.TASK_PLAN_CHAOS_SCRIPT], { stdio: "inherit" });
process.exit(r.status === null ? 1 : r.status);
`,
    );
    const client = await openClient(nats.url);
    cleanup.push(() => client.close());
    const fleet = new PlanFleet(nats.url, client, 4);
    cleanup.push(() => fleet.killAll());
    await fleet.startOne();
    await fleet.startOne();

    const task = (plan: string, id: string, needs: string[] = [], ms = 400) => ({
      id,
      ...(needs.length ? { needs } : {}),
      command: [process.execPath, wrapper],
      env: {
        TASK_CHAOS_LOG: logFile,
        TASK_CHAOS_MS: String(ms),
        TASK_PLAN_CHAOS_SCRIPT: script,
        TASK_PLAN_BRANCH_LOG: branchLog,
        TASK_PLAN_NEEDS: needs.map((n) => `${plan}-${n}`).join(","),
      },
    });
    const defaults = {
      prompt: "plan task",
      runner: "command",
      pool: PLAN_POOL,
      maxAttempts: 10,
      repo: origin,
    };
    const diamond = `diamond-${process.pid}`;
    const fan = `fan-${process.pid}`;
    const wide = Array.from({ length: 12 }, (_, i) => `w${i}`);
    const plans = [
      validatePlanSubmit({
        plan: diamond,
        defaults,
        tasks: [
          task(diamond, "a"),
          task(diamond, "b", ["a"]),
          task(diamond, "c", ["a"]),
          task(diamond, "d", ["b", "c"]),
        ],
      }),
      validatePlanSubmit({
        plan: fan,
        defaults,
        // The wide tasks run long enough for the kill to land while several of them run.
        tasks: [task(fan, "root"), ...wide.map((w) => task(fan, w, ["root"], 1500)), task(fan, "sink", wide)],
      }),
    ];
    for (const p of plans) {
      const res = await client.api.submitPlan(p, "test@here");
      // Only the roots are queued; the rest wait.
      expect(res.tasks.filter((t) => t.state === "queued").length).toBe(1);
      expect(res.created).toBe(true);
    }
    const needs = new Map(plans.flatMap((p) => p.tasks.map((t) => [t.id, t.needs ?? []] as const)));
    const ids = [...needs.keys()];

    // Mid-plan: once several wide tasks run, kill the daemon running one of them.
    const fanPrefix = `fan-${process.pid}-w`;
    const victim = await waitFor(
      async () => {
        const running = (await loggedRuns(logFile)).filter((r) => r.task.startsWith(fanPrefix) && !r.ended);
        return running.length >= 3 ? running[0]!.worker : undefined;
      },
      { name: "wide tasks running", timeoutMs: 60_000, intervalMs: 50 },
    ).catch(async (err: unknown) => {
      const recs = await readRecords([nats.url], ids).catch(() => new Map());
      const states = [...recs].map(([id, r]) => `${id}: ${r?.state} ${r?.reason ?? ""}`);
      throw new Error(`${String(err)}\n${states.join("\n")}`);
    });
    await fleet.killAndReplace(victim);

    const records = await untilAllTerminal(nats.url, ids, 180_000);
    await fleet.stopAll();
    const report = await checkChaos(logFile, ids, records, (w) => fleet.wasKilled(w));
    console.log(
      `plans chaos report: ${JSON.stringify({ ...report, problems: report.problems.slice(0, 20) })}`,
    );
    expect(report.problems).toEqual([]);
    // The kill interrupted work that then ran again elsewhere.
    expect(report.interrupted + report.completedUnrecorded).toBeGreaterThan(0);
    expect(orderProblems(await loggedRuns(logFile), needs, records)).toEqual([]);
    // Every task started from its needs' branches: no run missed a need's file, and every task
    // (the sink merging twelve branches, d merging two) succeeded.
    const checks = (await readFile(branchLog, "utf8")).trim().split("\n");
    expect(checks.filter((l) => l.startsWith("missing"))).toEqual([]);
    for (const id of ids) expect(checks, id).toContain(`ok ${id}`);
    for (const [id, v] of records) expect(v?.state, id).toBe("succeeded");
    // Each waiting task went to the queue exactly once (one release, however many settled needs).
    for (const id of ids) {
      const queued = await queuedEvents(client, id);
      expect(queued, id).toBe(1);
    }
  }, 300_000);
});

/** How many `queued` state events without a prior attempt the task has (its releases/submit). */
async function queuedEvents(client: Awaited<ReturnType<typeof openClient>>, id: string): Promise<number> {
  const ac = new AbortController();
  let n = 0;
  for await (const e of client.api.watchTask(id, ac.signal)) {
    if (e.type === "state" && e.state === "queued" && e.attempt === 1) n++;
  }
  return n;
}
