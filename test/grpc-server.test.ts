// Transport mechanics of the daemon's gRPC server, against a small in-test MeshApi: status
// mapping, deadlines, cancellation, backpressure, socket hygiene, TLS + token, health and
// reflection. The real daemon behind the same server is covered end to end in cli.test.ts.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { lstat, stat, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { connect, createServer, type Server as NetServer } from "node:net";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  type ChannelCredentials,
  type Client,
  type ClientReadableStream,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MeshApi, MeshEvent, TaskFilter, TaskView } from "../daemon/api/mesh-api.js";
import { MeshError } from "../daemon/errors.js";
import type { WorkerInfo } from "../daemon/registry/worker-info.js";
import { GrpcServer } from "../daemon/servers/grpc-server.js";
import type { TaskEvent } from "../daemon/tasks/events.js";
import { newTaskRecord } from "../daemon/tasks/record.js";
import type { TaskSpec } from "../daemon/tasks/spec.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import {
  MeshServiceClient,
  TaskState,
  type WatchMeshResponse,
  WatchTaskRequest,
  type WatchTaskResponse,
} from "../proto/index.js";
import { makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { selfSignedCert } from "./support/tls.js";

// ---------------------------------------------------------------- the in-test MeshApi

const WORKER: WorkerInfo = {
  v: 1,
  workerId: "w-1",
  name: "one",
  host: "host-1",
  pools: ["default"],
  labels: { gpu: "true" },
  runners: ["command"],
  slotsTotal: 2,
  slotsFree: 1,
  running: ["t-run"],
  version: "0.0.0-test",
  startedAt: "2025-01-01T00:00:00.000Z",
  updatedAt: "2025-01-01T00:00:05.000Z",
};

function view(id: string): TaskView {
  const spec: TaskSpec = validateTaskSpec({
    id,
    prompt: "p",
    runner: "command",
    command: ["true"],
    title: `T ${id}`,
  }) as TaskSpec;
  const record = newTaskRecord(spec, new Date("2025-01-01T00:00:00Z"));
  record.state = "failed";
  record.attempt = 1;
  record.owner = { workerId: "w-1", host: "host-1" };
  record.attempts = [
    {
      attempt: 1,
      workerId: "w-1",
      host: "host-1",
      claimedAt: record.submittedAt,
      outcome: "failed",
      exitCode: 3,
      reason: "exit 3",
    },
  ];
  record.result = {
    costUsd: 0.25,
    tokens: { input: 1, output: 2, cacheRead: 3, cacheCreation: 4 },
    turns: 5,
    branch: "b",
  };
  return { record, revision: 7, unschedulable: "no worker" };
}

/** Pending forever unless aborted: the stand-in for a live stream with nothing new. */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

class FakeApi implements MeshApi {
  lastFilter: TaskFilter | undefined;
  submitted: TaskSpec[][] = [];
  /** Signals handed to watch calls, by watch id, so tests can see them abort. */
  signals = new Map<string, AbortSignal>();
  produced = new Map<string, number>();
  finished = new Set<string>();

  async submit(specs: TaskSpec[]) {
    this.submitted.push(specs);
    return specs.map((s, i) => ({ id: s.id, created: i === 0, state: "queued" as const }));
  }
  async listWorkers() {
    return [WORKER];
  }
  async submitPlan(): Promise<never> {
    throw new MeshError("FAILED_PRECONDITION", "no plans here");
  }
  async getPlan(id: string): Promise<never> {
    throw new MeshError("NOT_FOUND", `no plan with id "${id}"`);
  }
  async listPlans() {
    return [];
  }
  async getTask(id: string): Promise<TaskView> {
    if (id === "slow") return new Promise<TaskView>(() => {});
    if (id === "missing") throw new MeshError("NOT_FOUND", `no task with id "${id}"`);
    return view(id);
  }
  async listTasks(filter?: TaskFilter) {
    this.lastFilter = filter;
    return { tasks: [view("a"), view("b")], unreadable: [] };
  }
  taskHistory(id: string, signal: AbortSignal): AsyncIterable<TaskEvent> {
    return this.watchTask(id, signal);
  }
  async *watchTask(id: string, signal: AbortSignal): AsyncIterable<TaskEvent> {
    this.signals.set(id, signal);
    try {
      if (id === "missing") throw new MeshError("NOT_FOUND", `no task with id "${id}"`);
      if (id === "broken") throw new Error("kaboom");
      if (id === "idle") return await untilAborted(signal);
      if (id === "flood") {
        const line = "x".repeat(2048);
        for (let n = 0; !signal.aborted; n++) {
          this.produced.set(id, n + 1);
          yield {
            type: "log",
            taskId: id,
            at: new Date().toISOString(),
            attempt: 1,
            workerId: "w-1",
            stream: "stdout",
            line,
          };
          // let I/O run, as a NATS-fed iterator would
          await new Promise((r) => setImmediate(r));
        }
        return;
      }
      const at = "2025-01-01T00:00:00.000Z";
      yield { type: "state", taskId: id, at, attempt: 0, state: "queued" };
      yield { type: "state", taskId: id, at, attempt: 1, workerId: "w-1", state: "running" };
      yield { type: "log", taskId: id, at, attempt: 1, workerId: "w-1", stream: "stdout", line: "hello" };
      yield {
        type: "agent",
        taskId: id,
        at,
        attempt: 1,
        workerId: "w-1",
        kind: "tool",
        data: { name: "Bash" },
      };
      yield {
        type: "state",
        taskId: id,
        at,
        attempt: 1,
        workerId: "w-1",
        state: "succeeded",
        reason: "done",
      };
    } finally {
      this.finished.add(id);
    }
  }
  async *watchMesh(signal: AbortSignal): AsyncIterable<MeshEvent> {
    this.signals.set("mesh", signal);
    try {
      yield { type: "worker_joined", worker: WORKER };
      yield { type: "worker_left", workerId: "w-2", at: "2025-01-01T00:00:09.000Z" };
      await untilAborted(signal);
    } finally {
      this.finished.add("mesh");
    }
  }
  async cancel(id: string): Promise<TaskView> {
    if (id === "done") throw new MeshError("FAILED_PRECONDITION", `task ${id} already finished (succeeded)`);
    return view(id);
  }
  async retry(_id: string): Promise<TaskView> {
    throw new Error("unexpected bug");
  }
}

// ---------------------------------------------------------------- client helpers

type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  opts: { deadline?: number },
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

function call<Req, Res>(
  fn: Unary<Req, Res>,
  client: Client,
  req: Req,
  opts: { deadline?: number; md?: Metadata } = {},
) {
  return new Promise<Res>((resolve, reject) => {
    fn.call(
      client,
      req,
      opts.md ?? new Metadata(),
      { deadline: opts.deadline ?? Date.now() + 20_000 },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to fail");
}

async function collect<T>(stream: ClientReadableStream<T>): Promise<{ items: T[]; error?: ServiceError }> {
  const items: T[] = [];
  try {
    for await (const m of stream) items.push(m as T);
    return { items };
  } catch (err) {
    return { items, error: err as ServiceError };
  }
}

function meshClient(
  address: string,
  creds: ChannelCredentials = credentials.createInsecure(),
): MeshServiceClient {
  // TLS to 127.0.0.1: check the certificate's DNS name, not the IP (avoids Node's DEP0123 warning)
  return new MeshServiceClient(address, creds, { "grpc.ssl_target_name_override": "localhost" });
}

// ---------------------------------------------------------------- suite

const servers: GrpcServer[] = [];
const clients: Client[] = [];
let dir: string;

beforeAll(async () => {
  dir = await makeTempDir("mesh-grpc-");
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await removeTempDirs();
});

async function startUnix(api: MeshApi, name: string, extra: { maxStreamBacklog?: number } = {}) {
  const socketPath = join(dir, name, "meshd.sock");
  const server = new GrpcServer(api, { socketPath, shutdownGraceMs: 2_000, ...extra });
  servers.push(server);
  const addr = await server.start();
  const client = meshClient(`unix:${socketPath}`);
  clients.push(client);
  return { server, client, socketPath, addr };
}

describe("unix socket", () => {
  it("creates a private parent dir and a 0600 socket, removed again on stop", async () => {
    const { server, socketPath, addr } = await startUnix(new FakeApi(), "fresh");
    expect(addr).toEqual({ socketPath });
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "fresh"))).mode & 0o777).toBe(0o700);
    await server.stop();
    await server.stop(); // idempotent
    await expect(lstat(socketPath)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("removes a stale socket left by a killed process", async () => {
    const socketPath = join(dir, "stale.sock");
    // A process that binds the socket and is then SIGKILLed leaves the file behind.
    const child = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => console.log("ready"))`,
    ]);
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    expect((await lstat(socketPath)).isSocket()).toBe(true);

    const server = new GrpcServer(new FakeApi(), { socketPath });
    servers.push(server);
    await server.start();
    const client = meshClient(`unix:${socketPath}`);
    clients.push(client);
    const res = await call(client.listWorkers, client, {});
    expect(res.workers[0]?.workerId).toBe("w-1");
  });

  it("refuses to take over a socket another process is serving, or a file that is not a socket", async () => {
    const socketPath = join(dir, "live.sock");
    const other: NetServer = createServer();
    await new Promise<void>((resolve) => other.listen(socketPath, resolve));
    try {
      const server = new GrpcServer(new FakeApi(), { socketPath });
      await expect(server.start()).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
      await expect(server.start()).rejects.toMatchObject({ code: "FAILED_PRECONDITION" }); // no second start
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
    const filePath = join(dir, "not-a-socket");
    await writeFile(filePath, "keep me");
    await expect(new GrpcServer(new FakeApi(), { socketPath: filePath }).start()).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
    expect((await stat(filePath)).isFile()).toBe(true);
  });
});

describe("MeshService over the socket", () => {
  it("translates every call and maps MeshError codes to gRPC status", async () => {
    const api = new FakeApi();
    const { client } = await startUnix(api, "calls");

    const sub = await call(client.submitTasks, client, {
      document: "- {id: a1, prompt: x}\n- {id: a2, prompt: y}\n",
      source: "tasks.yaml",
    });
    expect(sub.results.map((r) => [r.id, r.created, r.state])).toEqual([
      ["a1", true, TaskState.TASK_STATE_QUEUED],
      ["a2", false, TaskState.TASK_STATE_QUEUED],
    ]);

    const bad = await failure(
      call(client.submitTasks, client, {
        document: "- {id: a1, prompt: x}\n- {id: a2, prompt: y, pool: [not, a, name]}\n",
        source: "t.yaml",
      }),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/^tasks\[1\]\.pool: /);
    expect(bad.metadata.get("mesh-error-code")).toEqual(["INVALID_ARGUMENT"]);
    expect(bad.metadata.get("mesh-error-field")).toEqual(["tasks[1].pool"]);
    expect(api.submitted).toHaveLength(1); // the invalid batch never reached the api

    const empty = await failure(call(client.submitTasks, client, { document: "  ", source: "" }));
    expect(empty.code).toBe(status.INVALID_ARGUMENT);

    const { task } = await call(client.getTask, client, { id: "t-9" });
    expect(task).toMatchObject({
      id: "t-9",
      title: "T t-9",
      state: TaskState.TASK_STATE_FAILED,
      pool: "default",
      runner: "command",
      attempt: 1,
      maxAttempts: 3,
      ownerWorkerId: "w-1",
      ownerHost: "host-1",
      unschedulableReason: "no worker",
      revision: 7,
      result: {
        costUsd: 0.25,
        tokens: { input: 1, output: 2, cacheRead: 3, cacheCreation: 4 },
        turns: 5,
        branch: "b",
      },
    });
    expect(task?.attempts[0]).toMatchObject({ attempt: 1, outcome: "failed", exitCode: 3, reason: "exit 3" });
    expect(JSON.parse(task?.recordJson ?? "{}").spec.prompt).toBe("p");

    const nf = await failure(call(client.getTask, client, { id: "missing" }));
    expect([nf.code, nf.details]).toEqual([status.NOT_FOUND, 'no task with id "missing"']);
    const noId = await failure(call(client.getTask, client, { id: "" }));
    expect(noId.code).toBe(status.INVALID_ARGUMENT);

    const list = await call(client.listTasks, client, {
      states: [TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_DEAD],
      pool: "gpu",
      workerId: "w-1",
      limit: 5,
      plan: "",
    });
    expect(list.tasks.map((t) => t.id)).toEqual(["a", "b"]);
    expect(api.lastFilter).toEqual({ state: ["failed", "dead"], pool: "gpu", workerId: "w-1", limit: 5 });
    await call(client.listTasks, client, { states: [], pool: "", workerId: "", limit: 0, plan: "" });
    expect(api.lastFilter).toEqual({});
    const badState = await failure(
      call(client.listTasks, client, {
        states: [TaskState.TASK_STATE_UNSPECIFIED],
        pool: "",
        workerId: "",
        limit: 0,
        plan: "",
      }),
    );
    expect(badState.code).toBe(status.INVALID_ARGUMENT);

    const workers = await call(client.listWorkers, client, {});
    expect(workers.workers[0]).toMatchObject({
      workerId: "w-1",
      labels: { gpu: "true" },
      slotsTotal: 2,
      running: ["t-run"],
    });

    const pre = await failure(call(client.cancelTask, client, { id: "done" }));
    expect([pre.code, pre.metadata.get("mesh-error-code")[0]]).toEqual([
      status.FAILED_PRECONDITION,
      "FAILED_PRECONDITION",
    ]);
    expect((await call(client.cancelTask, client, { id: "x" })).task?.id).toBe("x");

    const internal = await failure(call(client.retryTask, client, { id: "x" }));
    expect(internal.code).toBe(status.INTERNAL);
    expect(internal.details).toContain("unexpected bug");
  });

  it("streams a task's events to the end, and maps stream errors", async () => {
    const { client } = await startUnix(new FakeApi(), "watch");
    const { items, error } = await collect(client.watchTask({ id: "t1" }));
    expect(error).toBeUndefined();
    const events = items.map((m: WatchTaskResponse) => m.event);
    expect(events.map((e) => e?.state?.state ?? e?.log?.line ?? e?.agent?.kind)).toEqual([
      TaskState.TASK_STATE_QUEUED,
      TaskState.TASK_STATE_RUNNING,
      "hello",
      "tool",
      TaskState.TASK_STATE_SUCCEEDED,
    ]);
    expect(JSON.parse(events[3]?.agent?.dataJson ?? "null")).toEqual({ name: "Bash" });
    expect(events[4]).toMatchObject({ taskId: "t1", attempt: 1, workerId: "w-1", state: { reason: "done" } });

    expect((await collect(client.watchTask({ id: "missing" }))).error?.code).toBe(status.NOT_FOUND);
    expect((await collect(client.watchTask({ id: "broken" }))).error?.code).toBe(status.INTERNAL);
    expect((await collect(client.watchTask({ id: "" }))).error?.code).toBe(status.INVALID_ARGUMENT);
  });

  it("streams mesh events and closes the source when the client cancels", async () => {
    const api = new FakeApi();
    const { client } = await startUnix(api, "mesh");
    const stream = client.watchMesh({});
    const got: WatchMeshResponse[] = [];
    stream.on("data", (m: WatchMeshResponse) => got.push(m));
    stream.on("error", () => {});
    await waitFor(() => got.length >= 2, { name: "two mesh events", timeoutMs: 20_000 });
    expect(got[0]?.workerJoined?.workerId).toBe("w-1");
    expect(got[1]?.workerLeft).toEqual({ workerId: "w-2", at: "2025-01-01T00:00:09.000Z" });
    stream.cancel();
    await waitFor(() => api.signals.get("mesh")?.aborted && api.finished.has("mesh"), {
      name: "mesh source aborted and closed",
      timeoutMs: 20_000,
    });
  });
});

describe("deadlines and slow clients", () => {
  it("honours deadlines on unary and streaming calls", async () => {
    const api = new FakeApi();
    const { client } = await startUnix(api, "deadline");
    const slow = await failure(call(client.getTask, client, { id: "slow" }, { deadline: Date.now() + 300 }));
    expect(slow.code).toBe(status.DEADLINE_EXCEEDED);

    const { error } = await collect(
      client.watchTask({ id: "idle" }, new Metadata(), { deadline: Date.now() + 300 }),
    );
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    // the server side saw the deadline too: the source was told to stop and was closed
    await waitFor(() => api.signals.get("idle")?.aborted && api.finished.has("idle"), {
      name: "idle watch aborted on the server",
      timeoutMs: 20_000,
    });
    // the server is still fine
    expect((await call(client.getTask, client, { id: "ok" })).task?.id).toBe("ok");
  });

  it("ends the stream of a client that stops reading, without stalling the source", async () => {
    const api = new FakeApi();
    const { client, socketPath } = await startUnix(api, "slow", { maxStreamBacklog: 50 });
    // grpc-js clients keep draining the socket even when paused, so speak HTTP/2 directly and
    // stop reading: the flow-control window fills and the server must stop writing.
    const session = http2.connect("http://localhost", { createConnection: () => connect(socketPath) });
    session.on("error", () => {});
    const req = session.request({
      ":method": "POST",
      ":path": "/agentmesh.v1.MeshService/WatchTask",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const body = WatchTaskRequest.encode({ id: "flood" }).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    Buffer.from(body).copy(frame, 5);
    req.end(frame);
    req.pause();
    let grpcStatus: string | undefined;
    let grpcMessage = "";
    req.on("trailers", (t) => {
      grpcStatus = String(t["grpc-status"]);
      grpcMessage = decodeURIComponent(String(t["grpc-message"] ?? ""));
    });
    try {
      await waitFor(() => api.signals.get("flood")?.aborted, {
        name: "flood source aborted",
        timeoutMs: 30_000,
      });
      await waitFor(() => api.finished.has("flood"), { name: "flood source closed", timeoutMs: 30_000 });
      const produced = api.produced.get("flood") ?? 0;
      // what was buffered still arrives once the client reads again, then the explicit status
      req.resume();
      await waitFor(() => grpcStatus, { name: "trailers for the slow client", timeoutMs: 30_000 });
      expect(grpcStatus).toBe(String(status.RESOURCE_EXHAUSTED));
      expect(grpcMessage).toContain("behind");
      expect(api.produced.get("flood")).toBe(produced); // the source stayed stopped
      // other clients are unaffected
      expect((await call(client.listWorkers, client, {})).workers).toHaveLength(1);
    } finally {
      session.destroy();
    }
  });

  it("ends open streams with UNAVAILABLE when the server stops", async () => {
    const api = new FakeApi();
    const { server, client } = await startUnix(api, "stop");
    const stream = client.watchTask({ id: "idle" });
    const done = collect(stream);
    await waitFor(() => api.signals.has("idle"), { name: "watch started", timeoutMs: 20_000 });
    await server.stop();
    const { error } = await done;
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(api.signals.get("idle")?.aborted).toBe(true);
  });
});

describe("health and reflection", () => {
  it("answers grpc.health.v1 and lists services over reflection, with full descriptors", async () => {
    const { socketPath } = await startUnix(new FakeApi(), "meta");
    const Health = makeGenericClientConstructor(healthService, "Health");
    const health = new Health(`unix:${socketPath}`, credentials.createInsecure());
    clients.push(health);
    const check = (service: string) =>
      new Promise<{ status: string }>((resolve, reject) => {
        health.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          (v: { service: string }) => (healthService.Check?.requestSerialize(v) as Buffer) ?? Buffer.alloc(0),
          (b: Buffer) => healthService.Check?.responseDeserialize(b) as { status: string },
          { service },
          (err, res) => (err || !res ? reject(err) : resolve(res)),
        );
      });
    expect((await check("")).status).toBe("SERVING");
    expect((await check("agentmesh.v1.MeshService")).status).toBe("SERVING");

    const reflect = await reflectionQuery(socketPath, [
      (w) => w.uint32((7 << 3) | 2).string("*"), // list_services
      (w) => w.uint32((4 << 3) | 2).string("agentmesh.v1.MeshService"), // file_containing_symbol
    ]);
    const services = readListServices(reflect[0] as Uint8Array);
    expect(services).toEqual(expect.arrayContaining(["agentmesh.v1.MeshService", "grpc.health.v1.Health"]));
    const files = readFileDescriptors(reflect[1] as Uint8Array);
    const mesh = files
      .map((f) => fromBinary(FileDescriptorProtoSchema, f))
      .find((f) => f.name === "agentmesh/v1/mesh.proto");
    expect(mesh?.package).toBe("agentmesh.v1");
    expect(mesh?.service[0]?.method.map((m) => m.name)).toEqual([
      "SubmitTasks",
      "ListWorkers",
      "GetTask",
      "ListTasks",
      "WatchTask",
      "WatchMesh",
      "CancelTask",
      "RetryTask",
      "ShipRepo",
      "FetchResults",
      "SubmitPlan",
      "GetPlan",
      "ListPlans",
      "GetQuota",
    ]);
  });
});

/** Sends raw ServerReflectionRequests (v1) on one bidi stream; returns the raw responses. */
async function reflectionQuery(
  socketPath: string,
  requests: Array<(w: BinaryWriter) => void>,
): Promise<Uint8Array[]> {
  const Ctor = makeGenericClientConstructor({}, "ServerReflection");
  const client = new Ctor(`unix:${socketPath}`, credentials.createInsecure());
  clients.push(client);
  const stream = client.makeBidiStreamRequest(
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    (b: Uint8Array) => Buffer.from(b),
    (b: Buffer) => new Uint8Array(b),
    new Metadata(),
    { deadline: Date.now() + 20_000 },
  );
  const out: Uint8Array[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on("data", (b: Uint8Array) => {
      out.push(b);
      if (out.length === requests.length) stream.end();
    });
    stream.on("end", () => resolve());
    stream.on("error", reject);
  });
  for (const build of requests) {
    const w = new BinaryWriter();
    build(w);
    stream.write(w.finish());
  }
  await done;
  return out;
}

/** Field `n` (length-delimited) of a message, every occurrence. */
function fields(buf: Uint8Array, n: number): Uint8Array[] {
  const r = new BinaryReader(buf);
  const out: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === n) out.push(r.bytes());
    else r.skip(type);
  }
  return out;
}

function readListServices(resp: Uint8Array): string[] {
  const list = fields(resp, 6)[0];
  if (!list) throw new Error(`no list_services_response in ${Buffer.from(resp).toString("hex")}`);
  return fields(list, 1).map((svc) => new TextDecoder().decode(fields(svc, 1)[0]));
}

function readFileDescriptors(resp: Uint8Array): Uint8Array[] {
  const fdr = fields(resp, 4)[0];
  if (!fdr) throw new Error(`no file_descriptor_response in ${Buffer.from(resp).toString("hex")}`);
  return fields(fdr, 1);
}

describe("TCP listener", () => {
  let certFile: string;
  let keyFile: string;
  const token = "s3cret-token-for-tests";

  beforeAll(async () => {
    const tlsDir = await makeTempDir("mesh-tls-");
    ({ cert: certFile, key: keyFile } = selfSignedCert(tlsDir));
  });

  it("refuses to start without a token or without TLS", async () => {
    const noToken = new GrpcServer(new FakeApi(), {
      tcp: { host: "127.0.0.1", port: 0, tls: { certFile, keyFile }, token: "" },
    });
    await expect(noToken.start()).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "tcp.token" });
    const noTls = new GrpcServer(new FakeApi(), {
      tcp: { host: "127.0.0.1", port: 0, tls: { certFile: "", keyFile: "" }, token },
    });
    await expect(noTls.start()).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "tcp.tls" });
    const missingFile = new GrpcServer(new FakeApi(), {
      tcp: { host: "127.0.0.1", port: 0, tls: { certFile: join(dir, "nope.pem"), keyFile }, token },
    });
    await expect(missingFile.start()).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("requires the bearer token over TLS, refuses plain-text clients, keeps health open", async () => {
    const server = new GrpcServer(new FakeApi(), {
      tcp: { host: "127.0.0.1", port: 0, tls: { certFile, keyFile }, token },
    });
    servers.push(server);
    const { tcpAddress, socketPath } = await server.start();
    expect(socketPath).toBeUndefined();
    expect(tcpAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const address = tcpAddress as string;
    const ca = readFileSync(certFile);
    const tls = credentials.createSsl(ca);
    const bearer = (t: string) =>
      credentials.combineChannelCredentials(
        tls,
        credentials.createFromMetadataGenerator((_p, cb) => {
          const md = new Metadata();
          md.set("authorization", `Bearer ${t}`);
          cb(null, md);
        }),
      );

    const good = meshClient(address, bearer(token));
    clients.push(good);
    expect((await call(good.listWorkers, good, {})).workers).toHaveLength(1);
    const { items } = await collect(good.watchTask({ id: "t1" }));
    expect(items).toHaveLength(5);
    // Folders of the daemon's machine are named on its Unix socket only: refused over TCP.
    const ship = await failure(call(good.shipRepo, good, { path: "/etc", ref: "", dirty: false }));
    expect(ship.code).toBe(status.FAILED_PRECONDITION);
    expect(ship.details).toContain("Unix socket");
    const fetched = await failure(
      call(good.fetchResults, good, { path: "/tmp", ids: ["t1"], all: false, force: false, hidden: false }),
    );
    expect(fetched.code).toBe(status.FAILED_PRECONDITION);

    const none = meshClient(address, tls);
    clients.push(none);
    const missing = await failure(call(none.listWorkers, none, {}));
    expect(missing.code).toBe(status.UNAUTHENTICATED);
    expect(missing.details).toContain("missing bearer token");
    expect((await collect(none.watchTask({ id: "t1" }))).error?.code).toBe(status.UNAUTHENTICATED);

    const wrong = meshClient(address, bearer("not-the-token"));
    clients.push(wrong);
    const bad = await failure(call(wrong.getTask, wrong, { id: "x" }));
    expect(bad.code).toBe(status.UNAUTHENTICATED);
    expect(bad.details).toContain("wrong bearer token");

    const plain = meshClient(address, credentials.createInsecure());
    clients.push(plain);
    const plainErr = await failure(call(plain.listWorkers, plain, {}, { deadline: Date.now() + 10_000 }));
    expect(plainErr.code).toBe(status.UNAVAILABLE);

    // a TLS client that does not trust the certificate is refused too
    const untrusted = meshClient(address, credentials.createSsl());
    clients.push(untrusted);
    expect(
      (await failure(call(untrusted.listWorkers, untrusted, {}, { deadline: Date.now() + 10_000 }))).code,
    ).toBe(status.UNAVAILABLE);

    // health needs no token (probes and load balancers)
    const Health = makeGenericClientConstructor(healthService, "Health");
    const health = new Health(address, tls, { "grpc.ssl_target_name_override": "localhost" });
    clients.push(health);
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (v: { service: string }) => healthService.Check?.requestSerialize(v) as Buffer,
        (b: Buffer) => healthService.Check?.responseDeserialize(b) as { status: string },
        { service: "" },
        (err, r) => (err || !r ? reject(err) : resolve(r)),
      ),
    );
    expect(res.status).toBe("SERVING");
  });
});
