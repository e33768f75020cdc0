// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
// Growth bounds against a real nats-server: the events stream keeps under its byte limit, a
// full task bucket refuses submits with RESOURCE_EXHAUSTED (to the CLI, as a child process,
// against the built `meshd`) while work already running still finishes, and one attempt's
// agent events are capped on the bus (the real Claude Code against the mock Messages API).
// Needs `npm run build` first.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, type Daemon, isMeshError, type TaskEvent } from "../daemon/index.js";
import { MeshMetrics } from "../daemon/metrics/index.js";
import { EVENTS_STREAM, TASKS_BUCKET_STREAM } from "../daemon/nats/names.js";
import { EventCap } from "../daemon/runner/event-cap.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { MeshServiceClient } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  startMockAnthropic,
  writeFile as writeTool,
} from "./mock-anthropic/index.js";
import {
  MESH_BIN,
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  startDaemon,
  waitForState,
} from "./support/mesh.js";

const SMALL = 64 * 1024;
let nats: NatsServer;
let client: MeshClient;
let work: string;
let meshd: MeshdProcess;
let socket: string;
const daemons: Daemon[] = [];

async function mesh(args: string[]) {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    env: { NO_COLOR: "1", MESH_DAEMON: socket },
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function specFile(name: string, tasks: unknown[]): Promise<string> {
  const path = join(work, name);
  await writeFile(path, JSON.stringify({ tasks }));
  return path;
}

async function streamInfo(name: string) {
  const jsm = await jetstreamManager(client.nc);
  return jsm.streams.info(name);
}

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  // The client makes the streams first, with the default limits: meshd must apply its own.
  client = await openClient(nats.url);
  work = await makeTempDir("limits-");
  const cfg = join(work, "meshd.json");
  await writeFile(
    cfg,
    JSON.stringify({
      presenceInterval: "500ms",
      runners: ["command"],
      http: { enabled: false },
      limits: { eventsMaxBytes: SMALL, tasksMaxBytes: SMALL },
    }),
  );
  meshd = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", "info"]);
  socket = join(meshd.stateDir, "meshd.sock");
  await waitFor(() => existsSync(socket), { name: "meshd socket", timeoutMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(daemons.map((d) => d.stop(2_000)));
  meshd?.kill("SIGTERM");
  await meshd?.exited;
  await client?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

describe("the limits config section", () => {
  it("takes sizes as text or bytes, and refuses a bad one naming the field", () => {
    const c = compileConfig({
      limits: { submitMaxBytes: "1MiB", tasksMaxBytes: 131072, eventsMaxAge: "1d" },
    });
    expect(c.limits).toMatchObject({
      submitMaxBytes: 1024 * 1024,
      tasksMaxBytes: 131072,
      eventsMaxAge: 86_400_000,
      eventsMaxBytes: 1024 ** 3,
      agentEventsPerAttempt: 5000,
    });
    for (const [field, value] of [
      ["submitMaxBytes", "lots"],
      ["tasksMaxBytes", "1KiB"],
      ["agentEventsPerAttempt", 0],
    ] as const) {
      let err: unknown;
      try {
        compileConfig({ limits: { [field]: value } });
      } catch (e) {
        err = e;
      }
      expect(isMeshError(err, "INVALID_ARGUMENT") && err.field).toBe(`limits.${field}`);
    }
  });
});

describe("EventCap", () => {
  it("stops at the byte cap too: one marker, the rest dropped, the first result still sent", () => {
    const cap = new EventCap({ maxEvents: 1000, maxBytes: 1000 });
    const verdicts = Array.from({ length: 5 }, () => cap.admit("assistant_text", 400));
    expect(verdicts).toEqual(["send", "send", "truncate", "drop", "drop"]);
    expect(cap.admit("result", 400)).toBe("send");
    expect(cap.admit("result", 400)).toBe("drop");
    expect(cap.dropped).toBe(4);
    expect(cap.marker()).toMatchObject({ afterEvents: 2, afterBytes: 800, maxBytes: 1000 });
  });
});

describe("bounded growth", { timeout: 180_000 }, () => {
  it("existing streams take meshd's configured limits", async () => {
    const events = await streamInfo(EVENTS_STREAM);
    expect(events.config.max_bytes).toBe(SMALL);
    expect(events.config.discard).toBe("old");
    const tasks = await streamInfo(TASKS_BUCKET_STREAM);
    expect(tasks.config.max_bytes).toBe(SMALL);
    expect(tasks.config.discard).toBe("new");
  });

  it("the events stream stays under its byte limit, dropping its oldest events", async () => {
    const js = "for (let i = 0; i < 1000; i++) console.log(('line ' + i).padEnd(200, 'x'))";
    const file = await specFile("chatty.json", [
      { id: "chatty", runner: "command", prompt: "p", command: ["node", "-e", js] },
    ]);
    expect((await mesh(["submit", file])).code).toBe(0);
    await waitForState(client.api, "chatty", ["succeeded"], 60_000);
    // 1000 log events (the command runner's own cap) of ~300 bytes went out; the stream holds
    // what fits in 64 KiB.
    await waitFor(async () => (await streamInfo(EVENTS_STREAM)).state.last_seq > 1000, {
      name: "the task's log events stored",
      timeoutMs: 30_000,
    });
    const info = await streamInfo(EVENTS_STREAM);
    expect(info.state.bytes).toBeLessThanOrEqual(SMALL);
    expect(info.state.first_seq).toBeGreaterThan(1);
  });

  it("a full task bucket refuses submits with RESOURCE_EXHAUSTED; running work still finishes", async () => {
    const release = join(work, "release");
    const waiter = `const f=${JSON.stringify(release)};const t=setInterval(()=>{if(require("fs").existsSync(f))clearInterval(t)},20)`;
    const running = await specFile("running.json", [
      { id: "held", runner: "command", prompt: "p", command: ["node", "-e", waiter] },
    ]);
    expect((await mesh(["submit", running])).code).toBe(0);
    await waitForState(client.api, "held", ["running"], 30_000);

    // Tasks no worker serves stay queued and keep their records: 4 KiB prompts fill 64 KiB fast.
    const queued = (id: string) => ({ id, pool: "nobody", runner: "noop", prompt: "q".repeat(4096) });
    // A batch that cannot fit is refused whole: none of it is submitted.
    const batch = await specFile(
      "batch.json",
      Array.from({ length: 20 }, (_, i) => queued(`batch-${i}`)),
    );
    const whole = await mesh(["--json", "submit", batch]);
    expect(whole.code).toBe(5);
    expect(JSON.parse(whole.stderr.trim().split("\n").at(-1) ?? "{}").error.code).toBe("RESOURCE_EXHAUSTED");
    for (let i = 0; i < 20; i++) expect(await client.store.get(`batch-${i}`)).toBeUndefined();

    // One at a time (over gRPC, quicker than a CLI per task) until the bucket is full.
    const grpc = new MeshServiceClient(`unix:${socket}`, credentials.createInsecure());
    const submitOne = (id: string) =>
      new Promise<ServiceError | undefined>((resolve) =>
        grpc.submitTasks({ document: JSON.stringify(queued(id)), source: id }, (e) =>
          resolve(e ?? undefined),
        ),
      );
    let accepted = 0;
    let full: ServiceError | undefined;
    for (let i = 0; i < 40 && !full; i++) {
      full = await submitOne(`one-${i}`);
      if (!full) accepted++;
    }
    grpc.close();
    expect(accepted).toBeGreaterThan(0);
    expect(full, "the bucket never filled").toBeDefined();
    expect(full?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await client.store.get(`one-${accepted}`)).toBeUndefined();
    // The CLI says so, with the limit's name and exit 5.
    const refused = await mesh(["--json", "submit", await specFile("last.json", [queued("last")])]);
    const err = JSON.parse(refused.stderr.trim().split("\n").at(-1) ?? "{}").error;
    expect(refused.code).toBe(5);
    expect(err.code).toBe("RESOURCE_EXHAUSTED");
    expect(err.message).toContain("limits.tasksMaxBytes");
    expect(await client.store.get("last")).toBeUndefined();

    // Still serving: reads work, and the running task records its finish in the headroom.
    const list = await mesh(["--json", "tasks", "--pool", "nobody"]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).tasks).toHaveLength(accepted);
    await writeFile(release, "");
    const done = await waitForState(client.api, "held", ["succeeded", "failed", "dead"], 30_000);
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempts).toHaveLength(1);
    const tasks = await streamInfo(TASKS_BUCKET_STREAM);
    expect(tasks.state.bytes).toBeLessThanOrEqual(SMALL);
  });
});

describe("per-attempt agent event cap (real Claude Code, mock API)", { timeout: 180_000 }, () => {
  let mock: MockAnthropic;
  let own: NatsServer;
  beforeAll(async () => {
    own = await NatsServer.start();
    // Twelve tool calls, then an answer: ~26 agent events in one attempt.
    mock = await startMockAnthropic({
      script: ({ turn }) =>
        turn < 12 ? writeTool(`f${turn}.txt`, `file ${turn}\n`) : answer("Wrote 12 files."),
    });
  });
  afterAll(async () => {
    await Promise.allSettled(daemons.splice(0).map((d) => d.stop(2_000)));
    await mock?.close();
    await own?.cleanup();
  });

  it("publishes up to the cap, one events_truncated marker and the result; the session goes on", async () => {
    const keyFile = join(work, "key");
    await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    const metrics = new MeshMetrics({ worker: "capped", defaultMetrics: false });
    const d = await startDaemon(
      own.url,
      {
        pools: ["capped"],
        runners: ["claude"],
        slots: 1,
        claude: { command: [CLAUDE_BIN], env: { ANTHROPIC_BASE_URL: mock.url }, apiKeyFile: keyFile },
        limits: { agentEventsPerAttempt: 10 },
      },
      { observer: metrics },
    );
    daemons.push(d);
    const spec = validateTaskSpec({ id: "capped-1", pool: "capped", prompt: "write twelve files" });
    const api = d.api;
    const events: TaskEvent[] = [];
    await api.submit([spec]);
    const ac = new AbortController();
    for await (const e of api.watchTask(spec.id, ac.signal)) events.push(e);

    const r = (await api.getTask(spec.id)).record;
    expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
    expect(r.result?.turns).toBe(13); // the session ran to its end past the cap

    const agent = events.filter(
      (e): e is Extract<TaskEvent, { type: "agent" }> =>
        e.type === "agent" && !["heartbeat", "shim_started"].includes(e.kind),
    );
    const kinds = agent.map((e) => e.kind);
    expect(kinds.filter((k) => k === "events_truncated")).toHaveLength(1);
    expect(kinds.filter((k) => k === "result")).toHaveLength(1);
    const capped = kinds.filter((k) => k !== "events_truncated" && k !== "result");
    expect(capped).toHaveLength(10);

    // The rest were counted, and the agent numbers stay exact (12 Write calls).
    // New series are shown at 0 by one scrape and count from the next (metrics/first-zero.ts).
    await metrics.render();
    const all = await metrics.registry.getMetricsAsJSON();
    const value = (name: string) =>
      (all.find((m) => m.name === name)?.values ?? []).reduce((n, v) => n + Number(v.value), 0);
    expect(value("agentmesh_agent_events_dropped_total")).toBeGreaterThan(10);
    expect(value("agentmesh_agent_tool_calls_total")).toBe(12);
  });
});
