/**
 * Plan scheduling with real nats-server and meshd processes: a failing need cancels its
 * dependents with the reason (or leaves them visibly blocked, by policy), `mesh retry` of it
 * re-opens them and they run; the release race (two needs finishing at once on two daemons)
 * releases once; submit is all or nothing and idempotent; a waiting task can be cancelled.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMeshError } from "../daemon/errors.js";
import { type PlanSpec, validatePlanSubmit } from "../daemon/plans/index.js";
import { type TaskEvent, validateTaskSpec } from "../daemon/tasks/index.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { readRecords } from "./support/chaos.js";
import { MESH_BIN, type MeshClient, openClient } from "./support/mesh.js";
import { PLAN_POOL, PlanFleet } from "./support/plans.js";

let nats: NatsServer;
let client: MeshClient;
let fleet: PlanFleet;
let dir: string;

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  // One slot each: two roots run on two daemons at once (the release race).
  fleet = new PlanFleet(nats.url, client, 1);
  await fleet.startOne();
  await fleet.startOne();
  dir = await makeTempDir("plans-policy-");
}, 120_000);

afterAll(async () => {
  await fleet?.stopAll();
  await client?.close();
  await nats?.cleanup();
});

const defaults = { prompt: "plan task", runner: "command", pool: PLAN_POOL, maxAttempts: 1 };
let planN = 0;
const planId = (what: string) => `${what}-${process.pid}-${planN++}`;
/** A command task: node -e `script`. */
const node = (id: string, script: string, more: Record<string, unknown> = {}) => ({
  id,
  command: [process.execPath, "-e", script],
  ...more,
});
const OK = "process.exit(0)";

async function state(id: string): Promise<string> {
  return (await client.api.getTask(id)).record.state;
}

async function until(id: string, states: string[]) {
  return waitFor(
    async () => {
      const v = await client.api.getTask(id);
      return states.includes(v.record.state) ? v.record : undefined;
    },
    { name: `${id} in ${states.join("|")}`, timeoutMs: 60_000, intervalMs: 50 },
  );
}

async function events(id: string): Promise<TaskEvent[]> {
  const out: TaskEvent[] = [];
  for await (const e of client.api.watchTask(id, new AbortController().signal)) out.push(e);
  return out;
}

describe("a need that does not succeed", () => {
  it("cancels its dependents transitively with the reason; policy wait blocks visibly; `mesh retry` re-opens and they run", async () => {
    const flag = join(dir, "a-may-succeed");
    const p = validatePlanSubmit({
      plan: planId("fail"),
      defaults,
      tasks: [
        node("a", `process.exit(require("fs").existsSync(${JSON.stringify(flag)}) ? 0 : 3)`),
        node("b", OK, { needs: ["a"] }),
        node("c", OK, { needs: ["b"] }),
        node("patient", OK, { needs: ["a"], dependencyFailure: "wait" }),
        node("free", OK),
      ],
    });
    const id = (n: string) => `${p.id}-${n}`;
    await client.api.submitPlan(p);
    expect(await state(id("b"))).toBe("waiting");
    await until(id("a"), ["failed", "dead"]);
    const b = await until(id("b"), ["cancelled"]);
    expect(b.reason).toMatch(new RegExp(`^dependency ${id("a")} (failed|died)`));
    expect(b.cancelCause).toEqual({ dependency: id("a") });
    const c = await until(id("c"), ["cancelled"]);
    expect(c.cancelCause).toEqual({ dependency: id("b") });
    expect(c.reason).toContain(`dependency ${id("b")} cancelled: dependency ${id("a")}`);
    const patient = await waitFor(
      async () => {
        const r = (await client.api.getTask(id("patient"))).record;
        return r.blockedBy ? r : undefined;
      },
      { name: "patient blocked", timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(patient.state).toBe("waiting");
    expect(patient.blockedBy?.dependency).toBe(id("a"));
    await until(id("free"), ["succeeded"]);
    // The plan view says why each one waits or ended.
    const view = await client.api.getPlan(p.id);
    expect(view.tasks.map((t) => t.record.id)).toEqual(p.order);

    await writeFile(flag, "");
    const socket = join(fleet.members[0]!.proc.stateDir, "meshd.sock");
    const r = await execa(process.execPath, [MESH_BIN, "--daemon", socket, "--json", "retry", id("a")], {
      reject: false,
      env: { NO_COLOR: "1" },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    for (const n of ["a", "b", "c", "patient"]) await until(id(n), ["succeeded"]);
    const records = await readRecords([nats.url], p.order);
    expect(records.get(id("c"))?.state).toBe("succeeded");
    // b: waiting, cancelled, waiting again, then queued once it could run.
    const bStates = (await events(id("b"))).flatMap((e) => (e.type === "state" ? [e.state] : []));
    expect(bStates.slice(0, 4)).toEqual(["waiting", "cancelled", "waiting", "queued"]);
  }, 120_000);

  it("mesh cancel of a waiting task cancels it and, by default, its dependents", async () => {
    const p = validatePlanSubmit({
      plan: planId("cancel"),
      defaults,
      tasks: [
        node("slow", "setTimeout(() => {}, 60000)"),
        node("mid", OK, { needs: ["slow"] }),
        node("end", OK, { needs: ["mid"] }),
      ],
    });
    const id = (n: string) => `${p.id}-${n}`;
    await client.api.submitPlan(p);
    const cancelled = await client.api.cancel(id("mid"));
    expect(cancelled.record.state).toBe("cancelled");
    expect(cancelled.record.reason).toBe("cancelled by request before it started");
    const end = await until(id("end"), ["cancelled"]);
    expect(end.reason).toBe(`dependency ${id("mid")} cancelled: cancelled by request before it started`);
    await client.api.cancel(id("slow"));
    await until(id("slow"), ["cancelled"]);
  }, 60_000);
});

describe("the release race", () => {
  it("two needs finishing at once on two daemons release their dependent once", async () => {
    // Each root waits until both have started (one per daemon: one slot each), then both end.
    const runs = 4;
    const plans: PlanSpec[] = [];
    for (let i = 0; i < runs; i++) {
      const gate = join(dir, `gate-${i}`);
      const both = (me: string) =>
        `const fs=require("fs");fs.writeFileSync(${JSON.stringify(gate)}+"-${me}","");` +
        `const t=setInterval(()=>{if(["x","y"].every(n=>fs.existsSync(${JSON.stringify(gate)}+"-"+n))){clearInterval(t);process.exit(0)}},2);`;
      plans.push(
        validatePlanSubmit({
          plan: planId("race"),
          defaults: { ...defaults, maxAttempts: 3 },
          tasks: [node("x", both("x")), node("y", both("y")), node("z", OK, { needs: ["x", "y"] })],
        }),
      );
    }
    for (const p of plans) {
      await client.api.submitPlan(p);
      await until(`${p.id}-z`, ["succeeded"]);
    }
    for (const p of plans) {
      const x = (await client.api.getTask(`${p.id}-x`)).record;
      const y = (await client.api.getTask(`${p.id}-y`)).record;
      // They ran on the two daemons, at the same time.
      expect(x.attempts.at(-1)?.workerId).not.toBe(y.attempts.at(-1)?.workerId);
      const zEvents = (await events(`${p.id}-z`)).flatMap((e) => (e.type === "state" ? [e.state] : []));
      expect(zEvents.filter((s) => s === "queued")).toEqual(["queued"]);
      expect((await client.api.getTask(`${p.id}-z`)).record.attempts).toHaveLength(1);
    }
  }, 120_000);
});

describe("submit", () => {
  it("is idempotent for the same plan and refuses, with nothing written, a different one under its id", async () => {
    const doc = {
      plan: planId("idem"),
      defaults,
      tasks: [node("one", "setTimeout(() => {}, 60000)"), node("two", OK, { needs: ["one"] })],
    };
    const first = await client.api.submitPlan(validatePlanSubmit(doc));
    expect(first.created).toBe(true);
    const again = await client.api.submitPlan(validatePlanSubmit(doc));
    expect(again.created).toBe(false);
    expect(again.tasks.map((t) => t.created)).toEqual([false, false]);
    const other = validatePlanSubmit({ ...doc, tasks: [...doc.tasks, node("three", OK)] });
    const err = await client.api.submitPlan(other).catch((e: unknown) => e);
    expect(isMeshError(err, "ALREADY_EXISTS")).toBe(true);
    await expect(client.api.getTask(`${doc.plan}-three`)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await client.api.cancel(`${doc.plan}-one`);
  }, 60_000);

  it("refuses a plan whose task id is taken by another task, and writes nothing of it", async () => {
    const pid = planId("taken");
    await client.api.submit([validateTaskSpec({ ...defaults, ...node(`${pid}-b`, OK) })]);
    const err = await client.api
      .submitPlan(
        validatePlanSubmit({ plan: pid, defaults, tasks: [node("a", OK), node("b", OK, { needs: ["a"] })] }),
      )
      .catch((e: unknown) => e);
    expect(isMeshError(err, "ALREADY_EXISTS")).toBe(true);
    await expect(client.api.getTask(`${pid}-a`)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(client.api.getPlan(pid)).rejects.toMatchObject({ code: "NOT_FOUND" });
  }, 60_000);

  it("refuses a task of a plan through the plain submit", async () => {
    const spec = validatePlanSubmit({ plan: planId("plain"), defaults, tasks: [node("a", OK)] }).tasks[0]!;
    const err = await client.api.submit([spec]).catch((e: unknown) => e);
    expect(isMeshError(err, "INVALID_ARGUMENT")).toBe(true);
    expect((err as { field?: string }).field).toBe("plan");
  });
});
