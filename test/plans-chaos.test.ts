/**
 * Plans across machines, with real nats-server and meshd processes: a diamond and a wide
 * fan-out/fan-in (1 -> 12 -> 1) over two daemons, one SIGKILLed mid-plan. The checkers are
 * independent of the daemon: the tasks' side-effect log and the raw KV records.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { validatePlanSubmit } from "../daemon/plans/index.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { checkChaos, writeChaosScript } from "./support/chaos.js";
import { openClient } from "./support/mesh.js";
import { loggedRuns, orderProblems, PLAN_POOL, PlanFleet, untilAllTerminal } from "./support/plans.js";

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

describe("plans across two daemons", () => {
  it("a diamond and a 1 -> 12 -> 1 fan run every task once, each only after all its needs, through a SIGKILL", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const dir = await makeTempDir("plans-chaos-");
    const script = await writeChaosScript(dir);
    const logFile = join(dir, "side-effects.log");
    const client = await openClient(nats.url);
    cleanup.push(() => client.close());
    const fleet = new PlanFleet(nats.url, client, 4);
    cleanup.push(() => fleet.killAll());
    await fleet.startOne();
    await fleet.startOne();

    const task = (id: string, needs: string[] = [], ms = 400) => ({
      id,
      ...(needs.length ? { needs } : {}),
      command: [process.execPath, script],
      env: { TASK_CHAOS_LOG: logFile, TASK_CHAOS_MS: String(ms) },
    });
    const defaults = { prompt: "plan task", runner: "command", pool: PLAN_POOL, maxAttempts: 10 };
    const wide = Array.from({ length: 12 }, (_, i) => `w${i}`);
    const plans = [
      validatePlanSubmit({
        plan: `diamond-${process.pid}`,
        defaults,
        tasks: [task("a"), task("b", ["a"]), task("c", ["a"]), task("d", ["b", "c"])],
      }),
      validatePlanSubmit({
        plan: `fan-${process.pid}`,
        defaults,
        // The wide tasks run long enough for the kill to land while several of them run.
        tasks: [task("root"), ...wide.map((w) => task(w, ["root"], 1500)), task("sink", wide)],
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
    );
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
