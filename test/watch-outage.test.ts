/**
 * A brief NATS outage does not end a wait: `mesh submit --wait` (the built CLI as a child
 * process, against a real `meshd` child) of a task that runs across a NATS restart ends with
 * the task's outcome, exit 0. It ended at once with `INTERNAL` ("internal error in meshd:
 * timeout", exit 5) because the watch's re-read of the record failed while NATS was away.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pause } from "../daemon/util/abort.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  MESH_BIN,
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  waitForState,
} from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;
let meshd: MeshdProcess | undefined;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
});
afterAll(async () => {
  meshd?.kill("SIGKILL");
  await client?.close();
  await nats?.stop();
  await removeTempDirs();
});

describe("a wait across a NATS restart", () => {
  it("submit --wait --json ends with the task's outcome, exit 0", async () => {
    const pool = uniqueId("outage");
    // A lease far longer than the outage: the owner keeps its fence and finishes the run.
    meshd = await spawnMeshd([
      ...["--nats", nats.url, "--pools", pool, "--slots", "1", "--lease", "20s", "--name", "outage"],
      ...["--runners", "command", "--no-http", "--log-level", process.env.R11_LOG ?? "warn"],
    ]);
    const socket = join(meshd.stateDir, "meshd.sock");
    await waitFor(() => existsSync(socket), { name: "meshd socket", timeoutMs: 30_000 });
    const dir = await makeTempDir("outage-");
    const go = join(dir, "go");
    const id = uniqueId("outage-task");
    const specFile = join(dir, "task.json");
    await writeFile(
      specFile,
      JSON.stringify({
        id,
        prompt: "runs until told to stop",
        pool,
        runner: "command",
        command: [
          process.execPath,
          "-e",
          `const fs = require("fs"); setInterval(() => { if (fs.existsSync(${JSON.stringify(go)})) process.exit(0); }, 50);`,
        ],
      }),
    );
    const wait = execa(process.execPath, [MESH_BIN, "--json", "submit", specFile, "--wait"], {
      reject: false,
      stdin: "ignore",
      env: { NO_COLOR: "1", MESH_DAEMON: socket, MESH_TOKEN: "", MESH_TLS_CA: "" },
      timeout: 90_000,
    });
    let ended = false;
    void wait.then(() => {
      ended = true;
    });
    await waitForState(client.api, id, ["running"]);
    await nats.stop();
    // Prove the wait does NOT end while NATS is away (its record re-reads fail every 200 ms).
    await pause(2000);
    expect(ended).toBe(false);
    await nats.restart();
    await writeFile(go, "");
    const r = await wait;
    if (r.stderr)
      console.log(
        meshd
          .stderr()
          .split("\n")
          .filter((l) => /error|timeout|watch/i.test(l))
          .slice(-15)
          .join("\n"),
      );
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(String(r.stdout));
    expect(out.tasks).toEqual([expect.objectContaining({ id, state: "succeeded", attempt: 1 })]);
  }, 120_000);
});
