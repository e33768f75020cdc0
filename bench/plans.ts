/**
 * Scenario `plans`: a plan of 5,000 tasks through the real CLI to a real meshd, then its release.
 * Two shapes, each its own plan, run one after the other:
 *
 * - `layers`: 1 root -> 50 -> 4,000 (80 per layer-1 task) -> 948 (each needs 4 of layer 2) ->
 *   1 sink needing all 948: fan-out and fan-in;
 * - `wide`: 1 -> 4,998 -> 1.
 *
 * `mesh plan submit <file> --json` is timed (wall clock, the CLI's start included). The tasks run
 * with the `noop` runner (one meshd, `--slots` 16), so what is left is the mesh's own work. A
 * subscriber on the state events notes when each task succeeded and when each waiting task was
 * queued: a release's latency is from its last need's success to its `queued` (one clock, the
 * bench's). A second plain subscriber on `$JS.API.>` counts the JetStream requests meanwhile: per
 * bucket, reads by key (direct gets) and consumers created (a scan of a bucket is a consumer),
 * so "no scan of the plan's tasks" is what the counts show, per settled task.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { makeTempDir, NatsServer, removeTempDir, waitFor } from "../test/harness/index.js";
import { MESH_BIN, type MeshdProcess, shebangNodeFlags, spawnMeshd } from "../test/support/mesh.js";
import { percentile, round } from "./stats.js";

export interface PlansOptions {
  /** Tasks per plan (default 5,000). */
  tasks: number;
  /** Slots of the daemon. */
  slots?: number;
}

interface PlanDoc {
  plan: string;
  defaults: Record<string, unknown>;
  tasks: Array<{ id: string; needs?: string[] }>;
}

const POOL = "bench-plans";

function layersPlan(id: string, n: number): PlanDoc {
  // 1 + a + b + c + 1 = n, a = 1%, b = 80%, c the rest.
  const a = Math.max(1, Math.round(n * 0.01));
  const b = Math.max(1, Math.round(n * 0.8));
  const c = Math.max(1, n - 2 - a - b);
  const tasks: PlanDoc["tasks"] = [{ id: "root" }];
  for (let i = 0; i < a; i++) tasks.push({ id: `a${i}`, needs: ["root"] });
  for (let i = 0; i < b; i++) tasks.push({ id: `b${i}`, needs: [`a${i % a}`] });
  for (let i = 0; i < c; i++) {
    const needs = new Set<string>();
    for (let k = 0; k < 4; k++) needs.add(`b${(i * 4 + k) % b}`);
    tasks.push({ id: `c${i}`, needs: [...needs] });
  }
  tasks.push({ id: "sink", needs: Array.from({ length: c }, (_, i) => `c${i}`) });
  return { plan: id, defaults: { prompt: "p", runner: "noop", pool: POOL }, tasks };
}

function widePlan(id: string, n: number): PlanDoc {
  const w = Array.from({ length: n - 2 }, (_, i) => `w${i}`);
  return {
    plan: id,
    defaults: { prompt: "p", runner: "noop", pool: POOL },
    tasks: [{ id: "root" }, ...w.map((x) => ({ id: x, needs: ["root"] })), { id: "sink", needs: w }],
  };
}

/** JetStream requests by bucket: reads by key, consumers created (scans, watches), other. */
class ApiCounter {
  readonly gets = new Map<string, number>();
  readonly consumers = new Map<string, number>();
  readonly infos = new Map<string, number>();
  private bump(m: Map<string, number>, k: string) {
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  see(subject: string): void {
    const get = /^\$JS\.API\.(?:DIRECT\.GET|STREAM\.MSG\.GET)\.KV_([^.]+)/.exec(subject);
    const consumer = /^\$JS\.API\.CONSUMER\.CREATE\.KV_([^.]+)/.exec(subject);
    const info = /^\$JS\.API\.STREAM\.INFO\.KV_([^.]+)$/.exec(subject);
    if (get) this.bump(this.gets, get[1]!);
    else if (consumer) this.bump(this.consumers, consumer[1]!);
    else if (info) this.bump(this.infos, info[1]!);
  }
  snapshot() {
    return { gets: new Map(this.gets), consumers: new Map(this.consumers), infos: new Map(this.infos) };
  }
}

const delta = (a: Map<string, number>, b: Map<string, number>, k: string) =>
  (b.get(k) ?? 0) - (a.get(k) ?? 0);

export async function plansScenario(opts: PlansOptions) {
  const n = Math.max(10, opts.tasks);
  const server = await NatsServer.start();
  const stateDir = await makeTempDir("plans-bench-");
  const docsDir = await makeTempDir("plans-docs-");
  const nc = await connect({ servers: server.url, name: "bench observer" });
  const api = new ApiCounter();
  nc.subscribe("$JS.API.>", { callback: (_e, m) => api.see(m.subject) });
  const succeededAt = new Map<string, number>();
  const queuedAt = new Map<string, number>();
  const waiting = new Set<string>();
  nc.subscribe("mesh.events.task.*.state", {
    callback: (_e, m) => {
      const e = m.json<{ taskId: string; state: string }>();
      const t = performance.now();
      if (e.state === "waiting") waiting.add(e.taskId);
      else if (e.state === "queued" && waiting.has(e.taskId) && !queuedAt.has(e.taskId))
        queuedAt.set(e.taskId, t);
      else if (e.state === "succeeded") succeededAt.set(e.taskId, t);
    },
  });
  await nc.flush();
  let meshd: MeshdProcess | undefined;
  try {
    meshd = await spawnMeshd([
      "--nats",
      server.url,
      "--state-dir",
      stateDir,
      "--name",
      "bench-plans",
      "--pools",
      POOL,
      "--slots",
      String(opts.slots ?? 16),
      "--runners",
      "noop",
      "--no-http",
      "--log-level",
      "warn",
    ]);
    await waitFor(() => existsSync(join(stateDir, "meshd.sock")), { name: "meshd up", timeoutMs: 60_000 });
    const rows = [];
    for (const [shape, make] of [
      ["layers", layersPlan],
      ["wide", widePlan],
    ] as const) {
      const id = `bench-${shape}-${process.pid}`;
      const doc = make(id, n);
      const file = join(docsDir, `${shape}.json`);
      await writeFile(file, JSON.stringify(doc));
      const s0 = api.snapshot();
      const t0 = performance.now();
      const r = spawnSync(
        process.execPath,
        [...shebangNodeFlags(MESH_BIN), MESH_BIN, "plan", "submit", file, "--json"],
        {
          env: { ...process.env, MESH_STATE_DIR: stateDir, NO_COLOR: "1" },
          encoding: "utf8",
          maxBuffer: 256 * 1024 * 1024,
        },
      );
      const submitMs = performance.now() - t0;
      if (r.status !== 0) throw new Error(`mesh plan submit exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
      const s1 = api.snapshot();
      const ids = doc.tasks.map((t) => `${id}-${t.id}`);
      const tRun = performance.now();
      await waitFor(() => ids.every((t) => succeededAt.has(t)), {
        name: `${shape}: all ${ids.length} tasks succeeded`,
        timeoutMs: 600_000,
        intervalMs: 200,
      });
      const runMs = performance.now() - tRun;
      // Quiet for a moment: requests still in flight are counted.
      await nc.flush();
      const s2 = api.snapshot();
      // Release latency: from the last need's success to the dependent's queued.
      const latencies: number[] = [];
      for (const t of doc.tasks) {
        if (!t.needs?.length) continue;
        const q = queuedAt.get(`${id}-${t.id}`);
        const last = Math.max(...t.needs.map((x) => succeededAt.get(`${id}-${x}`) ?? Number.NaN));
        if (q !== undefined && Number.isFinite(last)) latencies.push(q - last);
      }
      const sinkNeeds = doc.tasks.at(-1)!.needs!;
      const sinkLatency =
        (queuedAt.get(`${id}-sink`) ?? Number.NaN) -
        Math.max(...sinkNeeds.map((x) => succeededAt.get(`${id}-${x}`) ?? Number.NaN));
      const settled = ids.length;
      rows.push({
        shape,
        tasks: ids.length,
        edges: doc.tasks.reduce((k, t) => k + (t.needs?.length ?? 0), 0),
        planKb: round(Buffer.byteLength(JSON.stringify(doc)) / 1024, 0),
        submitMs: round(submitMs, 0),
        runS: round(runMs / 1000, 1),
        tasksPerS: round(ids.length / (runMs / 1000), 0),
        releaseP50Ms: round(percentile(latencies, 50), 1),
        releaseP99Ms: round(percentile(latencies, 99), 1),
        releaseMaxMs: round(Math.max(...latencies), 1),
        sinkReleaseMs: round(sinkLatency, 1),
        submitTaskGets: delta(s0.gets, s1.gets, "mesh-tasks"),
        taskGetsPerSettle: round(delta(s1.gets, s2.gets, "mesh-tasks") / settled, 2),
        planGetsPerSettle: round(delta(s1.gets, s2.gets, "mesh-plans") / settled, 2),
        planInfosPerSettle: round(delta(s1.infos, s2.infos, "mesh-plans") / settled, 2),
        taskScans: delta(s1.consumers, s2.consumers, "mesh-tasks"),
        planScans: delta(s1.consumers, s2.consumers, "mesh-plans"),
      });
    }
    return {
      scenario: "plans",
      tasksPerPlan: n,
      slots: opts.slots ?? 16,
      runner: "noop",
      notes:
        "submit: `mesh plan submit --json` wall clock; release: last need succeeded -> dependent queued (state events, one clock); gets and scans: JetStream requests per bucket during the run (a scan is a consumer created; the sweeper's passes are scans too)",
      rows,
      machine: { loadAverage: loadavg().map((x) => round(x, 2)) },
    };
  } finally {
    await nc.close().catch(() => undefined);
    await meshd?.stop(30_000);
    await server.cleanup();
    await removeTempDir(stateDir);
    await removeTempDir(docsDir);
  }
}
