/**
 * Failures the mesh must survive, with real processes: a daemon killed with SIGKILL (its task is
 * taken over after the lease; its child dies with it), graceful shutdown handing work back,
 * SIGTERM letting a task finish, a NATS restart, and a worker cut off from NATS fencing itself.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunContext, Runner, RunOutcome } from "../daemon/claim/runner.js";
import type { Daemon } from "../daemon/index.js";
import { pause } from "../daemon/util/abort.js";
import { isAlive, makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import {
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  startDaemon,
  waitForState,
} from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;
const daemons: Daemon[] = [];
const children: MeshdProcess[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
});
afterEach(async () => {
  await Promise.allSettled(daemons.splice(0).map((d) => d.stop(500)));
  for (const c of children.splice(0)) c.kill("SIGKILL");
});
afterAll(async () => {
  await client?.close();
  await nats?.cleanup();
});

/** Attempt 1 records its pid and hangs; later attempts succeed at once. */
function hangOnFirstAttempt(pidFile: string, pool: string, extra: Record<string, unknown> = {}) {
  return nodeTask(
    `const fs=require("fs");if(process.env.MESH_ATTEMPT==="1"){fs.writeFileSync(${JSON.stringify(pidFile)},String(process.pid));setInterval(()=>{},1000)}`,
    { pool, maxAttempts: 3, ...extra },
  );
}

describe("failover", () => {
  it("takes over a task whose daemon was killed with SIGKILL; the orphaned run dies too", async () => {
    const child = await spawnMeshd([
      "--nats",
      nats.url,
      "--pools",
      "kill9",
      "--slots",
      "1",
      "--lease",
      "2s",
      "--no-http",
    ]);
    children.push(child);
    const pidFile = join(await makeTempDir(), "pid");
    const spec = hangOnFirstAttempt(pidFile, "kill9");
    await client.api.submit([spec]);
    const running = await waitForState(client.api, spec.id, ["running"]);
    const firstWorker = running.record.owner?.workerId;
    const pid = Number(
      await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined), { name: "run started" }),
    );
    child.kill("SIGKILL");
    await child.exited;
    await waitFor(() => !isAlive(pid), { name: "orphaned run killed with its daemon", timeoutMs: 5000 });
    const b = await startDaemon(nats.url, { pools: ["kill9"], slots: 1 });
    daemons.push(b);
    const done = await waitForState(client.api, spec.id, ["succeeded", "dead", "failed"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts).toHaveLength(2);
    expect(done.record.attempts[0]).toMatchObject({ workerId: firstWorker, outcome: "lost" });
    expect(done.record.attempts[0]?.reason).toMatch(/stopped heartbeating/);
    expect(done.record.attempts[1]).toMatchObject({ workerId: b.workerId, outcome: "succeeded" });
  });

  it("graceful stop hands a running task back without counting the attempt", async () => {
    const a = await startDaemon(nats.url, { pools: ["handback"], slots: 1, shutdownGrace: "300ms" });
    const pidFile = join(await makeTempDir(), "pid");
    const spec = hangOnFirstAttempt(pidFile, "handback", { maxAttempts: 1 });
    await client.api.submit([spec]);
    await waitForState(client.api, spec.id, ["running"]);
    const pid = Number(
      await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined), { name: "run started" }),
    );
    await a.stop();
    expect(isAlive(pid)).toBe(false);
    const back = await client.api.getTask(spec.id);
    expect(back.record.state).toBe("queued");
    expect(back.record.attempts[0]?.outcome).toBe("interrupted");
    expect(back.record.countedFailures).toBe(0);
    const b = await startDaemon(nats.url, { pools: ["handback"], slots: 1 });
    daemons.push(b);
    const done = await waitForState(client.api, spec.id, ["succeeded", "dead"]);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts.map((x) => x.outcome)).toEqual(["interrupted", "succeeded"]);
  });

  it("SIGTERM lets a running task finish within the grace period, then meshd exits 0", async () => {
    const child = await spawnMeshd(["--nats", nats.url, "--pools", "term", "--slots", "1", "--no-http"]);
    children.push(child);
    const started = join(await makeTempDir(), "started");
    const spec = nodeTask(
      `require("fs").writeFileSync(${JSON.stringify(started)},"1");setTimeout(()=>process.exit(0),1500)`,
      { pool: "term" },
    );
    await client.api.submit([spec]);
    await waitFor(() => readFile(started, "utf8").catch(() => undefined), { name: "task started" });
    child.kill("SIGTERM");
    const exit = await child.exited;
    expect(exit.code).toBe(0);
    const v = await client.api.getTask(spec.id);
    expect(v.record.state).toBe("succeeded");
    expect(v.record.attempts).toHaveLength(1);
  });

  it("a second SIGINT forces: running tasks are handed back at once instead of after the grace", async () => {
    const cfg = join(await makeTempDir(), "meshd.yaml");
    await writeFile(cfg, "shutdownGrace: 10m\n");
    const child = await spawnMeshd([
      "-c",
      cfg,
      "--nats",
      nats.url,
      "--pools",
      "force",
      "--slots",
      "1",
      "--no-http",
    ]);
    children.push(child);
    const pidFile = join(await makeTempDir(), "pid");
    const spec = hangOnFirstAttempt(pidFile, "force");
    await client.api.submit([spec]);
    const pid = Number(
      await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined), { name: "run started" }),
    );
    child.kill("SIGINT");
    await waitFor(() => child.stderr().includes("a second SIGINT hands running tasks back"), {
      name: "graceful stop begun",
    });
    child.kill("SIGINT");
    // With a 10 minute grace, only the forced path can end it within the test's time.
    expect((await child.exited).code).toBe(0);
    expect(isAlive(pid)).toBe(false);
    const v = await client.api.getTask(spec.id);
    expect(v.record.state).toBe("queued");
    expect(v.record.attempts[0]?.outcome).toBe("interrupted");
  });

  it("keeps going across a NATS restart", async () => {
    const d = await startDaemon(nats.url, { pools: ["restart"], slots: 4 });
    daemons.push(d);
    const specs = Array.from({ length: 20 }, () =>
      nodeTask("setTimeout(()=>{},300)", { pool: "restart", maxAttempts: 5 }),
    );
    await client.api.submit(specs.slice(0, 10));
    await waitForState(client.api, specs[0]!.id, ["running", "succeeded"]);
    await nats.restart();
    // Submitting is idempotent, so a client may simply retry until JetStream answers again.
    await waitFor(
      () =>
        client.api.submit(specs.slice(10)).then(
          () => true,
          () => false,
        ),
      { name: "submit after restart", timeoutMs: 30_000, intervalMs: 200 },
    );
    for (const s of specs) {
      const v = await waitForState(client.api, s.id, ["succeeded", "dead", "failed"], 45_000);
      expect(v.record.state).toBe("succeeded");
    }
  });

  it("a worker cut off from NATS longer than its lease stops its run (self-fencing)", async () => {
    const d = await startDaemon(nats.url, { pools: ["fence"], slots: 1, lease: "2s" });
    daemons.push(d);
    const pidFile = join(await makeTempDir(), "pid");
    const spec = hangOnFirstAttempt(pidFile, "fence");
    await client.api.submit([spec]);
    await waitForState(client.api, spec.id, ["running"]);
    const pid = Number(
      await waitFor(() => readFile(pidFile, "utf8").catch(() => undefined), { name: "run started" }),
    );
    await nats.kill();
    // Within the lease (2 s) the worker must have given up its run: nobody else may take over before.
    await waitFor(() => !isAlive(pid), { name: "self-fenced run stopped", timeoutMs: 5000 });
    await nats.restart();
    const done = await waitForState(client.api, spec.id, ["succeeded", "dead", "failed"], 45_000);
    expect(done.record.state).toBe("succeeded");
    // The same worker recorded its own stopped attempt once NATS was back: never a takeover from
    // itself, and a NATS outage is not the task's failure.
    expect(done.record.attempts.map((a) => a.outcome)).toEqual(["interrupted", "succeeded"]);
    expect(done.record.attempts[0]?.reason).toMatch(/self-fenced/);
    expect(done.record.countedFailures).toBe(0);
  });

  it("a worker that self-fences while its run ends pushes nothing and writes no result for it", async () => {
    const origin = await makeTempDir("fence-origin-");
    const git = (...args: string[]) =>
      execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...args], { cwd: origin });
    await git("init", "--quiet", "-b", "main");
    await writeFile(join(origin, "README.md"), "x\n");
    await git("add", "README.md");
    await git("commit", "--quiet", "-m", "first");
    // Attempt 1 writes a file and then reports success only once its attempt was aborted (here:
    // by the self-fence while NATS is away), as a runner whose work ended just then would.
    let aborted1 = false;
    let returned1 = false;
    const runner: Runner = {
      kind: "command",
      async run(ctx: RunContext): Promise<RunOutcome> {
        await writeFile(join(ctx.workdir, `from-attempt-${ctx.attempt}.txt`), "work\n");
        if (ctx.attempt > 1) return { status: "succeeded", exitCode: 0 };
        await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
        aborted1 = true;
        returned1 = true;
        return { status: "succeeded", exitCode: 0 };
      },
    };
    const d = await startDaemon(
      nats.url,
      { pools: ["fence-push"], slots: 1, lease: "2s" },
      { runners: [runner] },
    );
    daemons.push(d);
    const spec = nodeTask("", { pool: "fence-push", repo: origin, push: true, maxAttempts: 3 });
    await client.api.submit([spec]);
    await waitForState(client.api, spec.id, ["running"]);
    await nats.kill();
    await waitFor(() => aborted1 && returned1, {
      name: "attempt 1 aborted by its self-fence",
      timeoutMs: 10_000,
    });
    await pause(1500); // proving that no commit or push follows
    const branches = async () => (await git("branch", "--list", `mesh/${spec.id}`)).stdout.trim();
    expect(await branches()).toBe("");
    await nats.restart();
    const done = await waitForState(client.api, spec.id, ["succeeded", "dead", "failed"], 45_000);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts.map((a) => a.outcome)).toEqual(["interrupted", "succeeded"]);
    // Only the second attempt's work reached the origin.
    expect(await branches()).toContain(`mesh/${spec.id}`);
    const files = (await git("ls-tree", "--name-only", `mesh/${spec.id}`)).stdout.split("\n");
    expect(files).not.toContain("from-attempt-1.txt");
  });
});
