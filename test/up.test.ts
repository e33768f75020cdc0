/**
 * `mesh up` as a user runs it: the built CLI starts nats-server + meshd in the foreground,
 * the CLI talks to it, Ctrl-C stops both; a missing nats-server binary gets a clear message.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { type Child, type SpawnOptions, spawnChild } from "../lib/index.js";
import { freePort, makeTempDir, waitFor } from "./harness/index.js";
import { MESH_BIN, REPO_ROOT } from "./support/mesh.js";

const run = promisify(execFile);

/** True when no process has `text` in its command line (nats-server runs with its config path). */
const noProcessMentions = (text: string) =>
  run("pgrep", ["-f", text]).then(
    () => false,
    () => true,
  );

function readyLine(child: Child): Promise<Record<string, string>> {
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  return waitFor(
    () =>
      out
        .split("\n")
        .find((l) => l.startsWith("{"))
        ?.trim() && JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!),
    { name: "mesh up ready line", timeoutMs: 60_000 },
  );
}
const procs: Child[] = [];
/**
 * A child through lib/child, as a terminal would start it: no guardian, and nothing of its
 * process group reaped after it exits (what it leaves behind is what a test checks). The
 * parent-death signal ends it if this test process dies.
 */
function start(argv: string[], opts: Pick<SpawnOptions, "cwd" | "env" | "group"> = {}): Child {
  const child = spawnChild(argv, { parentDeath: "signal", group: false, ...opts, reapGroup: false });
  procs.push(child);
  return child;
}
/** Its exit code (null when a signal ended it). */
const exitCode = (child: Child) => child.exited.then((e) => e.exitCode);
/** `mesh up --json` on `stateDir` with its nats-server on a free port. */
const upArgs = (stateDir: string) => [
  process.execPath,
  MESH_BIN,
  "up",
  "--json",
  "--state-dir",
  stateDir,
  "--nats-port",
  "0",
  "--log-level",
  "warn",
];
afterEach(() => {
  // npm start runs in its own process group: signal() takes the whole group.
  for (const p of procs.splice(0)) p.signal("SIGKILL");
});

describe("mesh up", () => {
  it("starts a local mesh, serves the CLI, and Ctrl-C stops both processes", async () => {
    const stateDir = await makeTempDir("up-");
    const port = await freePort();
    const child = start(
      [
        process.execPath,
        MESH_BIN,
        "up",
        "--json",
        "--state-dir",
        stateDir,
        "--nats-port",
        String(port),
        "--log-level",
        "warn",
      ],
      { env: { ...process.env, NO_COLOR: "1" } },
    );
    let out = "";
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const exited = exitCode(child);
    const info = await waitFor(() => (out.includes("\n") ? JSON.parse(out.split("\n")[0]!) : undefined), {
      name: "mesh up ready line",
      timeoutMs: 30_000,
    });
    expect(info).toMatchObject({
      nats: `nats://127.0.0.1:${port}`,
      socket: `${stateDir}/meshd.sock`,
      stateDir,
    });
    const env = { ...process.env, MESH_STATE_DIR: stateDir, NO_COLOR: "1" };
    const workers = JSON.parse(
      (await run(process.execPath, [MESH_BIN, "workers", "--json"], { env })).stdout,
    );
    expect(workers.workers.map((w: { workerId: string }) => w.workerId)).toContain(info.workerId);
    // A second `mesh up` on the same state dir refuses before touching the NATS data.
    const again = await run(
      process.execPath,
      [MESH_BIN, "up", "--state-dir", stateDir, "--nats-port", String(await freePort())],
      {
        env,
      },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/a mesh is already running with state dir/);
    const natsPid = Number(
      (await run("pgrep", ["-f", `nats-server -c ${stateDir}/`])).stdout.trim().split("\n")[0],
    );
    expect(natsPid).toBeGreaterThan(0);
    child.signal("SIGINT");
    expect(await exited).toBe(0);
    await waitFor(() => noProcessMentions(stateDir), { name: "nats-server stopped" });
  });

  it("refuses bad options before starting anything (no state dir, no credentials made)", async () => {
    const stateDir = join(await makeTempDir("up-"), "never");
    const res = await run(process.execPath, [MESH_BIN, "up", "--state-dir", stateDir, "--slots", "0"]).then(
      () => ({ code: 0 }),
      (e: { code: number }) => e,
    );
    expect(res.code).toBe(2);
    expect(existsSync(stateDir)).toBe(false);
  });

  it("says how to install nats-server when it is missing", async () => {
    const stateDir = await makeTempDir("up-");
    const res = await run(process.execPath, [MESH_BIN, "up", "--state-dir", stateDir], {
      env: { ...process.env, MESH_NATS_SERVER: "/nonexistent/nats-server" },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/nats-server/);
    expect(res.stderr).toMatch(/apt-get install nats-server/);
    expect(res.stderr).toMatch(/brew install nats-server/);
    expect(res.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("mesh up: its nats-server", () => {
  it("--nats-port 0 starts on a free port and connects to it; killing nats-server ends mesh up (exit 3)", async () => {
    const stateDir = await makeTempDir("up-");
    const child = start(upArgs(stateDir));
    const exited = exitCode(child);
    const info = await readyLine(child);
    const port = Number(new URL(info.nats!).port);
    expect(port).toBeGreaterThan(0);
    const env = { ...process.env, MESH_STATE_DIR: stateDir, NO_COLOR: "1" };
    const workers = JSON.parse(
      (await run(process.execPath, [MESH_BIN, "workers", "--json"], { env })).stdout,
    );
    expect(workers.workers).toHaveLength(1);
    const natsPid = Number((await run("pgrep", ["-f", `nats-server -c ${stateDir}/`])).stdout.trim());
    process.kill(natsPid, "SIGKILL");
    expect(await exited).toBe(3);
    expect(await noProcessMentions(stateDir)).toBe(true);
    // The same state dir starts again (same credentials, same data).
    const again = start(upArgs(stateDir));
    const againExited = exitCode(again);
    expect((await readyLine(again)).natsNkey).toBe(info.natsNkey);
    again.signal("SIGTERM");
    expect(await againExited).toBe(0);
    await waitFor(() => noProcessMentions(stateDir), { name: "everything stopped" });
  }, 120_000);

  it("a daemon that fails to start ends mesh up and takes nats-server with it", async () => {
    const stateDir = await makeTempDir("up-");
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const httpPort = (busy.address() as { port: number }).port;
    try {
      const res = await run(process.execPath, [
        MESH_BIN,
        "up",
        "--state-dir",
        stateDir,
        "--nats-port",
        "0",
        "--http-port",
        String(httpPort),
      ]).then(
        () => ({ code: 0 }),
        (e: { code: number }) => e,
      );
      expect(res.code).not.toBe(0);
      expect(await noProcessMentions(stateDir)).toBe(true);
    } finally {
      busy.close();
    }
  });

  it("kill -9 of mesh up takes its nats-server with it", async () => {
    const stateDir = await makeTempDir("up-");
    const child = start(upArgs(stateDir));
    await readyLine(child);
    expect(await noProcessMentions(`nats-server -c ${stateDir}/`)).toBe(false);
    child.signal("SIGKILL");
    await waitFor(() => noProcessMentions(stateDir), { name: "nats-server died with mesh up" });
  });
});

describe("npm start", () => {
  const NPM = "npm";
  /** `npm start` in its own process group, as a terminal runs it. */
  function npmStart(stateDir: string, extra: string[] = ["--json", "--log-level", "warn"]) {
    const child = start([NPM, "-s", "start", "--", ...extra, "--state-dir", stateDir, "--nats-port", "0"], {
      cwd: REPO_ROOT,
      group: true,
      env: { ...process.env, NO_COLOR: "1" },
    });
    let err = "";
    child.stderr?.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const exited = child.exited.then((e) => ({ code: e.exitCode, signal: e.signal }));
    return { child, exited, stderr: () => err };
  }

  it("stops everything on SIGINT or SIGTERM to its process group or to npm alone, and starts again", async () => {
    const stateDir = await makeTempDir("npm-start-");
    let built: number | undefined;
    const cases: Array<[string, (pid: number) => void]> = [
      ["SIGINT to the group (Ctrl-C)", (pid) => process.kill(-pid, "SIGINT")],
      ["SIGTERM to the group", (pid) => process.kill(-pid, "SIGTERM")],
      ["SIGINT to npm", (pid) => process.kill(pid, "SIGINT")],
      ["SIGTERM to npm", (pid) => process.kill(pid, "SIGTERM")],
    ];
    for (const [name, send] of cases) {
      const s = npmStart(stateDir);
      await readyLine(s.child);
      send(s.child.pid!);
      const { code } = await s.exited;
      expect({ name, code }).toEqual({ name, code: 0 });
      await waitFor(() => noProcessMentions(stateDir), { name: `${name}: nothing left running` });
      // After the first start (which builds if a source changed since the last build), dist/ is
      // up to date and npm start does not build again.
      const mtime = (await stat(MESH_BIN)).mtimeMs;
      built ??= mtime;
      expect({ name, mtime }).toEqual({ name, mtime: built });
    }
  }, 180_000);

  it("prints a human banner with commands that work from a fresh clone, and no JSON log lines", async () => {
    const stateDir = await makeTempDir("npm-start-");
    // At info level the daemon logs a dozen lines while starting: none may reach the terminal as
    // JSON. (stderr is a pipe here: --log-format pretty is what a terminal gets by default.)
    const s = npmStart(stateDir, ["--log-level", "info", "--log-format", "pretty"]);
    let out = "";
    s.child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await waitFor(() => out.includes("Ctrl-C stops it"), { name: "banner", timeoutMs: 60_000 });
    // The banner names the dashboard's address, and it answers there.
    const ui = /^ {2}web {6}(http:\/\/127\.0\.0\.1:\d+\/ui) /m.exec(out)?.[1];
    expect(ui, out).toBeDefined();
    expect((await fetch(ui!)).status).toBe(200);
    process.kill(-s.child.pid!, "SIGINT");
    await s.exited;
    const lines = `${out}\n${s.stderr()}`.split("\n").filter(Boolean);
    expect(lines.filter((l) => l.trim().startsWith("{"))).toEqual([]);
    expect(out).toContain("agent-mesh is up");
    expect(out).toMatch(/npm run -s mesh -- workers|mesh workers/);
    expect(out).toContain(`${stateDir}/meshd.log`);
    expect(out).toContain(`${stateDir}/nats-daemon.nk`);
  });
});
