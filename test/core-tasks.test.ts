/**
 * The mesh core against a real nats-server: every transition, idempotent submit, illegal
 * transitions, retries to dead, label routing, cancel, timeout, presence.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Daemon } from "../daemon/index.js";
import { MeshError, validateTaskSpec } from "../daemon/index.js";
import { TASKS_STREAM, taskSubject } from "../daemon/nats/names.js";
import { newTaskRecord } from "../daemon/tasks/record.js";
import { isAlive, makeTempDir, waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { startDaemon, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

const mesh = useMesh({ duplicateWindowMs: 1000 });

async function daemon(opts: Parameters<typeof startDaemon>[1] = {}): Promise<Daemon> {
  const d = await startDaemon(mesh.nats.url, opts);
  mesh.daemons.push(d);
  return d;
}

async function eventsOf(id: string): Promise<string[]> {
  const ac = new AbortController();
  const seen: string[] = [];
  for await (const e of mesh.client.api.watchTask(id, ac.signal)) if (e.type === "state") seen.push(e.state);
  return seen;
}

describe("core: tasks on a real nats-server", () => {
  it("runs a task through queued -> claimed -> running -> succeeded, with env and prompt file", async () => {
    const d = await daemon({ pools: ["default"], slots: 2 });
    const out = join(await makeTempDir(), "env.json");
    const spec = nodeTask(
      `const fs=require("fs");fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify({id:process.env.MESH_TASK_ID,attempt:process.env.MESH_ATTEMPT,worker:process.env.MESH_WORKER_ID,prompt:fs.readFileSync(process.env.MESH_PROMPT_FILE,"utf8"),cwd:process.cwd(),extra:process.env.TASK_EXTRA}))`,
      { prompt: "write the env", env: { TASK_EXTRA: "yes" } },
    );
    const [res] = await mesh.client.api.submit([spec]);
    expect(res).toEqual({ id: spec.id, created: true, state: "queued" });
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "failed", "dead"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempt).toBe(1);
    expect(done.record.attempts[0]).toMatchObject({
      attempt: 1,
      workerId: d.workerId,
      outcome: "succeeded",
      exitCode: 0,
    });
    expect(done.record.finishedAt).toBeTruthy();
    expect(done.record.owner).toBeUndefined();
    const seen = JSON.parse(await readFile(out, "utf8"));
    expect(seen).toMatchObject({
      id: spec.id,
      attempt: "1",
      worker: d.workerId,
      prompt: "write the env",
      extra: "yes",
    });
    expect(seen.cwd).toContain(spec.id);
    expect(await eventsOf(spec.id)).toEqual(["queued", "claimed", "running", "succeeded"]);
    // its doorbell is gone from the work queue
    const info = await (await import("@nats-io/jetstream")).jetstreamManager(mesh.client.nc);
    const si = await info.streams.info(TASKS_STREAM, { subjects_filter: taskSubject("default", spec.id) });
    expect(si.state.subjects?.[taskSubject("default", spec.id)] ?? 0).toBe(0);
  });

  it("submit is idempotent inside and outside the duplicate window", async () => {
    const spec = nodeTask("process.exit(0)", { pool: "idem" });
    const first = await mesh.client.api.submit([spec]);
    const again = await mesh.client.api.submit([spec]);
    expect(first[0]?.created).toBe(true);
    expect(again[0]).toMatchObject({ id: spec.id, created: false, state: "queued" });
    const d = await daemon({ pools: ["idem"], slots: 1 });
    await waitForState(mesh.client.api, spec.id, ["succeeded"]);
    // The test stream's duplicate window is 1 s: let it pass, then submit again.
    const t = Date.now();
    await waitFor(() => Date.now() - t > 1500, { name: "duplicate window passed", timeoutMs: 5000 });
    const late = await mesh.client.api.submit([spec]);
    expect(late[0]).toMatchObject({ id: spec.id, created: false, state: "succeeded" });
    const v = await mesh.client.api.getTask(spec.id);
    expect(v.record.attempt).toBe(1);
    expect(v.record.attempts).toHaveLength(1);
    await d.stop(1000);
  });

  it("refuses a different spec under an id already submitted, and then submits nothing of the batch", async () => {
    const spec = nodeTask("process.exit(0)", { pool: "idem-diff" });
    await mesh.client.api.submit([spec]);
    const before = await mesh.client.store.get(spec.id);
    const changed = { ...spec, prompt: "another prompt", timeout: 5000 };
    await expect(mesh.client.api.submit([changed])).rejects.toMatchObject({
      code: "ALREADY_EXISTS",
      field: "id",
      message: expect.stringMatching(/already submitted with a different spec \(prompt, timeout differ\)/),
    });
    const fresh = nodeTask("process.exit(0)", { pool: "idem-diff" });
    await expect(mesh.client.api.submit([fresh, changed])).rejects.toMatchObject({
      code: "ALREADY_EXISTS",
      field: "tasks[1].id",
    });
    expect(await mesh.client.store.get(fresh.id)).toBeUndefined();
    expect(await mesh.client.store.get(spec.id)).toEqual(before);
    // The same spec again is still fine (idempotent), alone or in a batch.
    expect((await mesh.client.api.submit([spec]))[0]).toMatchObject({ created: false });
    expect((await mesh.client.api.submit([spec, fresh])).map((r) => r.created)).toEqual([false, true]);
  });

  it("refuses illegal transitions and stale revisions", async () => {
    const spec = nodeTask("0", { pool: "nobody-serves-this" });
    const created = await mesh.client.store.create(newTaskRecord(spec, new Date()));
    expect(created).toBeDefined();
    const v = created!;
    await expect(mesh.client.store.update(v, { ...v.record, state: "succeeded" })).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
    const moved = await mesh.client.store.update(v, { ...v.record, state: "claimed" });
    await expect(mesh.client.store.update(v, { ...v.record, state: "claimed" })).rejects.toMatchObject({
      code: "CONFLICT",
    });
    expect(moved.revision).toBeGreaterThan(v.revision);
    expect(await mesh.client.store.create(newTaskRecord(spec, new Date()))).toBeUndefined();
  });

  it("retries a failing task and ends it dead with each attempt's reason, out of the stream", async () => {
    await daemon({ pools: ["flaky"], slots: 1 });
    const spec = nodeTask('process.stderr.write("boom\\n");process.exit(7)', {
      pool: "flaky",
      maxAttempts: 3,
    });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["dead", "succeeded", "failed"]);
    expect(done.record.state).toBe("dead");
    expect(done.record.attempts.map((a) => a.outcome)).toEqual(["failed", "failed", "failed"]);
    expect(done.record.attempts.every((a) => a.reason === "exit code 7")).toBe(true);
    expect(done.record.reason).toMatch(/attempts exhausted \(3\/3\)/);
    const jsm = await (await import("@nats-io/jetstream")).jetstreamManager(mesh.client.nc);
    await waitFor(
      async () => {
        const si = await jsm.streams.info(TASKS_STREAM, { subjects_filter: taskSubject("flaky", spec.id) });
        return (si.state.subjects?.[taskSubject("flaky", spec.id)] ?? 0) === 0;
      },
      { name: "dead task's doorbell removed" },
    );
    expect(await eventsOf(spec.id)).toEqual([
      "queued",
      "claimed",
      "running",
      "queued",
      "claimed",
      "running",
      "queued",
      "claimed",
      "running",
      "dead",
    ]);
  });

  it("routes by labels and shows a task no live worker can serve", async () => {
    const plain = await daemon({ pools: ["lab"], slots: 2, name: "plain" });
    const gpu = await daemon({ pools: ["lab"], slots: 2, name: "gpu", labels: { gpu: "true" } });
    const specs = Array.from({ length: 4 }, () => nodeTask("0", { pool: "lab", labels: { gpu: "true" } }));
    await mesh.client.api.submit(specs);
    for (const s of specs) {
      const v = await waitForState(mesh.client.api, s.id, ["succeeded"]);
      expect(v.record.attempts.map((a) => a.workerId)).toEqual([gpu.workerId]);
    }
    const impossible = nodeTask("0", { pool: "lab", labels: { tpu: "v5" } });
    await mesh.client.api.submit([impossible]);
    const v = await mesh.client.api.getTask(impossible.id);
    expect(v.record.state).toBe("queued");
    expect(v.unschedulable).toMatch(/no live worker serves pool "lab" with labels tpu=v5/);
    const workers = await mesh.client.api.listWorkers();
    expect(workers.map((w) => w.workerId)).toEqual(expect.arrayContaining([plain.workerId, gpu.workerId]));
    await mesh.client.api.cancel(impossible.id);
    await Promise.all([plain.stop(1000), gpu.stop(1000)]);
  });

  it("a cancelled queued task never starts; a running one is stopped and ends cancelled", async () => {
    const marker = join(await makeTempDir(), "started");
    const queued = nodeTask(`require("fs").writeFileSync(${JSON.stringify(marker)},"x")`, { pool: "cancel" });
    await mesh.client.api.submit([queued]);
    const c = await mesh.client.api.cancel(queued.id);
    expect(c.record.state).toBe("cancelled");
    await expect(mesh.client.api.cancel(queued.id)).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    const started = join(await makeTempDir(), "running");
    const running = nodeTask(
      `require("fs").writeFileSync(${JSON.stringify(started)}, String(process.pid));setTimeout(()=>{},60000)`,
      { pool: "cancel" },
    );
    await mesh.client.api.submit([running]);
    const d = await daemon({ pools: ["cancel"], slots: 2 });
    await waitForState(mesh.client.api, running.id, ["running"]);
    const pid = Number(
      await waitFor(() => readFile(started, "utf8").catch(() => undefined), { name: "task started" }),
    );
    await mesh.client.api.cancel(running.id);
    const done = await waitForState(mesh.client.api, running.id, [
      "cancelled",
      "succeeded",
      "failed",
      "dead",
    ]);
    expect(done.record.state).toBe("cancelled");
    expect(done.record.attempts[0]?.outcome).toBe("cancelled");
    await waitFor(() => !isAlive(pid), { name: "cancelled task's process gone" });
    await expect(readFile(marker, "utf8")).rejects.toThrow();
    expect((await mesh.client.api.getTask(queued.id)).record.attempts).toHaveLength(0);
    await d.stop(1000);
  });

  it("a command that does not exist fails at once (not retried) and says so", async () => {
    const d = await daemon({ pools: ["nocmd"], slots: 1 });
    const spec = validateTaskSpec({
      id: uniqueId(),
      prompt: "p",
      pool: "nocmd",
      runner: "command",
      command: ["definitely-not-a-command-xyz", "--flag"],
      maxAttempts: 3,
    });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["failed", "dead", "succeeded"]);
    expect(done.record.state).toBe("failed");
    expect(done.record.attempts).toHaveLength(1);
    expect(done.record.attempts[0]?.reason).toMatch(/command not found: definitely-not-a-command-xyz/);
    await d.stop(1000);
  });

  it("does not offer the claude runner where Claude Code or its API key is missing", async () => {
    const noBinary = await daemon({
      pools: ["noclaude"],
      runners: ["claude", "command"],
      claude: { command: ["/nonexistent/claude"] },
    });
    const w = (await mesh.client.api.listWorkers()).find((x) => x.workerId === noBinary.workerId);
    expect(w?.runners).toEqual(["command"]);
    const spec = validateTaskSpec({ id: uniqueId(), prompt: "p", pool: "noclaude" });
    await mesh.client.api.submit([spec]);
    const v = await mesh.client.api.getTask(spec.id);
    expect(v.unschedulable).toMatch(/runner "claude"/);
    await mesh.client.api.cancel(spec.id);
    await noBinary.stop(1000);
    const keyless = await daemon({
      pools: ["noclaude"],
      runners: ["claude"],
      claude: { command: [process.execPath], apiKeyFile: join(await makeTempDir(), "missing-key") },
    });
    const k = (await mesh.client.api.listWorkers()).find((x) => x.workerId === keyless.workerId);
    expect(k?.runners).toEqual([]);
    await keyless.stop(1000);
  });

  it("enforces a task timeout", async () => {
    const d = await daemon({ pools: ["slow"], slots: 1 });
    const spec = nodeTask("setTimeout(()=>{},60000)", { pool: "slow", timeout: "1s", maxAttempts: 1 });
    await mesh.client.api.submit([spec]);
    const done = await waitForState(mesh.client.api, spec.id, ["dead", "failed", "succeeded"]);
    expect(done.record.state).toBe("dead");
    expect(done.record.attempts[0]).toMatchObject({ outcome: "timeout", reason: "timed out after 1000 ms" });
    await d.stop(1000);
  });

  it("retry runs a dead task again as a new attempt", async () => {
    const d = await daemon({ pools: ["retry"], slots: 1 });
    const flag = join(await makeTempDir(), "flag");
    const spec = nodeTask(
      `const fs=require("fs");if(!fs.existsSync(${JSON.stringify(flag)})){fs.writeFileSync(${JSON.stringify(flag)},"1");process.exit(1)}`,
      {
        pool: "retry",
        maxAttempts: 1,
      },
    );
    await mesh.client.api.submit([spec]);
    await waitForState(mesh.client.api, spec.id, ["dead"]);
    await expect(mesh.client.api.retry(uniqueId("missing"))).rejects.toMatchObject({ code: "NOT_FOUND" });
    const r = await mesh.client.api.retry(spec.id);
    expect(r.record.state).toBe("queued");
    const done = await waitForState(mesh.client.api, spec.id, ["succeeded", "dead"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts.map((a) => a.outcome)).toEqual(["failed", "succeeded"]);
    await expect(mesh.client.api.retry(spec.id)).rejects.toBeInstanceOf(MeshError);
    await d.stop(1000);
  });

  it("a watcher ends from the record when a terminal event was lost", async () => {
    const spec = nodeTask("0", { pool: "nobody-serves-this-either" });
    const created = (await mesh.client.store.create(newTaskRecord(spec, new Date())))!;
    // Written behind the events' back, as if the daemon had crashed before publishing.
    await mesh.client.store.update(created, { ...created.record, state: "cancelled", reason: "test" });
    expect(await eventsOf(spec.id)).toEqual(["cancelled"]);
  });

  it("presence lists live workers and drops a stopped one", async () => {
    const d = await daemon({ pools: ["p1", "p2"], slots: 3, labels: { os: "linux" } });
    const w = await waitFor(
      async () => (await mesh.client.api.listWorkers()).find((x) => x.workerId === d.workerId),
      {
        name: "worker listed",
      },
    );
    expect(w).toMatchObject({
      pools: ["p1", "p2"],
      labels: { os: "linux" },
      slotsTotal: 3,
      slotsFree: 3,
      running: [],
    });
    await d.stop(1000);
    await waitFor(async () => !(await mesh.client.api.listWorkers()).some((x) => x.workerId === d.workerId), {
      name: "worker gone",
    });
  });
});
