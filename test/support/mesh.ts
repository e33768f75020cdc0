/**
 * Test support: in-process daemons, meshd child processes (the built bin, as users run it),
 * and a submit-only client. All talk to a real nats-server from the harness.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  compileConfig,
  Daemon,
  type DaemonDeps,
  type DaemonPlugin,
  type DaemonOptions,
  type MeshApi,
} from "../../daemon/index.js";
import { createLogger } from "../../daemon/log.js";
import { PlanScheduler, PlanStore } from "../../daemon/plans/index.js";
import { ringDoorbell } from "../../daemon/queue/doorbell.js";
import { ensureTopology } from "../../daemon/queue/topology.js";
import { MeshService } from "../../daemon/service.js";
import { EventPublisher } from "../../daemon/tasks/event-publisher.js";
import { newTaskRecord } from "../../daemon/tasks/record.js";
import type { TaskSpec } from "../../daemon/tasks/spec.js";
import { TaskStore } from "../../daemon/tasks/store.js";
import { spawnChild } from "../../lib/child/index.js";
import { makeTempDir, waitFor } from "../harness/index.js";

const HERE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The repository root, whether this runs from source (vitest) or from dist/ (bench). */
export const REPO_ROOT = HERE_ROOT.endsWith("/dist/") ? HERE_ROOT.slice(0, -"dist/".length) : HERE_ROOT;
export const MESHD_BIN = `${REPO_ROOT}dist/daemon/main.js`;
export const MESH_BIN = `${REPO_ROOT}dist/cli/main.js`;

/**
 * The node flags a bin's shebang line gives (`#!/usr/bin/env -S node --flag ...`): a child started
 * as `process.execPath <bin>` gets them too, so it runs as the installed bin does.
 */
export function shebangNodeFlags(bin: string): string[] {
  const first = readFileSync(bin, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\S*env\s+(?:-S\s+)?node((?:\s+--\S+)*)\s*$/.exec(first);
  return m?.[1] ? m[1].trim().split(/\s+/) : [];
}

/** Fast timings for tests: short lease and presence so takeovers happen in seconds. */
export const FAST = {
  lease: "2s",
  presenceInterval: "500ms",
  retryDelay: "100ms",
  shutdownGrace: "5s",
} as const;

export async function startDaemon(
  natsUrl: string | string[],
  opts: Partial<DaemonOptions> = {},
  deps: DaemonDeps = {},
  /** Plugins meshd adds (e.g. metricsPlugin, which binds a MeshMetrics observer's scrape-time source). */
  plugins: DaemonPlugin[] = [],
): Promise<Daemon> {
  const stateDir = opts.stateDir ?? (await makeTempDir("meshd-"));
  const servers = Array.isArray(natsUrl) ? natsUrl : [natsUrl];
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    http: { enabled: false },
    ...opts,
    nats: { servers, ...(opts.nats ?? {}) },
    stateDir,
  });
  const d = new Daemon(config, deps);
  for (const p of plugins) d.use(p);
  await d.start();
  return d;
}

export interface MeshClient {
  api: MeshApi;
  store: TaskStore;
  nc: NatsConnection;
  close(): Promise<void>;
}

/** A client that can submit and read records without running tasks. */
export async function openClient(
  natsUrl: string | string[],
  opts: {
    replicas?: number;
    duplicateWindowMs?: number;
    domain?: string;
    auth?: { user: string; pass: string };
  } = {},
): Promise<MeshClient> {
  const servers = Array.isArray(natsUrl) ? natsUrl : [natsUrl];
  const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...opts.auth });
  const topo = await ensureTopology(nc, {
    replicas: opts.replicas ?? 1,
    leaseMs: 2000,
    presenceTtlMs: 1500,
    ...(opts.duplicateWindowMs ? { duplicateWindowMs: opts.duplicateWindowMs } : {}),
    ...(opts.domain ? { domain: opts.domain } : {}),
  });
  const log = createLogger("silent");
  const store = new TaskStore(topo);
  const events = new EventPublisher(nc, log);
  const planStore = await PlanStore.open(topo.js, topo.jsm, opts.replicas ?? 1);
  const scheduler = new PlanScheduler({
    store,
    plans: planStore,
    ring: (v, key) => ringDoorbell(topo.publisher, v.record.spec.pool, v.record.id, key, v),
    announce: (r, notices) => events.announce(r, notices, { now: true }),
    log,
  });
  const api = new MeshService({
    nc,
    js: topo.js,
    publisher: topo.publisher,
    jsm: topo.jsm,
    store,
    workersKv: topo.workers,
    events,
    log,
    presenceTtlMs: 1500,
    pollMs: 200,
    plans: { store: planStore, scheduler },
  });
  return {
    api,
    store,
    nc,
    close: async () => {
      await events.flush();
      if (!nc.isClosed()) await nc.close();
    },
  };
}

/**
 * An orphan: `spec`'s record as if it were running on a worker that no longer exists
 * ("ghost-1"), with its doorbell rung, so that a live daemon has to take it over.
 */
export async function plantOrphanedTask(client: MeshClient, spec: TaskSpec): Promise<void> {
  const rec = newTaskRecord(spec, new Date());
  rec.state = "running";
  rec.attempt = 1;
  rec.owner = { workerId: "ghost-1", host: "nowhere" };
  rec.attempts = [{ attempt: 1, workerId: "ghost-1", host: "nowhere", claimedAt: rec.submittedAt }];
  if (!(await client.store.create(rec))) throw new Error(`task ${spec.id} exists already`);
  const topo = await ensureTopology(client.nc, { replicas: 1, leaseMs: 2000, presenceTtlMs: 1500 });
  await ringDoorbell(topo.js, spec.pool, spec.id, `${spec.id}#ghost`);
}

export async function waitForState(api: MeshApi, id: string, states: string[], timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const v = await api.getTask(id);
      return states.includes(v.record.state) ? v : undefined;
    },
    { name: `task ${id} in ${states.join("|")}`, timeoutMs, intervalMs: 50 },
  );
}

export interface MeshdProcess {
  child: ChildProcess;
  stateDir: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs: number): Promise<void>;
}

/** Runs the built `meshd` as a child process. */
export async function spawnMeshd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<MeshdProcess> {
  if (!existsSync(MESHD_BIN)) throw new Error(`${MESHD_BIN} missing: run \`npm run build\` first`);
  const stateDir = args.includes("--state-dir")
    ? args[args.indexOf("--state-dir") + 1]!
    : await makeTempDir("meshd-");
  const fullArgs = args.includes("--state-dir") ? args : [...args, "--state-dir", stateDir];
  // Dies with the test process (a vitest worker stopped mid-test leaves no meshd behind).
  const meshd = spawnChild([process.execPath, ...shebangNodeFlags(MESHD_BIN), MESHD_BIN, ...fullArgs], {
    env: { ...process.env, MESH_STATE_DIR: stateDir, ...env },
    stdout: "ignore",
    parentDeath: "signal",
    group: false,
  });
  const child = meshd.process;
  let err = "";
  child.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = meshd.exited.then(({ exitCode, signal }) => ({ code: exitCode, signal }));
  return {
    child,
    stateDir,
    stderr: () => err,
    exited,
    kill: (s = "SIGTERM") => meshd.signal(s),
    stop: async (graceMs) => void (await meshd.stop(graceMs)),
  };
}
