/**
 * Scenario `presence`: what N idle workers' presence costs a mesh. One real meshd (the defaults
 * a user gets, its HTTP side on a random port) on a nats-server started with a monitoring port,
 * and N simulated workers. Each simulated worker is what a daemon's presence is to the bus: its
 * own NATS connection and the daemon's own `Presence` part (daemon/registry/presence.ts) putting
 * a daemon-shaped WorkerInfo into `mesh-workers` every presence interval (5 s, the default). One
 * connection per worker is what a real mesh has (every daemon connects on its own); it costs the
 * server a connection each, which a few shared connections would hide. A simulated worker has no
 * directory of its own: what a real daemon's directory receives is the meshd's row.
 *
 * Two windows of `seconds` in the same run, first with 0 simulated workers (the baseline), then
 * with N: the meshd's CPU over the window (its worker directory refreshes every presence
 * interval; the rest of an idle daemon is the same in both), `mesh workers --json` and the HTTP
 * `/sd` endpoint (time and size, median of a few calls), and the NATS traffic per connection from
 * the server's `/connz` (messages and bytes per second each way, per idle worker and the meshd's).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  createLogger,
  listWorkers,
  Presence,
  VERSION,
  WORKERS_BUCKET,
  type WorkerInfo,
} from "../daemon/index.js";
import { freePort, makeTempDir, NatsServer, removeTempDir, waitFor } from "../test/harness/index.js";
import { MESH_BIN, type MeshdProcess, shebangNodeFlags, spawnMeshd } from "../test/support/mesh.js";
import { cpuMs, percentile, round } from "./stats.js";

export interface PresenceOptions {
  /** Simulated workers. */
  workers: number;
  /** Length of each measured window. */
  seconds: number;
  /** Calls of `mesh workers --json` and `/sd` per window (the median is reported). */
  calls?: number;
}

const PRESENCE_MS = 5_000;

interface ConnStats {
  name: string;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
}

interface SimWorker {
  nc: NatsConnection;
  presence: Presence;
}

async function connz(monitor: string): Promise<ConnStats[]> {
  const res = await fetch(`${monitor}/connz?limit=100000`);
  const body = (await res.json()) as { connections?: ConnStats[] };
  return body.connections ?? [];
}

async function varz(
  monitor: string,
): Promise<{ in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number }> {
  return (await (await fetch(`${monitor}/varz`)).json()) as {
    in_msgs: number;
    out_msgs: number;
    in_bytes: number;
    out_bytes: number;
  };
}

/** What a daemon with the default runners, four slots and an HTTP side says about itself. */
function simInfo(i: number, startedAt: string): WorkerInfo {
  const id = `sim${String(i).padStart(4, "0")}${"x".repeat(16)}`;
  const url = `http://127.0.0.1:${20_000 + i}`;
  return {
    v: 1,
    workerId: id,
    name: `sim-${i}`,
    host: `host-${i}`,
    pools: ["default"],
    labels: { os: "linux", arch: "x64" },
    runners: ["claude", "command", "noop"],
    slotsTotal: 4,
    slotsFree: 4,
    running: [],
    version: VERSION,
    startedAt,
    updatedAt: new Date().toISOString(),
    staleAfterMs: PRESENCE_MS * 3,
    httpUrl: url,
    httpUrls: [url],
    reach: "loopback",
    account: "default",
  };
}

async function startSim(url: string, i: number): Promise<SimWorker> {
  const nc = await connect({ servers: url, name: `sim-worker ${i}` });
  const kv = await new Kvm(jetstream(nc)).open(WORKERS_BUCKET);
  const startedAt = new Date().toISOString();
  const presence = new Presence(kv, () => simInfo(i, startedAt), PRESENCE_MS, createLogger("warn"));
  await presence.start();
  return { nc, presence };
}

function timeCli(stateDir: string, calls: number): { ms: number; bytes: number; workers: number } {
  const ms: number[] = [];
  let out = "";
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [...shebangNodeFlags(MESH_BIN), MESH_BIN, "workers", "--json"], {
      env: { ...process.env, MESH_STATE_DIR: stateDir, NO_COLOR: "1" },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    ms.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`mesh workers --json exited ${r.status}: ${r.stderr}`);
    out = r.stdout;
  }
  const parsed = JSON.parse(out) as unknown[] | { workers?: unknown[] };
  const list = Array.isArray(parsed) ? parsed : (parsed.workers ?? []);
  return { ms: round(percentile(ms, 50), 1), bytes: Buffer.byteLength(out), workers: list.length };
}

async function timeSd(
  httpUrl: string,
  calls: number,
): Promise<{ ms: number; bytes: number; targets: number }> {
  const ms: number[] = [];
  let body = "";
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const res = await fetch(`${httpUrl}/sd`);
    body = await res.text();
    ms.push(performance.now() - t0);
    if (!res.ok) throw new Error(`/sd answered ${res.status}: ${body.slice(0, 200)}`);
  }
  return {
    ms: round(percentile(ms, 50), 1),
    bytes: Buffer.byteLength(body),
    targets: (JSON.parse(body) as unknown[]).length,
  };
}

type Traffic = { msgsPerS: number; bytesPerS: number; inMsgsPerS: number; outMsgsPerS: number };

function traffic(a: ConnStats | undefined, b: ConnStats | undefined, seconds: number): Traffic {
  const d = (k: keyof Omit<ConnStats, "name">) => ((b?.[k] ?? 0) - (a?.[k] ?? 0)) / seconds;
  return {
    msgsPerS: round(d("in_msgs") + d("out_msgs"), 3),
    bytesPerS: round(d("in_bytes") + d("out_bytes"), 1),
    inMsgsPerS: round(d("in_msgs"), 3),
    outMsgsPerS: round(d("out_msgs"), 3),
  };
}

export async function presenceScenario(opts: PresenceOptions) {
  const calls = opts.calls ?? 5;
  const monitorPort = await freePort();
  const server = await NatsServer.start({ extraConfig: `http: "127.0.0.1:${monitorPort}"` });
  const monitor = `http://127.0.0.1:${monitorPort}`;
  const stateDir = await makeTempDir("presence-");
  const sims: SimWorker[] = [];
  let meshd: MeshdProcess | undefined;
  const nc = await connect({ servers: server.url, name: "bench observer" });
  try {
    meshd = await spawnMeshd([
      "--nats",
      server.url,
      "--state-dir",
      stateDir,
      "--name",
      "bench-presence",
      "--log-level",
      "warn",
    ]);
    const pid = meshd.child.pid!;
    await waitFor(() => existsSync(join(stateDir, "meshd.sock")), { name: "meshd up", timeoutMs: 60_000 });
    const js = jetstream(nc);
    const kv = await new Kvm(js).open(WORKERS_BUCKET);
    const jsm = await jetstreamManager(nc);
    const self = await waitFor(
      async () =>
        (await listWorkers(kv, jsm, PRESENCE_MS * 3)).find((w) => w.name === "bench-presence" && w.httpUrl),
      { name: "meshd presence with its HTTP URL", timeoutMs: 30_000 },
    );
    const httpUrl = self.httpUrl!;

    const measure = async (workers: number) => {
      // Settle: start-up (or the workers' joining) is not idle work; two presence intervals.
      await new Promise((r) => setTimeout(r, 2 * PRESENCE_MS));
      const c0 = new Map((await connz(monitor)).map((c) => [c.name, c]));
      const v0 = await varz(monitor);
      const cpu0 = cpuMs(pid);
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, opts.seconds * 1000));
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuMs(pid) - cpu0;
      const c1 = new Map((await connz(monitor)).map((c) => [c.name, c]));
      const v1 = await varz(monitor);
      // The calls come after the idle window so that they do not count in it.
      const cli = timeCli(stateDir, calls);
      const sd = await timeSd(httpUrl, calls);
      const simNames = [...c1.keys()].filter((n) => n.startsWith("sim-worker "));
      const per = simNames.map((n) => traffic(c0.get(n), c1.get(n), seconds));
      const meshdName = [...c1.keys()].find((n) => n.startsWith("meshd "));
      const med = (k: keyof Traffic) =>
        round(
          percentile(
            per.map((p) => p[k]),
            50,
          ),
          3,
        );
      return {
        workers,
        seconds: round(seconds, 1),
        meshdCpuPct: round((cpu / (seconds * 1000)) * 100, 3),
        meshdCpuMsPerS: round(cpu / seconds, 2),
        workersCliMs: cli.ms,
        workersCliBytes: cli.bytes,
        workersListed: cli.workers,
        sdMs: sd.ms,
        sdBytes: sd.bytes,
        sdTargets: sd.targets,
        perWorkerMsgsPerS: per.length > 0 ? med("msgsPerS") : 0,
        perWorkerBytesPerS:
          per.length > 0
            ? round(
                percentile(
                  per.map((p) => p.bytesPerS),
                  50,
                ),
                1,
              )
            : 0,
        meshdConn: meshdName ? traffic(c0.get(meshdName), c1.get(meshdName), seconds) : undefined,
        serverMsgsPerS: round((v1.in_msgs - v0.in_msgs + v1.out_msgs - v0.out_msgs) / seconds, 1),
        serverBytesPerS: round((v1.in_bytes - v0.in_bytes + v1.out_bytes - v0.out_bytes) / seconds, 0),
      };
    };

    const baseline = await measure(0);
    for (let i = 0; i < opts.workers; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, opts.workers - i) }, (_, j) => startSim(server.url, i + j)),
      );
      sims.push(...batch);
    }
    const loaded = await measure(opts.workers);
    const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : Number.NaN);
    const rows = [baseline, loaded].map((r) => ({
      workers: r.workers,
      meshdCpuPct: r.meshdCpuPct,
      cliMs: r.workersCliMs,
      cliKb: round(r.workersCliBytes / 1024, 1),
      sdMs: r.sdMs,
      sdKb: round(r.sdBytes / 1024, 1),
      sdTargets: r.sdTargets,
      perWorkerMsgsPerS: r.perWorkerMsgsPerS,
      perWorkerBytesPerS: r.perWorkerBytesPerS,
      meshdMsgsPerS: r.meshdConn?.msgsPerS ?? 0,
      meshdBytesPerS: r.meshdConn?.bytesPerS ?? 0,
      serverMsgsPerS: r.serverMsgsPerS,
    }));
    return {
      scenario: "presence",
      workers: opts.workers,
      seconds: opts.seconds,
      presenceIntervalMs: PRESENCE_MS,
      connections: "one NATS connection per simulated worker",
      rows,
      ratios: {
        meshdCpu: ratio(loaded.meshdCpuMsPerS, baseline.meshdCpuMsPerS),
        workersCliMs: ratio(loaded.workersCliMs, baseline.workersCliMs),
        sdMs: ratio(loaded.sdMs, baseline.sdMs),
        meshdConnMsgs: ratio(loaded.meshdConn?.msgsPerS ?? 0, baseline.meshdConn?.msgsPerS ?? 0),
      },
      extraMeshdCpuPctPerWorker: round(
        (loaded.meshdCpuPct - baseline.meshdCpuPct) / Math.max(1, opts.workers),
        5,
      ),
      measurements: { baseline, loaded },
      machine: { loadAverage: loadavg().map((x) => round(x, 2)) },
    };
  } finally {
    await Promise.all(sims.map((s) => s.presence.stop().catch(() => undefined)));
    await Promise.all(sims.map((s) => s.nc.close().catch(() => undefined)));
    await nc.close().catch(() => undefined);
    await meshd?.stop(30_000);
    await server.cleanup();
    await removeTempDir(stateDir);
  }
}
