// Oversized, pathological and slow submits against a real `meshd` (the built bin) over its real
// gRPC socket, while a command task with a 1.5 s lease runs on that daemon: each submit is
// refused with RESOURCE_EXHAUSTED or INVALID_ARGUMENT naming the limit, nothing of them reaches
// KV, and the running task still succeeds in its first attempt (its lease was never lost:
// parsing happens off the daemon's event loop). Needs `npm run build` first.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import http2 from "node:http2";
import { connect } from "node:net";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshServiceClient, SubmitTasksRequest, type SubmitTasksResponse } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN, type MeshClient, type MeshdProcess, openClient, spawnMeshd } from "./support/mesh.js";

const LIMIT = 1024 * 1024;
let nats: NatsServer;
let client: MeshClient;
let meshd: MeshdProcess;
let socket: string;
let grpc: MeshServiceClient;
let work: string;

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  work = await makeTempDir("bounds-");
  const cfg = join(work, "meshd.yaml");
  await writeFile(
    cfg,
    JSON.stringify({
      lease: "1500ms",
      presenceInterval: "500ms",
      runners: ["command"],
      http: { enabled: false },
      limits: { submitMaxBytes: LIMIT, submitParseTimeout: "10s", requestReadTimeout: "1s" },
    }),
  );
  meshd = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", "info"]);
  socket = join(meshd.stateDir, "meshd.sock");
  await waitFor(() => existsSync(socket), { name: "meshd socket", timeoutMs: 60_000 });
  grpc = new MeshServiceClient(`unix:${socket}`, credentials.createInsecure(), {
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });
}, 90_000);

afterAll(async () => {
  grpc?.close();
  meshd?.kill("SIGTERM");
  await meshd?.exited;
  await client?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

function submit(document: string): Promise<SubmitTasksResponse> {
  return new Promise((resolve, reject) => {
    grpc.submitTasks(
      { document, source: "attack.yaml" },
      new Metadata(),
      { deadline: Date.now() + 60_000 },
      (err, res) => (err ? reject(err) : resolve(res as SubmitTasksResponse)),
    );
  });
}

async function refusal(document: string): Promise<ServiceError> {
  const err = await submit(document).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (!err) throw new Error("the submit was accepted");
  return err;
}

const meshCode = (err: ServiceError) => err.metadata.get("mesh-error-code")[0];

/** One gRPC call spoken in raw HTTP/2: `frame` is written, the stream is never ended. */
function rawCall(frame: Buffer): { status: () => string | undefined; message: () => string; close(): void } {
  const session = http2.connect("http://localhost", { createConnection: () => connect(socket) });
  session.on("error", () => {});
  const req = session.request({
    ":method": "POST",
    ":path": "/agentmesh.v1.MeshService/SubmitTasks",
    "content-type": "application/grpc",
    te: "trailers",
  });
  req.on("error", () => {});
  let st: string | undefined;
  let msg = "";
  const take = (h: http2.IncomingHttpHeaders) => {
    if (h["grpc-status"] !== undefined) {
      st = String(h["grpc-status"]);
      msg = decodeURIComponent(String(h["grpc-message"] ?? ""));
    }
  };
  req.on("response", take);
  req.on("trailers", take);
  req.resume();
  if (frame.length > 0) req.write(frame);
  return { status: () => st, message: () => msg, close: () => session.destroy() };
}

describe("submits that must not wedge a daemon", () => {
  it("refuses oversized, pathological and slow submits while a short-lease task keeps its lease", async () => {
    const release = join(work, "release");
    const waiter = `const f=${JSON.stringify(release)};const t=setInterval(()=>{if(require("fs").existsSync(f)){clearInterval(t)}},20)`;
    const ok = await submit(
      JSON.stringify({ id: "runs", runner: "command", prompt: "p", command: ["node", "-e", waiter] }),
    );
    expect(ok.results[0]?.created).toBe(true);
    await waitFor(async () => (await client.store.get("runs"))?.record.state === "running", {
      name: "runs is running",
      timeoutMs: 30_000,
    });

    // 1. Over the limit, by one byte: refused by the handler, before parsing.
    const prompt = "x".repeat(LIMIT);
    const big = await refusal(`id: big\nrunner: noop\nprompt: "${prompt}"\n`);
    expect(big.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(meshCode(big)).toBe("RESOURCE_EXHAUSTED");
    expect(big.details).toContain("limits.submitMaxBytes");

    // 2. Far over it: gRPC refuses the message from its length prefix, unread.
    const huge = await refusal(`id: huge\nrunner: noop\nprompt: "${"y".repeat(4 * LIMIT)}"\n`);
    expect(huge.code).toBe(status.RESOURCE_EXHAUSTED);

    // 3. Inside the limit but slow to parse: one map with 120,000 keys (quadratic in the YAML
    //    parser: minutes). On the event loop this would stall the daemon far beyond the lease.
    const keys = Array.from({ length: 120_000 }, (_, i) => `${i.toString(36)}: 1`).join(",");
    const slowDoc = `{id: manykeys, runner: noop, prompt: p, labels: {${keys}}}`;
    expect(Buffer.byteLength(slowDoc)).toBeLessThan(LIMIT);
    const slow = await refusal(slowDoc);
    expect(slow.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(meshCode(slow)).toBe("RESOURCE_EXHAUSTED");
    expect(slow.details).toContain("limits.submitParseTimeout");

    // 4. Deep nesting and 5. an alias bomb ("billion laughs"): refused as invalid input.
    const deep = await refusal(`${"[".repeat(30_000)}${"]".repeat(30_000)}`);
    expect({ code: deep.code, details: deep.details }).toMatchObject({ code: status.INVALID_ARGUMENT });
    let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    for (let i = 0, prev = "a"; i < 9; i++, prev = `b${i - 1}`) {
      bomb += `b${i}: &b${i} [${Array(9).fill(`*${prev}`).join(",")}]\n`;
    }
    const laughs = await refusal(bomb);
    expect(laughs.code).toBe(status.INVALID_ARGUMENT);
    expect(laughs.details).toMatch(/alias/i);

    // 6. A client that starts a request and trickles it (half a message, never the rest),
    //    and 7. one that opens a call and sends nothing: both ended by the server.
    const body = Buffer.from(
      SubmitTasksRequest.encode({ document: "id: trickle\nprompt: p\nrunner: noop\n", source: "t" }).finish(),
    );
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const trickle = rawCall(frame.subarray(0, 5 + Math.floor(body.length / 2)));
    const silent = rawCall(Buffer.alloc(0));
    try {
      for (const [name, c] of [
        ["trickle", trickle],
        ["silent", silent],
      ] as const) {
        await waitFor(() => c.status(), { name: `${name} call ended by the server`, timeoutMs: 30_000 });
        expect(c.status()).toBe(String(status.RESOURCE_EXHAUSTED));
        expect(c.message()).toContain("limits.requestReadTimeout");
      }
    } finally {
      trickle.close();
      silent.close();
    }

    // The daemon still serves, and nothing of the refused submits reached KV.
    expect((await submit(JSON.stringify({ id: "after", runner: "noop", prompt: "p" }))).results).toHaveLength(
      1,
    );
    const ids = (await client.store.list()).map((v) => v.record.id).sort();
    expect(ids).toEqual(["after", "runs"]);

    // The running task was never interrupted: it finishes in its first attempt.
    await writeFile(release, "");
    const done = await waitFor(
      async () => {
        const v = await client.store.get("runs");
        return v && ["succeeded", "failed", "dead", "cancelled"].includes(v.record.state) ? v : undefined;
      },
      { name: "runs finished", timeoutMs: 30_000 },
    );
    expect(done.record.state).toBe("succeeded");
    expect(done.record.attempt).toBe(1);
    expect(done.record.attempts).toHaveLength(1);
    expect(done.record.attempts.some((a) => a.outcome === "lost")).toBe(false);
  }, 120_000);

  it("the CLI refuses a file over the submit limit before sending it", async () => {
    const file = join(work, "big.yaml");
    await writeFile(file, `id: cli-big\nrunner: noop\nprompt: "${"z".repeat(5 * 1024 * 1024)}"\n`);
    const r = await execa(process.execPath, [MESH_BIN, "--json", "submit", file], {
      reject: false,
      env: { NO_COLOR: "1", MESH_DAEMON: socket },
      timeout: 60_000,
    });
    expect(r.exitCode).toBe(5);
    const err = JSON.parse(String(r.stderr).trim().split("\n").at(-1) ?? "{}");
    expect(err.error?.code ?? err.code).toBe("RESOURCE_EXHAUSTED");
    expect(String(r.stderr)).toContain("limits.submitMaxBytes");
    expect(await client.store.get("cli-big")).toBeUndefined();
  }, 60_000);
});
