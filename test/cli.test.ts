// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
// End to end, as a user runs it: the BUILT `mesh` CLI (node dist/cli/main.js) as a child
// process against real `meshd` children (node dist/daemon/main.js) on a real nats-server.
// Two daemons share one NATS: A has no labels, B has gpu=true; the CLI talks to A only.
// Needs `npm run build` first (npm test does it).
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshServiceClient } from "../proto/index.js";
import { freePort, makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";
import { selfSignedCert } from "./support/tls.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const MESHD = join(ROOT, "dist", "daemon", "main.js");
const LONG = 180_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json(): any;
  lines(): any[];
}

let nats: NatsServer;
let a: Meshd;
let b: Meshd;
let workDir: string;
let tcp: { address: string; ca: string; token: string } | undefined;
const daemons: Meshd[] = [];

async function mesh(
  args: string[],
  opts: { input?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" }),
    env: { NO_COLOR: "1", MESH_DAEMON: a.socket, MESH_TOKEN: "", MESH_TLS_CA: "", ...opts.env },
    timeout: LONG,
    stripFinalNewline: false,
  });
  const stdout = String(r.stdout);
  return {
    code: r.exitCode ?? -1,
    stdout,
    stderr: String(r.stderr),
    json: () => JSON.parse(stdout),
    lines: () =>
      stdout
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l)),
  };
}

/** Asserts the exit code, showing the CLI's output when it differs. */
function expectExit(r: Run, code: number): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code, stderr: expect.any(String) });
  if (r.code !== code)
    throw new Error(`exit ${r.code}, expected ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

/** An error is exactly one line on stderr. */
function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim());
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

async function startMeshd(name: string, extra: string[]): Promise<Meshd> {
  const d = await startMeshdProcess({ natsUrl: nats.url, name, extra, logLevel: "info", prefix: "mesh-e2e" });
  daemons.push(d);
  return d;
}

const stopMeshd = stopMeshdProcess;

/** Writes a spec file in the shared work dir and returns its path. */
async function specFile(name: string, text: string): Promise<string> {
  const path = join(workDir, name);
  await writeFile(path, text);
  return path;
}

const nodeCmd = (js: string) => JSON.stringify(["node", "-e", js]);

async function workerIds(): Promise<Record<string, string>> {
  const r = await mesh(["workers", "--json"]);
  if (r.code !== 0) return {};
  return Object.fromEntries(
    r.json().workers.map((w: { name: string; workerId: string }) => [w.name, w.workerId]),
  );
}

beforeAll(async () => {
  for (const f of [CLI, MESHD]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (npm test does)`);
  }
  workDir = await makeTempDir("mesh-e2e-work-");
  nats = await NatsServer.start();

  // Daemon A also serves TCP with TLS and a bearer token, to prove the remote path end to end.
  const tlsDir = await makeTempDir("mesh-e2e-tls-");
  const { cert, key } = selfSignedCert(tlsDir);
  const token = "e2e-token-0123456789abcdef";
  const tokenFile = join(tlsDir, "token");
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const port = await freePort();
  const config = join(tlsDir, "a.yaml");
  await writeFile(
    config,
    `grpc:\n  tcp:\n    host: 127.0.0.1\n    port: ${port}\n    tlsCertFile: ${cert}\n    tlsKeyFile: ${key}\n    tokenFile: ${tokenFile}\n`,
  );
  tcp = { address: `127.0.0.1:${port}`, ca: cert, token };

  [a, b] = await Promise.all([
    startMeshd("a", ["--config", config]),
    startMeshd("b", ["--labels", "gpu=true"]),
  ]);
  await waitFor(async () => Object.keys(await workerIds()).length === 2, {
    name: "daemon A sees both workers",
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}, LONG);

afterAll(async () => {
  await Promise.allSettled(daemons.map(stopMeshd));
  await nats?.cleanup();
  await removeTempDirs();
}, LONG);

describe("mesh CLI, end to end", () => {
  it("documents exit codes and JSON fields in --help, and prints its version", async () => {
    const help = await mesh(["--help"]);
    expectExit(help, 0);
    expect(help.stdout).toContain("Exit codes:");
    for (const code of ["0  ok", "2  usage", "3  daemon unreachable", "4  not found", "5  any other error"]) {
      expect(help.stdout).toContain(code);
    }
    const tasksHelp = await mesh(["tasks", "--help"]);
    expect(tasksHelp.stdout).toContain('"maxAttempts"');
    const version = await mesh(["--version"]);
    expectExit(version, 0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const usage = await mesh(["tasks", "--limit", "zero"]);
    expectExit(usage, 2);
    expect(oneLine(usage.stderr)).toContain("--limit");
  });

  it("workers: daemon A answers for the whole mesh", async () => {
    const r = await mesh(["workers", "--json"]);
    expectExit(r, 0);
    const workers = r.json().workers as any[];
    expect(workers.map((w) => w.name).sort()).toEqual(["a", "b"]);
    const wb = workers.find((w) => w.name === "b");
    expect(wb).toMatchObject({
      pools: ["default"],
      labels: { gpu: "true" },
      runners: ["command"],
      slotsTotal: 2,
      draining: false,
      httpUrl: null,
    });
    for (const key of ["workerId", "host", "slotsFree", "running", "version", "startedAt", "lastSeen"]) {
      expect(wb).toHaveProperty(key);
    }
    expect(Number.isNaN(Date.parse(wb.lastSeen))).toBe(false);

    const human = await mesh(["workers"]);
    expectExit(human, 0);
    expect(human.stdout).toMatch(/^WORKER\s+HOST\s+POOLS\s+LABELS\s+SLOTS\s+RUNNING\s+LAST SEEN/);
    expect(human.stdout).toContain("gpu=true");
    expect(human.stdout).not.toContain("\x1b["); // no colour into a pipe
  });

  it(
    "submit --wait through A runs a task only B can run; task, watch and tasks show it",
    async () => {
      const ids = await workerIds();
      const file = await specFile(
        "gpu.yaml",
        `id: gpu-1\ntitle: needs a gpu\nprompt: say hello\nrunner: command\nlabels: {gpu: "true"}\nmaxAttempts: 1\n` +
          `command: ${nodeCmd("console.log('hello from ' + process.env.MESH_WORKER_ID)")}\n`,
      );
      const r = await mesh(["submit", file, "--wait", "--json"]);
      expectExit(r, 0);
      expect(r.json()).toEqual({
        tasks: [
          {
            id: "gpu-1",
            created: true,
            state: "succeeded",
            attempt: 1,
            workerId: ids.b,
            reason: null,
            unschedulable: null,
          },
        ],
      });

      const t = await mesh(["task", "gpu-1", "--json"]);
      expectExit(t, 0);
      const task = t.json().task;
      expect(task).toMatchObject({
        id: "gpu-1",
        title: "needs a gpu",
        state: "succeeded",
        pool: "default",
        labels: { gpu: "true" },
        runner: "command",
        attempt: 1,
        maxAttempts: 1,
        workerId: ids.b,
        cancelRequested: false,
        unschedulable: null,
        status: expect.objectContaining({ kind: "succeeded", attention: false }),
      });
      expect(task.attempts).toHaveLength(1);
      expect(task.attempts[0]).toMatchObject({
        attempt: 1,
        workerId: ids.b,
        outcome: "succeeded",
        exitCode: 0,
      });
      expect(typeof task.finishedAt).toBe("string");
      expect(task.record.spec.prompt).toBe("say hello");

      const human = await mesh(["task", "gpu-1"]);
      expectExit(human, 0);
      expect(human.stdout).toMatch(/^id:\s+gpu-1$/m);
      expect(human.stdout).toMatch(/^state:\s+succeeded$/m);

      // watch replays from the start and ends at the terminal state
      const w = await mesh(["watch", "gpu-1", "--json"]);
      expectExit(w, 0);
      const events = w.lines();
      const states = events.filter((e) => e.type === "state").map((e) => e.state);
      expect(states[0]).toBe("queued");
      expect(states.at(-1)).toBe("succeeded");
      expect(states).toContain("running");
      expect(events).toContainEqual(
        expect.objectContaining({
          type: "log",
          taskId: "gpu-1",
          stream: "stdout",
          line: `hello from ${ids.b}`,
          workerId: ids.b,
        }),
      );
      for (const e of events)
        expect(Object.keys(e)).toEqual(
          expect.arrayContaining(["type", "taskId", "at", "attempt", "workerId"]),
        );

      const listed = await mesh(["tasks", "--json", "--worker", ids.b as string]);
      expectExit(listed, 0);
      expect(listed.json().tasks.map((x: any) => x.id)).toContain("gpu-1");
    },
    LONG,
  );

  it(
    "submit --follow streams the task's log lines; re-submitting an id is idempotent",
    async () => {
      const text = `- id: follow-1\n  prompt: p\n  runner: command\n  command: ${nodeCmd("console.log('line one'); console.error('line two')")}\n`;
      const r = await mesh(["submit", "-", "--follow"], { input: text });
      expectExit(r, 0);
      expect(r.stdout).toMatch(/follow-1\s+stdout\s+line one/);
      expect(r.stdout).toMatch(/follow-1\s+stderr\s+line two/);
      expect(r.stdout).toMatch(/follow-1\s+succeeded/);
      expect(r.stdout).not.toContain("\x1b[");

      const again = await mesh(["submit", "-", "--json"], { input: text });
      expectExit(again, 0);
      expect(again.json()).toEqual({ tasks: [{ id: "follow-1", created: false, state: "succeeded" }] });

      const human = await mesh(["submit", "-"], { input: text });
      expectExit(human, 0);
      expect(human.stdout).toMatch(/^ID\s+STATE\s+NEW\nfollow-1\s+succeeded\s+no \(already submitted\)$/m);

      // The same id with another spec is a mistake: refused, exit 2, naming what differs.
      const edited = await mesh(["submit", "-"], { input: text.replace("prompt: p", "prompt: edited") });
      expectExit(edited, 2);
      expect(edited.stderr).toMatch(
        /follow-1 was already submitted with a different spec \(prompt differs\)/,
      );

      const followJson = await mesh(["submit", "-", "--follow", "--json"], { input: text });
      expectExit(followJson, 0);
      const lines = followJson.lines();
      expect(lines.at(-1)).toMatchObject({
        type: "summary",
        tasks: [{ id: "follow-1", state: "succeeded", created: false }],
      });
      expect(lines).toContainEqual(expect.objectContaining({ type: "log", line: "line one" }));
    },
    LONG,
  );

  it(
    "a failed task: --wait exits 1 with one line; retry runs it as a new attempt",
    async () => {
      const file = await specFile(
        "fail.json",
        JSON.stringify({
          tasks: [
            { id: "ok-1", prompt: "p", runner: "command", command: ["node", "-e", "0"] },
            {
              id: "fail-1",
              prompt: "p",
              runner: "command",
              maxAttempts: 1,
              command: ["node", "-e", "process.exit(3)"],
            },
          ],
        }),
      );
      const r = await mesh(["submit", file, "--wait", "--json"]);
      expectExit(r, 1);
      const states = Object.fromEntries(r.json().tasks.map((t: any) => [t.id, t.state]));
      // one allowed attempt used up: the daemon calls that dead ("failed" is for permanent failures)
      expect(states).toEqual({ "ok-1": "succeeded", "fail-1": "dead" });
      const err = JSON.parse(oneLine(r.stderr)).error;
      expect(err).toMatchObject({ code: "TASK_FAILED", exitCode: 1 });
      expect(err.message).toContain("fail-1");

      const human = await mesh(["submit", file, "--wait"]);
      expectExit(human, 1);
      expect(oneLine(human.stderr)).toMatch(/^error: 1 of 2 task\(s\) did not succeed \(fail-1 dead: /);

      const t = (await mesh(["task", "fail-1", "--json"])).json().task;
      expect(t.attempts[0]).toMatchObject({ outcome: "failed", exitCode: 3 });

      const retry = await mesh(["retry", "fail-1", "--json"]);
      expectExit(retry, 0);
      expect(["queued", "claimed", "running", "dead"]).toContain(retry.json().task.state);
      const w = await mesh(["watch", "fail-1"]);
      expectExit(w, 1);
      expect(oneLine(w.stderr)).toContain("task fail-1 ended dead");
      const after = (await mesh(["task", "fail-1", "--json"])).json().task;
      expect(after.attempt).toBe(2);
      expect(after.attempts).toHaveLength(2);

      // retrying a task that succeeded is refused: exit 5, one line
      const refused = await mesh(["retry", "ok-1"]);
      expectExit(refused, 5);
      oneLine(refused.stderr);
    },
    LONG,
  );

  it(
    "cancel: a queued unschedulable task and a running one; cancelling twice is exit 5",
    async () => {
      const file = await specFile(
        "cancel.yaml",
        `- {id: mars-1, prompt: p, runner: command, command: [node, -e, "0"], labels: {zone: mars}}\n` +
          `- {id: long-1, prompt: p, runner: command, command: ${nodeCmd("console.log('started'); setInterval(() => {}, 1000)")}}\n`,
      );
      expectExit(await mesh(["submit", file, "--json"]), 0);

      const mars = await waitFor(
        async () => {
          const t = (await mesh(["task", "mars-1", "--json"])).json().task;
          return t.unschedulable ? t : undefined;
        },
        { name: "mars-1 reported unschedulable", timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(mars.state).toBe("queued");
      expect(mars.unschedulable).toEqual(expect.any(String));
      const c1 = await mesh(["cancel", "mars-1", "--json"]);
      expectExit(c1, 0);
      expect(c1.json().task).toMatchObject({ id: "mars-1", state: "cancelled" });

      await waitFor(async () => (await mesh(["task", "long-1", "--json"])).json().task.state === "running", {
        name: "long-1 running",
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      const c2 = await mesh(["cancel", "long-1", "--json"]);
      expectExit(c2, 0);
      expect(c2.json().task.id).toBe("long-1");
      expect(c2.json().task.cancelRequested || c2.json().task.state === "cancelled").toBe(true);
      const w = await mesh(["watch", "long-1", "--json"]);
      expectExit(w, 1); // it ended cancelled, not succeeded
      expect(w.lines().at(-1)).toMatchObject({ type: "state", state: "cancelled" });

      const twice = await mesh(["cancel", "long-1", "--json"]);
      expectExit(twice, 5);
      expect(JSON.parse(oneLine(twice.stderr)).error).toMatchObject({
        code: "FAILED_PRECONDITION",
        exitCode: 5,
      });
    },
    LONG,
  );

  it(
    "tasks: filters by state, pool, worker and limit",
    async () => {
      const all = await mesh(["tasks", "--json"]);
      expectExit(all, 0);
      const tasks = all.json().tasks as any[];
      expect(tasks.length).toBeGreaterThanOrEqual(5);
      for (const key of [
        "id",
        "state",
        "pool",
        "attempt",
        "maxAttempts",
        "workerId",
        "updatedAt",
        "attempts",
        "result",
      ]) {
        expect(tasks[0]).toHaveProperty(key);
      }

      const dead = (await mesh(["tasks", "--json", "--state", "dead"])).json().tasks as any[];
      expect(dead.map((t) => t.id)).toContain("fail-1");
      expect(dead.every((t) => t.state === "dead")).toBe(true);
      const some = (await mesh(["tasks", "--json", "--state", "dead,cancelled", "--state", "failed"])).json()
        .tasks as any[];
      expect(new Set(some.map((t) => t.state))).toEqual(new Set(["dead", "cancelled"]));
      expect((await mesh(["tasks", "--json", "--pool", "nope"])).json().tasks).toEqual([]);
      expect((await mesh(["tasks", "--json", "--limit", "1"])).json().tasks).toHaveLength(1);

      const badState = await mesh(["tasks", "--state", "sleeping"]);
      expectExit(badState, 2);
      expect(oneLine(badState.stderr)).toContain('"sleeping" is not a task state');

      const human = await mesh(["tasks", "--state", "succeeded"]);
      expectExit(human, 0);
      expect(human.stdout).toMatch(/^ID\s+STATE\s+POOL\s+ATTEMPT\s+WORKER\s+UPDATED\s+NOTE/);
      expect(human.stdout).toContain("gpu-1");
    },
    LONG,
  );

  it(
    "watch without an id follows the mesh until Ctrl-C",
    async () => {
      const child = execa(process.execPath, [CLI, "watch", "--json"], {
        reject: false,
        env: { NO_COLOR: "1", MESH_DAEMON: a.socket },
        stdin: "ignore",
        buffer: false,
      });
      const lines: any[] = [];
      let partial = "";
      child.stdout?.on("data", (c: Buffer) => {
        partial += c.toString();
        const parts = partial.split("\n");
        partial = parts.pop() ?? "";
        for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
      });
      // The stream is live-only and has no "subscribed" signal: submit small probe tasks until
      // the watcher shows one, then the real assertion is deterministic.
      let probes = 0;
      await waitFor(
        async () => {
          if (lines.some((l) => l.type === "task_state" && String(l.taskId).startsWith("probe-")))
            return true;
          probes++;
          await mesh(["submit", "-", "--json"], {
            input: `{id: probe-${probes}, prompt: p, runner: command, command: [node, -e, "0"]}`,
          });
          return false;
        },
        { name: "mesh watcher sees a probe task", timeoutMs: 90_000, intervalMs: 500 },
      );
      const r = await mesh(["submit", "-", "--wait", "--json"], {
        input: `{id: meshwatch-1, prompt: p, runner: command, command: [node, -e, "0"]}`,
      });
      expectExit(r, 0);
      await waitFor(() => lines.some((l) => l.taskId === "meshwatch-1" && l.state === "succeeded"), {
        name: "mesh watcher sees meshwatch-1 succeed",
        timeoutMs: 60_000,
      });
      const seen = lines.filter((l) => l.taskId === "meshwatch-1").map((l) => l.state);
      expect(seen[0]).toBe("queued");
      expect(lines.find((l) => l.taskId === "meshwatch-1")).toEqual(
        expect.objectContaining({ type: "task_state", attempt: expect.any(Number), at: expect.any(String) }),
      );
      child.kill("SIGINT");
      const res = await child;
      expect(res.exitCode).toBe(0);
    },
    LONG,
  );

  it(
    "not found is exit 4 and an unreachable daemon exit 3, each one line",
    async () => {
      for (const args of [
        ["task", "no-such-task"],
        ["watch", "no-such-task"],
        ["cancel", "no-such-task"],
        ["retry", "no-such-task"],
      ]) {
        const r = await mesh([...args, "--json"]);
        expectExit(r, 4);
        expect(JSON.parse(oneLine(r.stderr)).error).toMatchObject({ code: "NOT_FOUND", exitCode: 4 });
        expect(r.stdout).toBe("");
      }
      const human = await mesh(["task", "no-such-task"]);
      expect(oneLine(human.stderr)).toBe(
        'error: no task with id "no-such-task"; list them with `mesh tasks`',
      );

      const gone = await mesh(["workers"], { env: { MESH_DAEMON: join(workDir, "nothing-here.sock") } });
      expectExit(gone, 3);
      expect(oneLine(gone.stderr)).toMatch(
        /^error: cannot reach meshd: no socket at .*nothing-here\.sock; start the daemon/,
      );
      const badAddr = await mesh(["workers", "--daemon", "not an address"]);
      expectExit(badAddr, 2);
      oneLine(badAddr.stderr);
    },
    LONG,
  );

  describe("bad input: exit 2, one clear line, nothing submitted", () => {
    const big = "x".repeat(257 * 1024);
    const cases: Array<{ name: string; text: string; error: RegExp; ids: string[] }> = [
      {
        name: "YAML syntax error",
        text: "id: bad-yaml\nprompt: [unclosed\n",
        // once, and on the file's last line (not the empty one after its final newline)
        error: /not valid YAML\/JSON at the end of the input \(line 2\): Flow sequence[^(]*$/,
        ids: ["bad-yaml"],
      },
      {
        name: "unknown field",
        text: "id: bad-field\nprompt: hi\nrunner: command\ncommand: [node]\npriority: 3\n",
        error: /priority: unknown field "priority"/,
        ids: ["bad-field"],
      },
      {
        name: "wrong type",
        text: "id: bad-type\nprompt: hi\nmaxAttempts: three\n",
        error: /maxAttempts: expected number/,
        ids: ["bad-type"],
      },
      {
        name: "missing prompt",
        text: "id: bad-noprompt\ntitle: no prompt here\n",
        error: /prompt: is required/,
        ids: ["bad-noprompt"],
      },
      {
        name: "duplicate ids in one batch",
        text: "- {id: bad-dup, prompt: a}\n- {id: bad-dup, prompt: b}\n",
        error: /tasks\[1\]\.id: duplicate id "bad-dup"/,
        ids: ["bad-dup"],
      },
      {
        name: "oversized prompt",
        text: JSON.stringify({ id: "bad-big", prompt: big }),
        error: /prompt: prompt is larger than 256 KiB/,
        ids: ["bad-big"],
      },
      {
        name: "a batch with one invalid task",
        text:
          "tasks:\n  - {id: bad-batch-1, prompt: a, runner: command, command: [node, -e, '0']}\n" +
          "  - {id: bad-batch-2, prompt: b, runner: command, command: [node, -e, '0']}\n" +
          "  - {id: bad-batch-3, prompt: c, timeout: soon}\n",
        error: /tasks\[2\]\.timeout: "soon" is not a duration/,
        ids: ["bad-batch-1", "bad-batch-2", "bad-batch-3"],
      },
    ];

    it.each(cases)(
      "$name",
      async ({ name, text, error, ids }) => {
        const before = (await mesh(["tasks", "--json"])).json().tasks.length;
        const file = await specFile(`${name.replace(/\W+/g, "-")}.yaml`, text);
        const r = await mesh(["submit", file, "--wait"]);
        expectExit(r, 2);
        const line = oneLine(r.stderr);
        expect(line).toMatch(/^error: invalid task spec: /);
        expect(line).toMatch(error);
        expect(line).toContain("nothing was submitted");
        expect(r.stdout).toBe("");
        const j = await mesh(["submit", file, "--json"]);
        expectExit(j, 2);
        expect(JSON.parse(oneLine(j.stderr)).error).toMatchObject({ code: "INVALID_ARGUMENT", exitCode: 2 });
        // the CLI refuses before contacting any daemon: a dead address still gives exit 2, not 3
        expectExit(await mesh(["submit", file], { env: { MESH_DAEMON: join(workDir, "absent.sock") } }), 2);
        for (const id of ids) expectExit(await mesh(["task", id]), 4);
        expect((await mesh(["tasks", "--json"])).json().tasks.length).toBe(before);
      },
      LONG,
    );

    it(
      "the daemon validates too: a raw SubmitTasks with one bad task is refused whole",
      async () => {
        const client = new MeshServiceClient(`unix:${a.socket}`, credentials.createInsecure());
        try {
          const err = await new Promise<ServiceError>((resolve, reject) =>
            client.submitTasks(
              { document: "- {id: raw-1, prompt: a}\n- {id: raw-2, prompt: ''}\n", source: "raw.yaml" },
              new Metadata(),
              { deadline: Date.now() + 30_000 },
              (e) => (e ? resolve(e) : reject(new Error("SubmitTasks accepted an invalid batch"))),
            ),
          );
          expect(err.code).toBe(status.INVALID_ARGUMENT);
          expect(err.details).toContain("tasks[1].prompt");
          expect(err.metadata.get("mesh-error-field")).toEqual(["tasks[1].prompt"]);
        } finally {
          client.close();
        }
        expectExit(await mesh(["task", "raw-1"]), 4);
      },
      LONG,
    );
  });

  it(
    "over TCP: TLS and the bearer token are required",
    async () => {
      if (!tcp) throw new Error("no TCP listener configured");
      const base = ["--daemon", tcp.address, "--tls-ca", tcp.ca];
      const ok = await mesh([...base, "workers", "--json"], { env: { MESH_TOKEN: tcp.token } });
      expectExit(ok, 0);
      expect(ok.json().workers).toHaveLength(2);
      expect(ok.stderr).toBe(""); // no Node warnings either

      const tokenFile = join(workDir, "token");
      await writeFile(tokenFile, tcp.token);
      expectExit(await mesh([...base, "--token-file", tokenFile, "task", "gpu-1", "--json"]), 0);

      const missing = await mesh([...base, "workers"]);
      expectExit(missing, 3);
      expect(oneLine(missing.stderr)).toContain("missing bearer token");
      const wrong = await mesh([...base, "workers", "--json"], { env: { MESH_TOKEN: "nope" } });
      expectExit(wrong, 3);
      expect(JSON.parse(oneLine(wrong.stderr)).error).toMatchObject({ code: "UNAUTHENTICATED", exitCode: 3 });
      // A secret on argv is refused before anything runs, and its value is not repeated.
      for (const argv of [["--token", tcp.token], [`--token=${tcp.token}`]]) {
        const onArgv = await mesh([...base, ...argv, "workers", "--json"]);
        expectExit(onArgv, 2);
        expect(JSON.parse(oneLine(onArgv.stderr)).error).toMatchObject({
          code: "INVALID_ARGUMENT",
          field: "--token",
        });
        expect(onArgv.stderr).not.toContain(tcp.token);
        expect(onArgv.stdout).toBe("");
      }
      const untrusted = await mesh(["--daemon", tcp.address, "workers"], { env: { MESH_TOKEN: tcp.token } });
      expectExit(untrusted, 3);
      oneLine(untrusted.stderr);
    },
    LONG,
  );

  it(
    "colours only on a terminal, and never with NO_COLOR",
    async () => {
      // `script` gives the CLI a pseudo-terminal as stdout
      const cmd = `${process.execPath} ${CLI} tasks --state succeeded`;
      const onTty = await execa("script", ["-qec", cmd, "/dev/null"], {
        env: { MESH_DAEMON: a.socket, NO_COLOR: "" },
        reject: false,
        timeout: LONG,
      });
      expect(onTty.exitCode).toBe(0);
      expect(onTty.stdout).toContain("\x1b[32msucceeded\x1b[0m");
      const noColor = await execa("script", ["-qec", cmd, "/dev/null"], {
        env: { MESH_DAEMON: a.socket, NO_COLOR: "1" },
        reject: false,
        timeout: LONG,
      });
      expect(noColor.exitCode).toBe(0);
      expect(noColor.stdout).toContain("succeeded");
      expect(noColor.stdout).not.toContain("\x1b[");
    },
    LONG,
  );

  it("the Unix socket is private to the daemon's user", async () => {
    const { statSync } = await import("node:fs");
    expect(statSync(a.socket).mode & 0o777).toBe(0o600);
    expect(statSync(b.socket).mode & 0o777).toBe(0o600);
    // and reflection descriptors are embedded in the build, not read from .proto files
    expect(readFileSync(join(ROOT, "dist", "proto", "gen", "descriptor.js"), "utf8")).toContain(
      "fileDescriptorProtosBase64",
    );
  });
});
