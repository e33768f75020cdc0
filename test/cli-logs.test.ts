// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's JSON lines are asserted field by field
// `mesh logs`: the built CLI against a real meshd on a real nats-server. A task that fails its
// first attempt and succeeds on the second shows both attempts; a running task's logs end at
// once with what it did so far; --follow stays until the end.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";

let nats: NatsServer;
let d: Meshd;
let dir: string;

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} is missing: run \`npm run build\` first`);
  nats = await NatsServer.start();
  d = await startMeshdProcess({ natsUrl: nats.url, name: "logs", logLevel: "warn", prefix: "mesh-logs" });
  dir = await makeTempDir("mesh-logs-");
}, 120_000);

afterAll(async () => {
  if (d) await stopMeshdProcess(d);
  await nats?.cleanup();
  await removeTempDirs();
}, 60_000);

function start(args: string[]) {
  return execa(process.execPath, [MESH_BIN, ...args], {
    env: { NO_COLOR: "1", MESH_DAEMON: d.socket },
    reject: false,
    stdin: "ignore",
    timeout: 60_000,
  });
}

async function mesh(args: string[]) {
  const r = await start(args);
  const stdout = String(r.stdout);
  return {
    code: r.exitCode,
    stdout,
    stderr: String(r.stderr),
    lines: () =>
      stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

async function submit(id: string, js: string, extra = ""): Promise<void> {
  const file = join(dir, `${id}.yaml`);
  await writeFile(
    file,
    `{id: ${id}, prompt: p, runner: command, command: [node, -e, ${JSON.stringify(js)}]${extra}}\n`,
  );
  const r = await mesh(["submit", file]);
  expect(r.code, r.stderr).toBe(0);
}

const gated = (gate: string, before: string) =>
  `console.log(${JSON.stringify(before)}); const t = setInterval(() => { if (require("fs").existsSync(${JSON.stringify(gate)})) { clearInterval(t); console.log("done") } }, 50)`;

describe("mesh logs", () => {
  it("prints every attempt of a finished task, readable, and exits 0", async () => {
    const marker = join(dir, "retry-1.first");
    // Attempt 1 leaves a marker and fails; attempt 2 finds it and succeeds.
    await submit(
      "retry-1",
      `const fs = require("fs"); const m = ${JSON.stringify(marker)}; if (!fs.existsSync(m)) { fs.writeFileSync(m, ""); console.error("first try fails"); process.exit(3) } console.log("second try works")`,
      ", maxAttempts: 2",
    );
    await waitFor(async () => (await mesh(["task", "retry-1", "--json"])).stdout.includes('"succeeded"'), {
      name: "retry-1 succeeded",
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    const r = await mesh(["logs", "retry-1"]);
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout;
    const a1 = text.indexOf("── attempt 1\n");
    const a2 = text.indexOf("── attempt 2\n");
    expect(a1).toBeGreaterThanOrEqual(0);
    expect(a2).toBeGreaterThan(a1);
    const first = text.slice(a1, a2);
    const second = text.slice(a2);
    expect(first).toMatch(/stderr {2}first try fails/);
    expect(first).toMatch(/state {3}running on \S+/);
    // A retryable failure goes back to the queue for attempt 2, with the reason.
    expect(second).toMatch(/^── attempt 2\n\S+ {2}state {3}queued on /);
    expect(second).toMatch(/stdout {2}second try works/);
    expect(second).toMatch(/state {3}succeeded/);
    expect(text).not.toContain("second try works\n── attempt");

    const j = await mesh(["logs", "retry-1", "--json"]);
    expect(j.code).toBe(0);
    const events = j.lines();
    expect(new Set(events.map((e: any) => e.attempt))).toEqual(new Set([1, 2]));
    expect(events.find((e: any) => e.type === "log" && e.attempt === 1)).toMatchObject({
      taskId: "retry-1",
      stream: "stderr",
      line: "first try fails",
    });
    expect(events.at(-1)).toMatchObject({ type: "state", state: "succeeded", attempt: 2 });
  });

  it("ends at once for a running task with what it did so far; --follow stays to the end", async () => {
    const gate = join(dir, "run-1.go");
    await submit("run-1", gated(gate, "started"));
    await waitFor(async () => (await mesh(["logs", "run-1"])).stdout.includes("started"), {
      name: "run-1 printed its first line",
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    // The task is still running (its gate is closed), yet `mesh logs` returned: it does not follow.
    const now = await mesh(["logs", "run-1", "--json"]);
    expect(now.code).toBe(0);
    const events = now.lines();
    expect(events.at(-1)).toMatchObject({ type: "log", line: "started" });
    expect(events.some((e: any) => e.type === "state" && e.state === "running")).toBe(true);
    expect(events.some((e: any) => e.line === "done")).toBe(false);

    const following = start(["logs", "run-1", "--follow"]);
    let seen = "";
    following.stdout?.on("data", (c: Buffer) => {
      seen += c.toString();
    });
    await waitFor(() => seen.includes("started"), { name: "--follow replayed the start", timeoutMs: 30_000 });
    await writeFile(gate, "");
    const r = await following;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toMatch(/stdout {2}done\n.*state {3}succeeded/s);
  });

  it("a reader that stops early (`| head`) ends it quietly, exit 0, nothing on stderr", async () => {
    // More output than a pipe holds, so the CLI is still writing when its reader goes away.
    await submit("many-1", "for (let i = 0; i < 2000; i++) console.log('line ' + i + ' ' + 'x'.repeat(60))");
    await waitFor(async () => (await mesh(["task", "many-1", "--json"])).stdout.includes('"succeeded"'), {
      name: "many-1 succeeded",
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    for (const args of [
      ["logs", "many-1"],
      ["--json", "logs", "many-1"],
    ]) {
      const child = start(args);
      child.stdout?.once("data", () => child.stdout?.destroy());
      const r = await child;
      expect(String(r.stderr), args.join(" ")).toBe("");
      expect(r.exitCode, args.join(" ")).toBe(0);
    }
  });

  it("an unknown task is exit 4, with one line naming it", async () => {
    const r = await mesh(["logs", "no-such-task"]);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("no-such-task");
  });
});
