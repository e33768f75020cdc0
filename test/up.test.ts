/**
 * `mesh up` as a user runs it: the built CLI starts nats-server + meshd in the foreground,
 * the CLI talks to it, Ctrl-C stops both; a missing nats-server binary gets a clear message.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir, waitFor } from "./harness/index.js";
import { MESH_BIN } from "./support/mesh.js";

const run = promisify(execFile);
const procs: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
});

describe("mesh up", () => {
  it("starts a local mesh, serves the CLI, and Ctrl-C stops both processes", async () => {
    const stateDir = await makeTempDir("up-");
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [MESH_BIN, "up", "--json", "--state-dir", stateDir, "--nats-port", String(port), "--log-level", "warn"],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NO_COLOR: "1" },
      },
    );
    procs.push(child);
    let out = "";
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
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
      (await run("pgrep", ["-f", `nats-server.*-p ${port}`])).stdout.trim().split("\n")[0],
    );
    expect(natsPid).toBeGreaterThan(0);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    await waitFor(
      () =>
        run("pgrep", ["-f", `nats-server.*-p ${port}`]).then(
          () => false,
          () => true,
        ),
      { name: "nats-server stopped" },
    );
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
