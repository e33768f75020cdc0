// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * A daemon counts itself live while it runs, whatever its presence key says at the moment: its
 * own views (the API, `mesh workers`, `mesh task`) must not show its own running task lost when
 * one presence update is late or gone (a busy moment, a key removed). A real meshd child with a
 * long presence interval, the built CLI, and its presence key deleted from outside.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { WORKERS_BUCKET } from "../daemon/nats/names.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { MESH_BIN, openClient, spawnMeshd } from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

describe("a daemon's own liveness", () => {
  it("its running task stays working in its own views while its presence key is gone", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const dir = await makeTempDir("self-live-");
    const cfg = join(dir, "meshd.json");
    // Presence every 30 s: a deleted key stays deleted for the rest of the test.
    await writeFile(
      cfg,
      JSON.stringify({ name: "selfie", lease: "20s", presenceInterval: "30s", http: { enabled: false } }),
    );
    const p = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", "warn"]);
    cleanup.push(() => p.kill("SIGKILL"));
    const socket = join(p.stateDir, "meshd.sock");
    await waitFor(() => existsSync(socket), { name: "the socket", timeoutMs: 60_000 });
    const mesh = async (args: string[]) => {
      const r = await execa(process.execPath, [MESH_BIN, ...args, "--json"], {
        reject: false,
        env: { NO_COLOR: "1", MESH_DAEMON: socket },
      });
      expect(r.exitCode, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as any;
    };

    const gate = join(dir, "go");
    const task = nodeTask(
      `const f=${JSON.stringify(gate)};const t=setInterval(()=>{if(require("fs").existsSync(f))clearInterval(t)},20)`,
    );
    await client.api.submit([task]);
    await waitFor(async () => (await mesh(["task", task.id])).task.status?.kind === "working", {
      name: "the task working",
      timeoutMs: 60_000,
    });
    const [me] = (await mesh(["workers"])).workers as any[];
    expect(me.name).toBe("selfie");

    // Its presence key is removed; another reader sees it gone (the deletion is in effect).
    const nc = await connect({ servers: nats.url });
    cleanup.push(() => nc.close());
    const kv = await new Kvm(nc).open(WORKERS_BUCKET);
    await kv.delete(me.workerId);
    await waitFor(async () => (await kv.get(me.workerId))?.operation === "DEL", {
      name: "the key deleted",
      timeoutMs: 10_000,
    });
    // A key written after the delete: once the daemon lists it, its directory has had the
    // delete (its watch delivers in order).
    const now = new Date().toISOString();
    const probe = {
      v: 1,
      workerId: "probe-1",
      name: "probe",
      host: "elsewhere",
      pools: ["none"],
      labels: {},
      runners: ["command"],
      slotsTotal: 1,
      slotsFree: 1,
      running: [],
      version: "test",
      startedAt: now,
      updatedAt: now,
      staleAfterMs: 600_000,
    };
    await kv.put(probe.workerId, JSON.stringify(probe));
    await waitFor(async () => (await mesh(["workers"])).workers.some((w: any) => w.name === "probe"), {
      name: "the daemon lists the probe",
      timeoutMs: 10_000,
    });
    // A listing through the daemon still shows itself, and its task working, not lost ("worker
    // left the mesh").
    expect((await mesh(["workers"])).workers.map((w: any) => w.name)).toEqual(["probe", "selfie"]);
    expect((await mesh(["task", task.id])).task.status).toMatchObject({ kind: "working" });
    expect((await mesh(["tasks"])).tasks.find((t: any) => t.id === task.id)?.status).toMatchObject({
      kind: "working",
    });

    await writeFile(gate, "");
    await waitFor(async () => (await mesh(["task", task.id])).task.state === "succeeded", {
      name: "the task succeeded",
      timeoutMs: 60_000,
    });
  }, 120_000);
});
