/**
 * The daemon's lifecycle against a real nats-server: a part it cannot live without dying stops
 * it with a coded error (in-process, and meshd's exit code), stop waits for running work, a
 * double stop is one stop, `await using` disposes, and the signal policy of meshd (one SIGTERM
 * stops gracefully; a second forces the hand-back; a third gives up at once).
 */
import { Writable } from "node:stream";
import { existsSync } from "node:fs";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, Daemon } from "../daemon/index.js";
import { MESHD_EXIT } from "../daemon/exit-codes.js";
import { isAlive, makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  FAST,
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
const procs: MeshdProcess[] = [];
const daemons: Daemon[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
});
afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.allSettled(daemons.map((d) => d.stop(0)));
  await client?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

/** Whether `p` has settled by now: used to prove it has NOT. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  const mark = () => {
    done = true;
  };
  void p.then(mark, mark);
  await new Promise((r) => setTimeout(r, 200));
  return done;
}

/** A logger whose lines the test can read. */
function capture(): {
  logger: pino.Logger;
  messages: () => string[];
  entries: () => Array<{ msg: string; component?: string; to?: string }>;
} {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return {
    logger: pino({ level: "debug" }, sink),
    messages: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    entries: () => lines.map((l) => JSON.parse(l) as { msg: string; component?: string; to?: string }),
  };
}

/** A task that waits for `release` to exist, writing `started` first. */
function waitsFor(started: string, release: string, pool: string) {
  return nodeTask(
    `const fs=require("fs");fs.writeFileSync(${JSON.stringify(started)},String(process.pid));setInterval(()=>{if(fs.existsSync(${JSON.stringify(release)}))process.exit(0)},20)`,
    { pool, maxAttempts: 3 },
  );
}

describe("the daemon's lifecycle", () => {
  it("stops itself with a coded error when its NATS connection closes for good", async () => {
    const d = await startDaemon(nats.url, { pools: ["lost"] });
    daemons.push(d);
    expect(d.state).toBe("running");
    await d.connection.close();
    const err = await d.closed.catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "MeshError", code: "UNAVAILABLE" });
    expect(String((err as Error).message)).toMatch(/NATS connection closed for good/);
    expect(d.state).toBe("failed");
  });

  it("stops itself when the cancel subscription ends (here refused by the server)", async () => {
    const s = await NatsServer.start({
      extraConfig: `authorization { users: [ { user: mesh, password: pw, permissions: { subscribe: { allow: ["_INBOX.>", "mesh.lease.*"] } } } ] }`,
    });
    try {
      const config = compileConfig({
        ...FAST,
        logLevel: process.env.MESH_TEST_LOG ?? "silent",
        http: { enabled: false },
        pools: ["nocancel"],
        nats: { servers: [s.url], user: "mesh", password: "pw" },
        stateDir: await makeTempDir("meshd-"),
      });
      const d = new Daemon(config);
      // The refusal may come while starting (the start fails) or just after (the daemon dies):
      // either way it ends with the same coded error.
      const err = await d
        .start()
        .then(() => d.closed)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "UNAVAILABLE" });
      expect(String((err as Error).message)).toMatch(/cancel subscription ended/);
      expect(d.state).toBe("failed");
    } finally {
      await s.cleanup();
    }
  });

  it("stop waits for the work in progress, and a double stop is one stop", async () => {
    const { logger, messages, entries } = capture();
    const config = compileConfig({
      ...FAST,
      logLevel: "debug",
      http: { enabled: false },
      pools: ["waits"],
      nats: { servers: [nats.url] },
      stateDir: await makeTempDir("meshd-"),
      shutdownGrace: "10m",
    });
    const d = new Daemon(config, { logger });
    daemons.push(d);
    await d.start();
    const dir = await makeTempDir();
    const [started, release] = [join(dir, "started"), join(dir, "release")];
    const spec = waitsFor(started, release, "waits");
    await client.api.submit([spec]);
    await waitFor(() => readFile(started, "utf8").catch(() => undefined), { name: "task started" });
    const stopping = d.stop();
    expect(d.stop()).toBe(stopping);
    expect(await settled(stopping)).toBe(false);
    expect(d.state).toBe("stopping");
    await writeFile(release, "");
    await stopping;
    await d.stop();
    expect(d.state).toBe("stopped");
    await expect(d.closed).resolves.toBeUndefined();
    // It finished within the grace instead of being handed back.
    expect((await client.api.getTask(spec.id)).record.state).toBe("succeeded");
    expect(messages().filter((m) => m === "meshd stopped")).toHaveLength(1);
    // Parts stop in reverse order of start, each logged with its component: the claim loop and
    // the sweeper before presence, then the lease beacon, the pullers (just before NATS), the daemon last.
    const stopped = entries()
      .filter((e) => e.msg === "state" && e.to === "stopped")
      .map((e) => e.component);
    expect(stopped.at(-1)).toBe("daemon");
    const at = (c: string) => stopped.indexOf(c);
    expect(at("claim-loop")).toBeGreaterThanOrEqual(0);
    expect(at("claim-loop")).toBeLessThan(at("sweeper"));
    expect(at("sweeper")).toBeLessThan(at("directory"));
    expect(at("directory")).toBeLessThan(at("presence"));
    expect(at("presence")).toBeLessThan(at("lease-beacon"));
    expect(at("lease-beacon")).toBeLessThan(at("puller"));
  });

  it("stops its workspace sweeper with it: nothing is swept from its state dir after the stop", async () => {
    const stateDir = await makeTempDir("meshd-");
    // A retention of 4 s sweeps every second once the first attempt has prepared its folder.
    const d = await startDaemon(nats.url, { pools: ["ws-sweep"], stateDir, workspaces: { retention: "4s" } });
    daemons.push(d);
    const spec = nodeTask("process.exit(0)", { pool: "ws-sweep" });
    await client.api.submit([spec]);
    await waitForState(client.api, spec.id, ["succeeded"]);
    await d.stop();
    // An attempt's folder long past the retention, left there after the stop.
    const left = join(stateDir, "work", "left-behind", "a1");
    await mkdir(left, { recursive: true });
    const past = new Date(Date.now() - 3_600_000);
    await utimes(left, past, past);
    // A sleep only to prove that no sweep comes (it would within a second).
    await new Promise((r) => setTimeout(r, 2_500));
    expect(existsSync(left)).toBe(true);
  });

  it("disposes with await using: stopped, and gone from the worker list", async () => {
    let workerId = "";
    {
      await using d = await startDaemon(nats.url, { pools: ["using"] });
      workerId = d.workerId;
      await waitFor(async () => (await client.api.listWorkers()).some((w) => w.workerId === workerId), {
        name: "presence",
      });
    }
    const live = await client.api.listWorkers();
    expect(live.map((w) => w.workerId)).not.toContain(workerId);
  });
});

describe("meshd's signal policy", () => {
  async function meshd(pool: string, extra: string[] = []): Promise<MeshdProcess> {
    const cfg = join(await makeTempDir(), "meshd.yaml");
    await writeFile(cfg, "shutdownGrace: 10m\n");
    const p = await spawnMeshd([
      "-c",
      cfg,
      "--nats",
      nats.url,
      "--pools",
      pool,
      "--slots",
      "1",
      "--no-http",
      ...extra,
    ]);
    procs.push(p);
    await waitFor(() => p.stderr().includes("meshd started"), { name: "meshd started", timeoutMs: 30_000 });
    return p;
  }

  it("one SIGTERM stops gracefully (exit 0)", async () => {
    const p = await meshd("sig-once");
    p.kill("SIGTERM");
    expect(await p.exited).toEqual({ code: MESHD_EXIT.OK, signal: null });
    expect(p.stderr()).toContain("meshd stopped");
  });

  it("a second SIGTERM forces: the running task is handed back at once, not after the 10 m grace", async () => {
    const p = await meshd("sig-twice");
    const dir = await makeTempDir();
    const spec = waitsFor(join(dir, "started"), join(dir, "never"), "sig-twice");
    await client.api.submit([spec]);
    const pid = Number(
      await waitFor(() => readFile(join(dir, "started"), "utf8").catch(() => undefined), {
        name: "run started",
      }),
    );
    p.kill("SIGTERM");
    await waitFor(() => p.stderr().includes("stopping gracefully"), { name: "graceful stop begun" });
    p.kill("SIGTERM");
    expect((await p.exited).code).toBe(MESHD_EXIT.OK);
    expect(p.stderr()).toContain("forcing: handing running tasks back now");
    expect(isAlive(pid)).toBe(false);
    const v = await waitForState(client.api, spec.id, ["queued"]);
    expect(v.record.attempts[0]?.outcome).toBe("interrupted");
  });

  it("a third signal gives up at once with exit 130", async () => {
    const p = await meshd("sig-thrice");
    const dir = await makeTempDir();
    // Ignores TERM: the forced hand-back then waits for the runner's kill grace (5 s).
    const spec = nodeTask(
      `process.on("SIGTERM",()=>{});require("fs").writeFileSync(${JSON.stringify(join(dir, "started"))},String(process.pid));setInterval(()=>{},1000)`,
      { pool: "sig-thrice", maxAttempts: 3 },
    );
    await client.api.submit([spec]);
    const pid = Number(
      await waitFor(() => readFile(join(dir, "started"), "utf8").catch(() => undefined), {
        name: "run started",
      }),
    );
    p.kill("SIGTERM");
    await waitFor(() => p.stderr().includes("stopping gracefully"), { name: "graceful stop begun" });
    p.kill("SIGTERM");
    await waitFor(() => p.stderr().includes("forcing"), { name: "forced" });
    p.kill("SIGTERM");
    expect((await p.exited).code).toBe(MESHD_EXIT.INTERRUPTED);
    // The run dies with meshd (parent death), though nothing waited for it.
    await waitFor(() => !isAlive(pid), { name: "run gone with meshd" });
  });

  it("exits 4 when its NATS connection closes for good (the server now refuses its credentials)", async () => {
    const auth = (pw: string) => `authorization { user: mesh, password: "${pw}" }`;
    const s = await NatsServer.start({ extraConfig: auth("first") });
    try {
      const p = await spawnMeshd(
        ["--nats", s.url, "--nats-user", "mesh", "--no-http", "--log-level", "info"],
        {
          MESH_NATS_PASSWORD: "first",
        },
      );
      procs.push(p);
      await waitFor(() => p.stderr().includes("meshd started"), { name: "meshd started", timeoutMs: 30_000 });
      await s.stop();
      const again = await NatsServer.start({ port: s.port, extraConfig: auth("changed") });
      try {
        expect((await p.exited).code).toBe(MESHD_EXIT.LOST);
        expect(p.stderr()).toMatch(/NATS connection closed for good/);
      } finally {
        await again.cleanup();
      }
    } finally {
      await s.cleanup();
    }
  });
});
