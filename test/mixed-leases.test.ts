/**
 * Daemons of one mesh may run with different leases. An owner self-fences only after ITS lease
 * of silence, so another worker must not take its task over sooner, whatever the taker's own
 * lease is: a 1 s-lease worker took over (and counted a failure for) the task of a live 8 s-lease
 * owner that was silent for a few seconds, and both ran it. Real nats-server, a real `meshd`
 * child (stopped with SIGSTOP, so it stays alive and holds its fence), an in-process daemon.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pause } from "../daemon/util/abort.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  startDaemon,
  waitForState,
} from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let client: MeshClient;
const children: MeshdProcess[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
});
afterAll(async () => {
  for (const c of children) {
    c.kill("SIGCONT");
    c.kill("SIGKILL");
  }
  await client?.close();
  await nats?.stop();
  await removeTempDirs();
});

describe("mixed leases", () => {
  it("a short-lease worker waits out the owner's longer lease before taking over", async () => {
    const pool = uniqueId("mixlease");
    // The short-lease daemon comes first, so the pool's consumer redelivers after 1 s.
    const first = await startDaemon(nats.url, { lease: "1s", pools: [pool], runners: ["command"] });
    await first.stop();
    const owner = await spawnMeshd([
      ...["--nats", nats.url, "--pools", pool, "--slots", "1", "--lease", "8s", "--name", "longlease"],
      ...["--presence-interval", "500ms", "--runners", "command", "--no-http", "--log-level", "warn"],
    ]);
    children.push(owner);
    await waitFor(
      async () =>
        (await client.api.listWorkers()).some((w) => w.name === "longlease" && w.pools.includes(pool)),
      { name: "the 8 s-lease owner present", timeoutMs: 30_000 },
    );
    const go = join(await makeTempDir("mixlease-"), "go");
    const spec = nodeTask(
      `const fs = require("fs"); setInterval(() => { if (fs.existsSync(${JSON.stringify(go)})) process.exit(0); }, 50);`,
      { pool, maxAttempts: 3 },
    );
    await client.api.submit([spec]);
    const running = await waitForState(client.api, spec.id, ["running"]);
    expect(running.record.owner?.workerId).toMatch(/^longlease-/);
    const taker = await startDaemon(nats.url, { lease: "1s", pools: [pool], runners: ["command"] });
    try {
      owner.kill("SIGSTOP");
      // Prove the 1 s-lease worker does NOT take over within 4 s of silence (the owner's lease is 8 s).
      await pause(4000);
      const mid = await client.api.getTask(spec.id);
      expect(mid.record.attempt).toBe(1);
      expect(mid.record.countedFailures).toBe(0);
      expect(mid.record.owner?.workerId).toMatch(/^longlease-/);
      owner.kill("SIGCONT");
      await writeFile(go, "");
      const done = await waitForState(client.api, spec.id, ["succeeded", "failed", "dead"]);
      expect(done.record.state).toBe("succeeded");
      expect(done.record.attempt).toBe(1);
      expect(done.record.countedFailures).toBe(0);
      expect(existsSync(go)).toBe(true);
    } finally {
      owner.kill("SIGCONT");
      await taker.stop();
    }
  }, 60_000);
});
