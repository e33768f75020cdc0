// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * Wall clocks that jump, or differ between machines. Each meshd runs under libfaketime (its wall
 * clock set by a file the test writes; its monotonic clock left alone), beside a real
 * nats-server: a daemon whose clock jumps forward in the middle of a run keeps its lease (no
 * self-fence, no takeover, one attempt), daemons whose clocks are minutes apart list each other
 * as live, and one whose clock runs ahead is dropped as soon as it dies, not minutes later.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { MESH_BIN, type MeshdProcess, openClient, spawnMeshd } from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";

const FAKETIME_LIBS = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
  "/usr/lib/faketime/libfaketimeMT.so.1",
];
const LIB = FAKETIME_LIBS.find((p) => existsSync(p));

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

interface Host {
  name: string;
  proc: MeshdProcess;
  /** Sets this daemon's wall clock to the real one plus `offset` (libfaketime's "+120s"). */
  setClock(offset: string): Promise<void>;
  socket: string;
}

async function startHost(url: string, cfg: string, name: string, offset: string): Promise<Host> {
  const dir = await makeTempDir(`clock-${name}-`);
  const clockFile = join(dir, "faketime");
  await writeFile(clockFile, `${offset}\n`);
  const proc = await spawnMeshd(["-c", cfg, "--nats", url, "--name", name], {
    LD_PRELOAD: LIB!,
    FAKETIME_TIMESTAMP_FILE: clockFile,
    FAKETIME_CACHE_DURATION: "1",
    DONT_FAKE_MONOTONIC: "1",
  });
  cleanup.push(() => proc.kill("SIGKILL"));
  return {
    name,
    proc,
    setClock: (o) => writeFile(clockFile, `${o}\n`),
    socket: join(proc.stateDir, "meshd.sock"),
  };
}

async function workersSeenBy(h: Host): Promise<string[]> {
  const r = await execa(process.execPath, [MESH_BIN, "workers", "--json"], {
    reject: false,
    env: { NO_COLOR: "1", MESH_DAEMON: h.socket },
  });
  if (r.exitCode !== 0) throw new Error(`mesh workers via ${h.name}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as any;
  const list: any[] = Array.isArray(out) ? out : out.workers;
  return list.map((w) => w.name as string).sort();
}

describe.runIf(LIB !== undefined)("wall clocks that jump or differ (libfaketime)", () => {
  it("keeps a lease through a forward jump, lists daemons whose clocks differ, and drops one that runs ahead when it dies", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const client = await openClient([nats.url]);
    cleanup.push(() => client.close());
    const dir = await makeTempDir("clock-cfg-");
    const cfg = join(dir, "meshd.json");
    await writeFile(
      cfg,
      JSON.stringify({
        pools: ["cj"],
        slots: 1,
        lease: "2s",
        presenceInterval: "300ms",
        logLevel: "info",
        http: { enabled: false },
      }),
    );
    const hosts = [await startHost(nats.url, cfg, "ja", "+0"), await startHost(nats.url, cfg, "jb", "+0")];
    await waitFor(() => client.api.listWorkers().then((ws) => ws.length === 2), {
      name: "two workers up",
      timeoutMs: 60_000,
    });

    // A task that runs until the test creates `gate`.
    const gate = join(dir, "go");
    const task = nodeTask(
      `const f=${JSON.stringify(gate)};const t=setInterval(()=>{if(require("fs").existsSync(f))clearInterval(t)},20)`,
      { pool: "cj" },
    );
    await client.api.submit([task]);
    const running = await waitFor(
      async () => {
        const v = await client.store.get(task.id);
        return v?.record.state === "running" && v;
      },
      { name: "the task running", timeoutMs: 60_000 },
    );
    const ownerId = running.record.owner!.workerId;
    const owner = hosts.find((h) => ownerId.startsWith(`${h.name}-`))!;
    const other = hosts.find((h) => h !== owner)!;

    // The owner's wall clock jumps two minutes forward: 60 leases. Its heartbeats carry the new
    // clock; five more of them, still attempt 1 by the same owner, show the lease went on past
    // the moment a wall-clock watchdog would have fenced it (0.6 of a lease of "silence").
    await owner.setClock("+120s");
    const jumped = await waitFor(
      async () => {
        const v = await client.store.get(task.id);
        if (v?.record.owner?.workerId !== ownerId || v.record.attempt !== 1 || v.record.state !== "running")
          throw new Error(`the lease did not survive the jump: ${JSON.stringify(v?.record)}`);
        const beat = Date.parse(v.record.heartbeatAt ?? "");
        return beat > Date.now() + 60_000 && v;
      },
      { name: "a heartbeat stamped by the jumped clock", timeoutMs: 30_000 },
    );
    await waitFor(
      async () => {
        const v = await client.store.get(task.id);
        if (v?.record.owner?.workerId !== ownerId || v.record.attempt !== 1 || v.record.state !== "running")
          throw new Error(`the lease did not survive the jump: ${JSON.stringify(v?.record)}`);
        return v.revision >= jumped.revision + 5;
      },
      { name: "five heartbeats after the jump", timeoutMs: 30_000 },
    );

    // The other daemon's clock is now set five minutes ahead: three minutes ahead of the owner's.
    await other.setClock("+300s");
    // Both still list both: each judges the other's silence on its own monotonic clock. A dozen
    // heartbeats of the owner past the first jump (seconds, many presence updates each) come first.
    await waitFor(
      async () => {
        const v = await client.store.get(task.id);
        return (v?.revision ?? 0) >= jumped.revision + 12;
      },
      { name: "several more heartbeats of the owner", timeoutMs: 30_000 },
    );
    for (const h of hosts) expect(await workersSeenBy(h), `the workers ${h.name} lists`).toEqual(["ja", "jb"]);

    // The task ends as it would have without any jump: one attempt, succeeded, on its owner.
    await writeFile(gate, "");
    const done = await waitFor(
      async () => {
        const v = await client.store.get(task.id);
        return v?.record.state === "succeeded" && v.record;
      },
      { name: "the task succeeded", timeoutMs: 60_000 },
    );
    expect(done.attempts.map((a) => [a.attempt, a.workerId, a.outcome])).toEqual([[1, ownerId, "succeeded"]]);
    expect(owner.proc.stderr()).not.toMatch(/self-fenced/);

    // The daemon whose clock runs furthest ahead dies: the other stops listing it once its
    // silence passes its staleness (seconds), not when its future-dated stamp would (minutes).
    const ahead = other;
    const behind = owner;
    ahead.proc.kill("SIGKILL");
    await ahead.proc.exited;
    await waitFor(async () => (await workersSeenBy(behind)).join() === behind.name, {
      name: `${behind.name} no longer lists ${ahead.name}`,
      timeoutMs: 30_000,
    });
  }, 180_000);
});
