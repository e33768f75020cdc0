// biome-ignore-all lint/suspicious/noExplicitAny: request bodies are asserted field by field
// Webhooks, end to end: built meshd children on a real nats-server POST to a real HTTP receiver
// on loopback. Signed JSON (the receiver checks the HMAC), the ntfy form, retries with back-off
// while the receiver fails, a daemon SIGKILLed between failure and recovery still delivers
// after its restart, and two daemons sharing the durable consumer deliver each event once.
// Needs-attention beyond failed/dead: the real Claude Code CLI (through mesh-shim, against the
// mock Messages API) denied a tool: one signed delivery, once, though two daemons share the hook.
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, type Daemon } from "../daemon/index.js";
import {
  planNotice,
  stateNotice,
  verifySignature,
  webhookSecrets,
  webhookSources,
} from "../daemon/notify/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  startMockAnthropic,
  writeFile as writeFileReply,
} from "./mock-anthropic/index.js";
import { type MeshClient, openClient, startDaemon } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

const SECRET = "webhook-secret-0123456789";

let nats: NatsServer;
let client: MeshClient;
let server: Server;
let baseUrl: string;
let dir: string;
let configFile: string;
const received: Received[] = [];
/** The JSON receiver answers 500 while false. */
let healthy = false;
const daemons: Meshd[] = [];
const inProcess: Daemon[] = [];
let mock: MockAnthropic | undefined;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  dir = await makeTempDir("mesh-webhooks-");
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const status = req.url === "/json" && !healthy ? 500 : 200;
      received.push({
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        status,
      });
      res.writeHead(status).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const secretFile = join(dir, "secret");
  await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
  configFile = join(dir, "meshd.yaml");
  await writeFile(
    configFile,
    [
      "webhooks:",
      `  - {name: json-hook, url: "${baseUrl}/json", secretFile: ${secretFile}, backoff: 200ms, maxBackoff: 1s, timeout: 5s}`,
      `  - {name: ntfy-hook, url: "${baseUrl}/ntfy", format: ntfy, events: [attention]}`,
      "",
    ].join("\n"),
  );
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(daemons.map((d) => stopMeshdProcess(d)));
  await Promise.allSettled(inProcess.map((d) => d.stop(2000)));
  await mock?.close();
  await client?.close();
  server?.close();
  await nats?.cleanup();
  await removeTempDirs();
}, 60_000);

async function meshd(name: string): Promise<Meshd> {
  const d = await startMeshdProcess({
    natsUrl: nats.url,
    name,
    logLevel: "info",
    prefix: "mesh-webhooks",
    extra: ["--config", configFile],
  });
  daemons.push(d);
  return d;
}

const forKey = (path: string, key: string) =>
  received.filter((r) => r.path === path && r.headers["x-mesh-delivery"] === key);

describe("webhooks", () => {
  it("signed, retried while failing, delivered after a daemon restart, once; ntfy form for attention", async () => {
    const d1 = await meshd("hooks-1");
    const ok = nodeTask("0", { maxAttempts: 1 });
    await client.api.submit([ok]);
    const key = `${ok.id}-succeeded-1`;
    // The receiver fails: the event is retried (with back-off), each try signed the same way.
    await waitFor(() => forKey("/json", key).length >= 2, { name: "two failed tries", timeoutMs: 60_000 });
    for (const r of forKey("/json", key)) {
      expect(r.status).toBe(500);
      expect(verifySignature(SECRET, r.body, r.headers["x-mesh-signature"] as string)).toBe(true);
      expect(verifySignature("another secret", r.body, r.headers["x-mesh-signature"] as string)).toBe(false);
      expect(r.headers["content-type"]).toBe("application/json");
      const body = JSON.parse(r.body);
      expect(body).toMatchObject({
        type: "task.state",
        delivery: key,
        event: "terminal",
        taskId: ok.id,
        state: "succeeded",
        attempt: 1,
        reason: null,
      });
      expect(r.headers["x-mesh-timestamp"]).toBe(body.sentAt);
    }
    // A succeeded task is not an attention event: the ntfy hook (attention only) got nothing.
    expect(forKey("/ntfy", key)).toEqual([]);

    // Killed between the failure and the receiver's recovery: nothing acked, nothing lost.
    d1.kill("SIGKILL");
    await d1.exited;
    healthy = true;
    await meshd("hooks-1b");
    await waitFor(() => forKey("/json", key).some((r) => r.status === 200), {
      name: "delivered after the restart",
      timeoutMs: 60_000,
    });

    const bad = nodeTask("process.exit(4)", { maxAttempts: 1 });
    await client.api.submit([bad]);
    const badKey = `${bad.id}-dead-1`;
    await waitFor(() => forKey("/json", badKey).length > 0 && forKey("/ntfy", badKey).length > 0, {
      name: "attention delivered to both hooks",
      timeoutMs: 60_000,
    });
    const j = JSON.parse(forKey("/json", badKey)[0]!.body);
    expect(j).toMatchObject({ event: "attention", state: "dead", taskId: bad.id });
    const n = forKey("/ntfy", badKey)[0]!;
    expect(n.headers).toMatchObject({
      "content-type": "text/plain; charset=utf-8",
      title: `mesh: ${bad.id} dead`,
      priority: "high",
      tags: "skull",
    });
    expect(n.body).toMatch(
      new RegExp(`^${bad.id} dead \\(attempt 1 on hooks-1b-[0-9a-f]+\\): .*exit code 4`),
    );
    // No secret configured for the ntfy hook: nothing to sign with.
    expect(n.headers["x-mesh-signature"]).toBeUndefined();
  });

  it("daemons sharing a webhook deliver each event once", async () => {
    await meshd("hooks-2");
    const tasks = Array.from({ length: 6 }, () => nodeTask("0", { maxAttempts: 1 }));
    await client.api.submit(tasks);
    const keys = tasks.map((t) => `${t.id}-succeeded-1`);
    await waitFor(() => keys.every((k) => forKey("/json", k).length > 0), {
      name: "every task's end delivered",
      timeoutMs: 60_000,
    });
    // A sleep only to prove nothing more arrives: no repeat of an event answered 2xx.
    await new Promise((r) => setTimeout(r, 2000));
    for (const k of keys) expect(forKey("/json", k).map((r) => r.status)).toEqual([200]);
    const all = new Set(
      received.filter((r) => r.status === 200).map((r) => `${r.path} ${r.headers["x-mesh-delivery"]}`),
    );
    expect(all.size).toBe(received.filter((r) => r.status === 200).length);
  });

  it("a tool Claude Code denied is needs-attention: one signed delivery, though two daemons share the hook", async () => {
    mock = await startMockAnthropic({
      // Permission mode `default` with nothing pre-approved: in -p mode a write is denied.
      script: ({ turn }) => (turn === 0 ? writeFileReply("notes.txt", "hi\n") : answer("I was not allowed.")),
    });
    const keyFile = join(dir, "anthropic-key");
    writeFileSync(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
    const webhooks = [
      {
        name: "agent-hook",
        url: `${baseUrl}/agent`,
        secretFile: join(dir, "secret"),
        events: ["attention" as const],
        backoff: "200ms",
      },
    ];
    const pool = "webhook-agent";
    const worker = await startDaemon(nats.url, {
      name: "hooks-agent",
      pools: [pool],
      runners: ["claude"],
      slots: 1,
      webhooks,
      claude: {
        command: [CLAUDE_BIN],
        env: { ANTHROPIC_BASE_URL: mock.url },
        apiKeyFile: keyFile,
        permissionMode: "default",
      },
    });
    inProcess.push(worker);
    inProcess.push(await startDaemon(nats.url, { name: "hooks-other", pools: ["webhook-none"], webhooks }));
    const repo = await makeTempDir("mesh-webhooks-repo-");
    const g = (...a: string[]) =>
      execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...a], { cwd: repo });
    await g("init", "--quiet", "-b", "main");
    await writeFile(join(repo, "README.md"), "a repo\n");
    await g("add", "README.md");
    await g("commit", "--quiet", "-m", "first");
    const spec = validateTaskSpec({ id: uniqueId("denied"), prompt: "run a command", repo, pool });
    await worker.api.submit([spec]);

    const denials = () =>
      received.filter((r) => r.path === "/agent" && JSON.parse(r.body).taskId === spec.id);
    await waitFor(() => denials().length > 0, { name: "the denial delivered", timeoutMs: 60_000 });
    const r = denials()[0]!;
    expect(verifySignature(SECRET, r.body, r.headers["x-mesh-signature"] as string)).toBe(true);
    const body = JSON.parse(r.body);
    expect(body).toMatchObject({
      type: "task.tool_denied",
      event: "attention",
      taskId: spec.id,
      attempt: 1,
      tool: "Write",
      workerId: worker.workerId,
    });
    expect(r.headers["x-mesh-delivery"]).toBe(`${spec.id}-denied-1-${body.toolUseId}`);
    expect(body.delivery).toBe(r.headers["x-mesh-delivery"]);
    await waitFor(async () => (await worker.api.getTask(spec.id)).record.state === "succeeded", {
      name: "the task ends",
      timeoutMs: 60_000,
    });
    // A sleep only to prove nothing more arrives: the hook wants attention only (not the end),
    // and the two daemons sharing its consumers deliver the denial once.
    await new Promise((res) => setTimeout(res, 2000));
    expect(denials().map((d) => [JSON.parse(d.body).type, d.status])).toEqual([["task.tool_denied", 200]]);
  }, 120_000);

  it("a parked task and a plan conflict are needs-attention, each under its own stable key", () => {
    const at = "2026-01-01T00:00:00.000Z";
    const parked = { account: "team", until: "2026-01-01T05:00:00.000Z" };
    const q = { type: "state" as const, taskId: "t1", at, state: "queued" as const, attempt: 2 };
    expect(stateNotice(q, ["terminal", "attention"])).toBeUndefined();
    const n = stateNotice({ ...q, parked }, ["terminal", "attention"]);
    expect(n).toMatchObject({
      delivery: "t1-parked-2",
      kind: "attention",
      body: { state: "queued", parked },
    });
    expect(stateNotice({ ...q, parked }, ["terminal"])).toBeUndefined();
    const conflict = {
      type: "conflict" as const,
      at,
      workerId: "w1",
      plan: "p1",
      tasks: ["a", "b"] as [string, string],
      heads: ["1".repeat(40), "2".repeat(40)] as [string, string],
      files: ["x.txt"],
    };
    // The same conflict found by two daemons (two stream messages) is one key.
    expect(planNotice(conflict, 7, ["attention"])?.delivery).toBe(
      planNotice(conflict, 9, ["attention"])?.delivery,
    );
    expect(planNotice(conflict, 7, ["attention"])).toMatchObject({
      delivery: `p1-conflict-a-b-${"1".repeat(12)}-${"2".repeat(12)}`,
      body: { type: "plan.conflict", tasks: ["a", "b"], files: ["x.txt"] },
    });
    expect(planNotice(conflict, 7, ["terminal"])).toBeUndefined();
    // A terminal-only webhook reads the state events alone.
    expect(webhookSources({ events: ["terminal"] })).toHaveLength(1);
    expect(webhookSources({ events: ["attention"] })).toHaveLength(3);
  });

  it("bad webhook config is refused naming the field; a missing secret fails the start", () => {
    const url = `${baseUrl}/json`;
    const fieldOf = (w: unknown) => {
      try {
        compileConfig({ nats: { servers: [nats.url] }, webhooks: [w] });
        return "accepted";
      } catch (err) {
        return (err as { field?: string }).field;
      }
    };
    expect(fieldOf({ url, secret: "inline" })).toBe("webhooks.0.secret");
    expect(fieldOf({ url })).toBe("webhooks.0.secretFile");
    expect(fieldOf({ url: "ftp://x/y", secretEnv: "S" })).toBe("webhooks.0.url");
    expect(fieldOf({ url, secretEnv: "S", events: ["sometimes"] })).toBe("webhooks.0.events.0");
    expect(fieldOf({ url, format: "ntfy" })).toBe("accepted");
    const cfg = compileConfig({
      nats: { servers: [nats.url] },
      webhooks: [{ url, secretEnv: "MESH_HOOK_SECRET" }],
    });
    expect(() => webhookSecrets(cfg.webhooks, {})).toThrow(
      expect.objectContaining({ field: "webhooks.0.secretEnv" }),
    );
    expect(webhookSecrets(cfg.webhooks, { MESH_HOOK_SECRET: "s3" })).toEqual(["s3"]);
  });
});
