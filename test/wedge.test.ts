/**
 * Nothing wedges the mesh (issue 10, section 4), against a real nats-server:
 * - more unschedulable tasks than the pool consumer's MaxAckPending do not stop a pool from
 *   running a schedulable task, and run once a worker that serves them joins;
 * - a cancel that races a requeue (a failing attempt's retry back-off, a graceful-shutdown
 *   hand-back) ends the task cancelled, never queued with the cancel pending;
 * - garbage, wrong-shape and future-version records, and malformed doorbells, beside healthy
 *   tasks: reported and counted, set aside, and `mesh tasks`, the sweeper and the claim loop go on.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { Claimer } from "../daemon/claim/claim.js";
import {
  compileConfig,
  type Daemon,
  startDaemon as startFullDaemon,
  validateTaskSpec,
} from "../daemon/index.js";
import { createLogger } from "../daemon/log.js";
import { MeshMetrics } from "../daemon/metrics/index.js";
import {
  kvSubject,
  poolConsumerName,
  poolFilter,
  TASKS_BUCKET,
  TASKS_BUCKET_STREAM,
  TASKS_STREAM,
  taskSubject,
} from "../daemon/nats/names.js";
import { ringDoorbell } from "../daemon/queue/doorbell.js";
import { Puller } from "../daemon/queue/puller.js";
import { ensureTopology } from "../daemon/queue/topology.js";
import { ClaudeRunner } from "../daemon/runner/claude-runner.js";
import { newTaskRecord } from "../daemon/tasks/record.js";
import type { TaskSpec } from "../daemon/tasks/spec.js";
import { Deferred, makeTempDir, waitFor, withTimeout } from "./harness/index.js";
import { CLAUDE_BIN, FAKE_API_KEY, rateLimited, startMockAnthropic } from "./mock-anthropic/index.js";
import { useMesh } from "./support/fixture.js";
import { FAST, MESH_BIN, startDaemon, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

const mesh = useMesh();
// Each test has the mesh to itself (which daemon sweeps, for one, depends on who is live).
afterEach(async () => {
  await Promise.allSettled(mesh.daemons.splice(0).map((d) => d.stop(1000)));
});

async function daemon(
  opts: Parameters<typeof startDaemon>[1] = {},
  deps: Parameters<typeof startDaemon>[2] = {},
): Promise<Daemon> {
  const d = await startDaemon(mesh.nats.url, opts, deps);
  mesh.daemons.push(d);
  return d;
}

function topology() {
  return ensureTopology(mesh.client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
}

/** Submits many tasks quickly, the way the API does (record first, then its doorbell). */
async function submitMany(specs: TaskSpec[]): Promise<void> {
  const topo = await topology();
  for (let i = 0; i < specs.length; i += 250) {
    await Promise.all(
      specs.slice(i, i + 250).map(async (spec) => {
        const created = await mesh.client.store.create(newTaskRecord(spec, new Date()));
        if (!created) throw new Error(`task ${spec.id} exists already`);
        await ringDoorbell(topo.publisher, spec.pool, spec.id, `${spec.id}#submit`, created);
      }),
    );
  }
}

/** Polls a file a task's child waits for. */
const waitForFile = (path: string) =>
  `const fs=require("fs");const t=setInterval(()=>{if(fs.existsSync(${JSON.stringify(path)})){clearInterval(t);process.exit(1)}},10);`;

describe("unschedulable tasks hold no delivery slot", () => {
  it("more of them than MaxAckPending do not stop a schedulable task; they run once a worker serves them", async () => {
    const pool = "wedge";
    const topo = await topology();
    await topo.consumer(pool);
    const ci = await topo.jsm.consumers.info(TASKS_STREAM, poolConsumerName(pool));
    // Enough to fill every ack-pending slot of the pool's consumer, whatever it is configured to.
    const n = (ci.config.max_ack_pending ?? 1000) + 500;
    await daemon({ pools: [pool], slots: 2, name: "plain", sweepInterval: "10m" });
    // Spread among them, a sample that needs another label: a worker with it joins below.
    const every = Math.ceil(n / 40);
    const unschedulable = Array.from({ length: n }, (_, i) => {
      const label = i % every === every - 1 ? "tpu" : "gpu";
      return validateTaskSpec({
        id: `${label}-${i}-${uniqueId("w")}`,
        prompt: "p",
        pool,
        runner: "noop",
        labels: { [label]: "yes" },
      });
    });
    await submitMany(unschedulable);

    // Before the fix, every one of them was nak'ed and waited for redelivery, holding its
    // ack-pending slot: the consumer delivered nothing new and this task never ran.
    const schedulable = validateTaskSpec({ id: uniqueId("s"), prompt: "p", pool, runner: "noop" });
    await mesh.client.api.submit([schedulable]);
    const done = await waitForState(mesh.client.api, schedulable.id, ["succeeded"], 45_000);
    expect(done.record.state).toBe("succeeded");

    // The unschedulable ones stay queued and say why.
    const gpu = unschedulable.filter((s) => s.labels.gpu);
    const tpu = unschedulable.filter((s) => s.labels.tpu).map((s) => s.id);
    const waiting = await mesh.client.api.getTask(gpu[0]?.id ?? "");
    expect(waiting.record.state).toBe("queued");
    expect(waiting.unschedulable).toMatch(/no live worker serves pool "wedge" with labels gpu=yes/);

    // A worker that serves some of them joins: the sweeper rings them again and they run (its
    // regular passes are 10 minutes apart here: the join is what makes it pass).
    await daemon({ pools: [pool], slots: 4, name: "tpu", labels: { tpu: "yes" }, sweepInterval: "10m" });
    await waitFor(
      async () => {
        for (const id of tpu)
          if ((await mesh.client.store.get(id))?.record.state !== "succeeded") return false;
        return true;
      },
      { name: `the ${tpu.length} tasks needing tpu=yes succeeded`, timeoutMs: 60_000, intervalMs: 250 },
    );
    // The others still wait, visibly, for a worker that serves them.
    const still = await mesh.client.api.getTask(gpu[gpu.length - 1]?.id ?? "");
    expect(still.record.state).toBe("queued");
    expect(still.unschedulable).toMatch(/labels gpu=yes/);
    // Leave the bucket small for the tests after this one.
    await topo.jsm.streams.purge(TASKS_BUCKET_STREAM);
  }, 180_000);
});

describe("a cancel that races a requeue ends cancelled", () => {
  // A long lease: heartbeats (lease/3) must not notice the cancel before the attempt ends.
  const slow = { ...FAST, lease: "30s", retryDelay: "30s" };

  it("a cancel recorded while a failing attempt is requeued into its back-off (its nudge lost) ends cancelled", async () => {
    const pool = "cancel-requeue";
    await daemon({ ...slow, pools: [pool], slots: 1 });
    const go = join(await makeTempDir(), "go");
    const spec = nodeTask(waitForFile(go), { pool, maxAttempts: 3 });
    await mesh.client.api.submit([spec]);
    await waitForState(mesh.client.api, spec.id, ["running"]);
    // What CancelTask writes for a running task; its core-NATS nudge to the worker is best
    // effort and, here, lost: the worker learns of the cancel only from the record.
    await mesh.client.store.mutate(spec.id, (r) => ({ ...r, cancelRequested: true }));
    await writeFile(go, "");
    const end = await waitForState(mesh.client.api, spec.id, ["cancelled", "failed", "dead"], 20_000);
    expect(end.record.state).toBe("cancelled");
    expect(end.record.attempts).toHaveLength(1);
    expect(end.record.attempts[0]?.outcome).toBe("failed");
    expect(end.record.cancelRequested).toBeUndefined();
  });

  it("cancels racing failing attempts, looped, always end cancelled; so does one during the back-off", async () => {
    const pool = "cancel-race";
    await daemon({ ...slow, pools: [pool], slots: 4 });
    const dir = await makeTempDir();
    for (let round = 0; round < 3; round++) {
      const specs = Array.from({ length: 4 }, (_, i) =>
        nodeTask(waitForFile(join(dir, `go-${round}-${i}`)), { pool, maxAttempts: 3 }),
      );
      await mesh.client.api.submit(specs);
      for (const s of specs) await waitForState(mesh.client.api, s.id, ["running"]);
      // The child exits (attempt failed, requeue into a 30 s back-off) while the cancel goes in.
      await Promise.all(
        specs.map(async (s, i) => {
          await writeFile(join(dir, `go-${round}-${i}`), "");
          await new Promise((r) => setTimeout(r, i * 3));
          await mesh.client.api.cancel(s.id).catch((err: { code?: string }) => {
            if (err.code !== "FAILED_PRECONDITION") throw err;
          });
        }),
      );
      for (const s of specs) {
        const end = await waitForState(mesh.client.api, s.id, ["cancelled", "failed", "dead"], 20_000);
        expect({ id: s.id, state: end.record.state }).toEqual({ id: s.id, state: "cancelled" });
      }
    }
    // Cancelled while waiting out its retry back-off.
    const go = join(dir, "go-backoff");
    await writeFile(go, "");
    const backoff = nodeTask(waitForFile(go), { pool, maxAttempts: 3 });
    await mesh.client.api.submit([backoff]);
    await waitFor(
      async () => {
        const r = (await mesh.client.store.get(backoff.id))?.record;
        return r?.state === "queued" && r.attempts.length === 1 && r.notBefore !== undefined;
      },
      { name: "first attempt failed, task in its back-off", timeoutMs: 20_000 },
    );
    const c = await mesh.client.api.cancel(backoff.id);
    expect(c.record.state).toBe("cancelled");
  });

  it("a graceful-shutdown hand-back racing a cancel ends cancelled", async () => {
    const pool = "cancel-handback";
    const d = await daemon({ ...slow, pools: [pool], slots: 1 });
    const dir = await makeTempDir();
    const started = join(dir, "started");
    const stopping = join(dir, "stopping");
    const release = join(dir, "release");
    // On SIGTERM (the hand-back) the child says so, then exits only once released.
    const spec = nodeTask(
      `const fs=require("fs");process.on("SIGTERM",()=>{fs.writeFileSync(${JSON.stringify(stopping)},"");setInterval(()=>{if(fs.existsSync(${JSON.stringify(release)}))process.exit(143)},10)});fs.writeFileSync(${JSON.stringify(started)},"");setInterval(()=>{},1000)`,
      { pool, maxAttempts: 3 },
    );
    await mesh.client.api.submit([spec]);
    await waitFor(() => existsSync(started), { name: "the run started" });
    const stopped = d.stop(0);
    await waitFor(() => existsSync(stopping), { name: "the run is being handed back" });
    const c = await mesh.client.api.cancel(spec.id);
    expect(c.record.cancelRequested).toBe(true);
    await writeFile(release, "");
    await stopped;
    const end = await mesh.client.api.getTask(spec.id);
    expect(end.record.state).toBe("cancelled");
    expect(end.record.attempts[0]?.outcome).toBe("interrupted");
  });
});

describe("a rate-limit hand-back racing a cancel", () => {
  it("ends cancelled, not queued for its retry with the cancel pending (real Claude Code, mock API)", async () => {
    const pool = "cancel-429";
    const stateDir = await makeTempDir("meshd-429-");
    const keyFile = join(stateDir, "anthropic-key");
    await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    const inCall = new Deferred<void>();
    const release = new Deferred<void>();
    const mock = await startMockAnthropic({
      script: async () => {
        inCall.resolve();
        await release.promise;
        return rateLimited(1);
      },
    });
    try {
      const runner = new ClaudeRunner({
        claudeCommand: [CLAUDE_BIN],
        extraEnv: { ANTHROPIC_BASE_URL: mock.url },
        apiKey: { file: keyFile },
        configRoot: join(stateDir, "claude"),
        maxRetries: 0,
        rateLimitDelayMs: 300,
        heartbeatMs: 1_000,
      });
      // A long lease: heartbeats (lease/3) must not notice the cancel before the attempt ends.
      await daemon(
        { ...FAST, lease: "30s", pools: [pool], runners: ["claude"], stateDir },
        { runners: [runner] },
      );
      const origin = await makeTempDir("origin-");
      const git = (...args: string[]) =>
        execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...args], { cwd: origin });
      await git("init", "--quiet", "-b", "main");
      await writeFile(join(origin, "README.md"), "a repo\n");
      await git("add", "README.md");
      await git("commit", "--quiet", "-m", "first");
      const spec = validateTaskSpec({
        id: uniqueId("rl"),
        prompt: "work",
        repo: origin,
        pool,
        maxAttempts: 2,
      });
      await mesh.client.api.submit([spec]);
      await withTimeout(inCall.promise, 60_000, "Claude Code called the API");
      // What CancelTask writes; its nudge to the worker lost, as core NATS may lose it.
      await mesh.client.store.mutate(spec.id, (r) => ({ ...r, cancelRequested: true }));
      release.resolve();
      const end = await waitForState(
        mesh.client.api,
        spec.id,
        ["cancelled", "succeeded", "failed", "dead"],
        60_000,
      );
      expect(end.record.state).toBe("cancelled");
      expect(end.record.attempts.map((a) => a.outcome)).toEqual(["rate_limited"]);
    } finally {
      release.resolve();
      await mock.close();
    }
  }, 120_000);
});

describe("a queued task left with a cancel pending", () => {
  // What an older daemon's requeue could leave behind: queued, with the cancel still pending.
  async function plant(pool: string, ring: boolean): Promise<string> {
    const topo = await topology();
    const spec = validateTaskSpec({ id: uniqueId("pending"), prompt: "p", pool, runner: "noop" });
    const rec = { ...newTaskRecord(spec, new Date(Date.now() - 60_000)), cancelRequested: true };
    const created = await mesh.client.store.create(rec);
    if (!created) throw new Error(`task ${spec.id} exists already`);
    if (ring) await ringDoorbell(topo.publisher, pool, spec.id, `${spec.id}#submit`, created);
    return spec.id;
  }

  it("is cancelled by the claimer that gets its doorbell", async () => {
    const pool = "cancel-pending-claim";
    const topo = await topology();
    await topo.consumer(pool);
    const id = await plant(pool, true);
    const p = new Puller(mesh.client.nc, {
      apiPrefix: topo.apiPrefix,
      stream: TASKS_STREAM,
      consumer: poolConsumerName(pool),
      log: createLogger("silent"),
    });
    try {
      const msg = await p.pull(5000);
      expect(msg?.subject).toBe(taskSubject(pool, id));
      const claimer = new Claimer(
        mesh.client.store,
        { workerId: "w-test", host: "h", pools: [pool], labels: {}, runners: ["noop"] },
        { leaseMs: 2000 },
      );
      const d = await claimer.decide(msg!, () => false);
      expect(d).toMatchObject({ kind: "settled", record: { id, state: "cancelled" } });
    } finally {
      p.close();
    }
    const end = (await mesh.client.store.get(id))?.record;
    expect(end).toMatchObject({ state: "cancelled", attempts: [] });
    expect(end?.cancelRequested).toBeUndefined();
  });

  it("is cancelled by the sweeper when it has no doorbell", async () => {
    const pool = "cancel-pending-sweep";
    const id = await plant(pool, false);
    await daemon({ pools: [pool], slots: 1, sweepInterval: "300ms" });
    const end = await waitForState(mesh.client.api, id, ["cancelled", "succeeded", "failed", "dead"], 20_000);
    expect(end.record.state).toBe("cancelled");
    expect(end.record.attempts).toHaveLength(0);
    expect(end.record.cancelRequested).toBeUndefined();
  });
});

describe("unreadable records and doorbells are set aside", () => {
  it("garbage, wrong-shape and future-version records and bad doorbells beside healthy tasks", async () => {
    const pool = "poison";
    const stateDir = await makeTempDir("meshd-poison-");
    const d = await startFullDaemon(
      compileConfig({
        ...FAST,
        logLevel: process.env.MESH_TEST_LOG ?? "silent",
        http: { enabled: false },
        nats: { servers: [mesh.nats.url] },
        stateDir,
        pools: [pool],
        slots: 2,
        sweepInterval: "300ms",
      }),
    );
    mesh.daemons.push(d);
    const js = jetstream(mesh.client.nc);
    const enc = new TextEncoder();
    const taskKey = (key: string) => kvSubject(TASKS_BUCKET, key);
    const tag = uniqueId("p");
    const garbage = `garbage-${tag}`;
    const shape = `shape-${tag}`;
    const future = `future-${tag}`;
    const types = `types-${tag}`;
    await js.publish(taskKey(garbage), new Uint8Array([0xff, 0xfe, 0x00, 0x7b, 0x22]));
    await js.publish(taskKey(shape), enc.encode(JSON.stringify({ hello: "world", state: 7 })));
    const newer = {
      ...newTaskRecord(validateTaskSpec({ id: future, prompt: "p", pool, runner: "noop" }), new Date()),
      v: 2,
      shinyNewField: { x: 1 },
    };
    await js.publish(taskKey(future), enc.encode(JSON.stringify(newer)));
    // Looks like a record, but an attempt's worker id is a number (the API would fail to encode it).
    const typed = newTaskRecord(
      validateTaskSpec({ id: types, prompt: "p", pool, runner: "noop" }),
      new Date(),
    );
    const wrongTypes = {
      ...typed,
      attempts: [{ attempt: 1, workerId: 42, host: "h", claimedAt: typed.submittedAt }],
    };
    await js.publish(taskKey(types), enc.encode(JSON.stringify(wrongTypes)));
    // Doorbells for the unreadable records, and doorbells that are not doorbells at all.
    for (const key of [garbage, shape, future, types])
      await js.publish(taskSubject(pool, key), JSON.stringify({ id: key }));
    const badBells = [
      { subject: taskSubject(pool, `junk-${tag}`), data: new Uint8Array([0x00, 0xff, 0x10]) },
      { subject: taskSubject(pool, `wrong-${tag}`), data: enc.encode(JSON.stringify([1, 2, 3])) },
      {
        subject: taskSubject(pool, `other-${tag}`),
        data: enc.encode(JSON.stringify({ id: "someone-else" })),
      },
      { subject: taskSubject(pool, "%not-an-id%"), data: enc.encode(JSON.stringify({ id: "%not-an-id%" })) },
    ];
    for (const b of badBells) await js.publish(b.subject, b.data);

    // Healthy tasks: submitted, and one whose doorbell was lost (only the sweeper can ring it).
    const healthy = Array.from({ length: 3 }, () =>
      validateTaskSpec({ id: uniqueId("ok"), prompt: "p", pool, runner: "noop" }),
    );
    await mesh.client.api.submit(healthy);
    const lost = validateTaskSpec({ id: uniqueId("lost"), prompt: "p", pool, runner: "noop" });
    const rec = newTaskRecord(lost, new Date(Date.now() - 60_000));
    expect(await mesh.client.store.create(rec)).toBeDefined();

    for (const s of [...healthy, lost]) {
      const end = await waitForState(
        mesh.client.api,
        s.id,
        ["succeeded", "failed", "dead", "cancelled"],
        30_000,
      );
      expect(end.record.state).toBe("succeeded");
    }

    // Every bad doorbell was set aside (acked: gone from the work queue), not redelivered forever.
    const topo = await topology();
    await waitFor(
      async () => {
        const info = await topo.jsm.streams.info(TASKS_STREAM, { subjects_filter: poolFilter(pool) });
        return Object.keys(info.state.subjects ?? {}).length === 0;
      },
      { name: "no doorbell left in the poison pool's queue", timeoutMs: 20_000 },
    );

    // Counted: the four records (each revision once) and the four doorbells that are not
    // doorbells (the unreadable records' own doorbells are well formed).
    const metrics = d.observer as MeshMetrics;
    expect(metrics).toBeInstanceOf(MeshMetrics);
    const counted = async (kind: string) => {
      const all = await metrics.registry.getMetricsAsJSON();
      const m = all.find((x) => x.name === "agentmesh_records_unreadable_total");
      return (m?.values ?? []).find((v) => v.labels.kind === kind)?.value ?? 0;
    };
    await waitFor(async () => (await counted("doorbell")) === 4, { name: "4 bad doorbells counted" });
    await waitFor(async () => (await counted("record")) === 4, { name: "4 bad records counted" });

    // The gRPC API lists the healthy tasks and reports the others.
    const list = await mesh.client.api.listTasks({ pool });
    expect(list.tasks.map((t) => t.record.id).sort()).toEqual([...healthy, lost].map((s) => s.id).sort());
    const reported = list.unreadable.filter((u) => u.key.endsWith(tag));
    expect(reported.map((u) => u.key).sort()).toEqual([future, garbage, shape, types].sort());
    expect(reported.find((u) => u.key === future)?.reason).toMatch(/newer agent-mesh \(record version 2/);
    expect(reported.find((u) => u.key === garbage)?.reason).toMatch(/not JSON/);
    expect(reported.find((u) => u.key === types)?.reason).toMatch(/attempts\[0\]\.workerId/);
    await expect(mesh.client.api.getTask(future)).rejects.toMatchObject({ code: "DATA_LOSS" });

    // The sweeper's passes complete (the lost doorbell above was rung by one); they go on.
    const w = async () =>
      (await mesh.client.api.listWorkers()).find((x) => x.workerId === d.workerId)?.sweptAt;
    const before = (await w()) ?? "";
    await waitFor(async () => ((await w()) ?? "") > before, { name: "another sweep pass finished" });

    // `mesh tasks`, the CLI as users run it: the healthy ones, and a warning for the others.
    const env = { NO_COLOR: "1", MESH_DAEMON: d.config.socketPath, MESH_TOKEN: "", MESH_TLS_CA: "" };
    const human = await execa(process.execPath, [MESH_BIN, "tasks", "--pool", pool], { reject: false, env });
    expect(human.exitCode).toBe(0);
    for (const s of [...healthy, lost]) expect(human.stdout).toContain(s.id);
    expect(human.stderr).toMatch(/warning: \d+ task records could not be read and are left out/);
    for (const key of [garbage, shape, future, types]) expect(human.stderr).toContain(key);
    const asJson = await execa(process.execPath, [MESH_BIN, "--json", "tasks", "--pool", pool], {
      reject: false,
      env,
    });
    expect(asJson.exitCode).toBe(0);
    const doc = JSON.parse(asJson.stdout) as {
      tasks: { id: string }[];
      unreadable: { key: string; revision: number; reason: string }[];
    };
    expect(doc.tasks.map((t) => t.id).sort()).toEqual([...healthy, lost].map((s) => s.id).sort());
    expect(
      doc.unreadable
        .map((u) => u.key)
        .filter((k) => k.endsWith(tag))
        .sort(),
    ).toEqual([future, garbage, shape, types].sort());
    expect(doc.unreadable[0]).toEqual({
      key: expect.any(String),
      revision: expect.any(Number),
      reason: expect.any(String),
    });

    // The records themselves are left as they were.
    const raw = await topo.tasks.get(future);
    expect(JSON.parse(new TextDecoder().decode(raw?.value)).v).toBe(2);
  }, 120_000);
});
