// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
// Issue 11, the CLI's promises, end to end: the BUILT `mesh` (node dist/cli/main.js) as a child
// process against a real `meshd` child on a real nats-server. The README's first submit ends;
// a wait on a task no live worker serves says so in every output mode and ends with exit 6;
// a watch of a retried task ends on the current attempt; usage errors honour --json.
// Needs `npm run build` first (npm test does it).
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN, MESHD_BIN, REPO_ROOT } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";

const LONG = 120_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json(): any;
  lines(): any[];
  errLines(): string[];
}

let nats: NatsServer;
let a: Meshd;
let workDir: string;
const daemons: Meshd[] = [];

const parseLines = (text: string): any[] =>
  text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

function toRun(r: { exitCode?: number; stdout: unknown; stderr: unknown }): Run {
  const stdout = String(r.stdout);
  const stderr = String(r.stderr);
  return {
    code: r.exitCode ?? -1,
    stdout,
    stderr,
    json: () => JSON.parse(stdout),
    lines: () => parseLines(stdout),
    errLines: () => stderr.split("\n").filter((l) => l.trim()),
  };
}

const cliEnv = (extra: Record<string, string> = {}) => ({
  NO_COLOR: "1",
  MESH_DAEMON: a?.socket ?? join(workDir, "no-daemon.sock"),
  MESH_TOKEN: "",
  MESH_TLS_CA: "",
  ...extra,
});

async function mesh(args: string[], opts: { input?: string; cwd?: string } = {}): Promise<Run> {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" }),
    env: cliEnv(),
    timeout: LONG,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  return toRun(r);
}

function expectExit(r: Run, code: number): void {
  if (r.code !== code)
    throw new Error(`exit ${r.code}, expected ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

async function startMeshd(name: string, extra: string[] = []): Promise<Meshd> {
  const d = await startMeshdProcess({
    natsUrl: nats.url,
    name,
    extra,
    logLevel: "warn",
    prefix: "mesh-promises",
  });
  daemons.push(d);
  return d;
}

const stopMeshd = stopMeshdProcess;

async function specFile(name: string, text: string): Promise<string> {
  const path = join(workDir, name);
  await writeFile(path, text);
  return path;
}

/** A task no worker of this mesh serves (until a `zone=mars` worker starts). */
const marsTask = (id: string) =>
  `{id: ${id}, prompt: p, runner: command, command: [node, -e, "0"], labels: {zone: mars}}\n`;

beforeAll(async () => {
  for (const f of [MESH_BIN, MESHD_BIN]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (npm test does)`);
  }
  workDir = await makeTempDir("mesh-promises-work-");
  nats = await NatsServer.start();
  a = await startMeshd("a");
}, LONG);

afterAll(async () => {
  await Promise.allSettled(daemons.map(stopMeshd));
  await nats?.cleanup();
  await removeTempDirs();
}, LONG);

describe("the README's first submit", () => {
  it(
    "`submit examples/command.yaml --wait` finishes on a worker without labels",
    async () => {
      const r = await mesh(["submit", "examples/command.yaml", "--wait"], { cwd: REPO_ROOT });
      expectExit(r, 0);
      expect(r.stdout).toMatch(/^uname-anywhere\s+succeeded\s+1\s/m);
      const json = await mesh(["submit", "examples/command.yaml", "--wait", "--json"], { cwd: REPO_ROOT });
      expectExit(json, 0);
      const tasks = json.json().tasks as any[];
      expect(tasks.length).toBeGreaterThan(0);
      for (const t of tasks) expect(t).toMatchObject({ state: "succeeded", unschedulable: null });
    },
    LONG,
  );

  it(
    "`submit examples/gpu.yaml --wait` on a worker without gpu=true says why and ends with exit 6",
    async () => {
      const r = await mesh(["submit", "examples/gpu.yaml", "--wait", "--unschedulable-timeout", "1s"], {
        cwd: REPO_ROOT,
      });
      expectExit(r, 6);
      expect(r.errLines()[0]).toMatch(/^warning: task needs-gpu cannot run yet: .*gpu=true/);
      expectExit(await mesh(["cancel", "needs-gpu"]), 0);
    },
    LONG,
  );
});

describe("waiting on a task no live worker serves", () => {
  it(
    "submit --wait, piped: a warning on stderr, then exit 6 after --unschedulable-timeout",
    async () => {
      const file = await specFile("mars-1.yaml", marsTask("mars-1"));
      const r = await mesh(["submit", file, "--wait", "--unschedulable-timeout", "2s"]);
      expectExit(r, 6);
      const [warning, error, ...rest] = r.errLines();
      expect(rest).toEqual([]);
      expect(warning).toMatch(/^warning: task mars-1 cannot run yet: no live worker serves pool "default"/);
      expect(warning).toContain("zone=mars");
      expect(error).toMatch(/^error: task mars-1 is still queued: no live worker serves/);
      expect(error).toContain("--unschedulable-timeout");
      expect(r.stdout).toMatch(/^mars-1\s+queued\s+0\s+-\s+unschedulable: no live worker serves/m);
    },
    LONG,
  );

  it(
    "submit --wait --json: a JSON warning line, the summary with `unschedulable`, a JSON error with exit 6",
    async () => {
      const file = await specFile("mars-2.yaml", `- ${marsTask("mars-2")}- ${marsTask("mars-3")}`);
      const r = await mesh(["submit", file, "--wait", "--json", "--unschedulable-timeout", "2s"]);
      expectExit(r, 6);
      const err = r.errLines().map((l) => JSON.parse(l));
      const warnings = err.filter((l) => l.warning).map((l) => l.warning);
      expect(warnings.map((w) => w.taskId).sort()).toEqual(["mars-2", "mars-3"]);
      for (const w of warnings) {
        expect(w).toMatchObject({ code: "UNSCHEDULABLE", reason: expect.stringContaining("zone=mars") });
        expect(Object.keys(w).sort()).toEqual(["code", "message", "reason", "taskId"]);
      }
      expect(err.at(-1)).toEqual({
        error: { code: "UNSCHEDULABLE", message: expect.any(String), field: null, exitCode: 6 },
      });
      expect(err).toHaveLength(3);
      expect(r.json().tasks).toEqual([
        expect.objectContaining({
          id: "mars-2",
          state: "queued",
          unschedulable: expect.stringContaining("no live worker"),
        }),
        expect.objectContaining({
          id: "mars-3",
          state: "queued",
          unschedulable: expect.stringContaining("no live worker"),
        }),
      ]);
    },
    LONG,
  );

  it(
    "watch --json: an `unschedulable` event line, and exit 6; on a terminal the warning shows too",
    async () => {
      const w = await mesh(["watch", "mars-1", "--json", "--unschedulable-timeout", "1s"]);
      expectExit(w, 6);
      const events = w.lines();
      expect(events).toContainEqual({
        type: "unschedulable",
        taskId: "mars-1",
        at: expect.any(String),
        attempt: 1,
        workerId: null,
        reason: expect.stringContaining("zone=mars"),
      });
      expect(events).toContainEqual(expect.objectContaining({ type: "state", state: "queued" }));
      expect(JSON.parse(w.errLines().at(-1) as string).error).toMatchObject({
        code: "UNSCHEDULABLE",
        exitCode: 6,
      });

      // `script` gives the CLI a pseudo-terminal; stdout and stderr both land in its output
      const cmd = `${process.execPath} ${MESH_BIN} watch mars-1 --unschedulable-timeout 1s`;
      const tty = await execa("script", ["-qec", cmd, "/dev/null"], {
        env: cliEnv(),
        reject: false,
        timeout: LONG,
      });
      expect(String(tty.stdout)).toMatch(/warning: task mars-1 cannot run yet: no live worker serves/);
      expect(String(tty.stdout)).toMatch(/error: task mars-1 is still queued/);
    },
    LONG,
  );

  it(
    "--unschedulable-timeout 0 keeps waiting, and the wait ends well once a serving worker joins",
    async () => {
      const child = execa(
        process.execPath,
        [MESH_BIN, "submit", "-", "--wait", "--json", "--unschedulable-timeout", "0"],
        { reject: false, env: cliEnv(), input: marsTask("mars-4"), timeout: LONG },
      );
      let stderr = "";
      child.stderr?.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      await waitFor(() => stderr.includes('"UNSCHEDULABLE"'), {
        name: "the waiting CLI warns that mars-4 cannot run",
        timeoutMs: 60_000,
      });
      expect(stderr).toContain("no limit (--unschedulable-timeout 0)");
      await startMeshd("mars", ["--labels", "zone=mars"]);
      const r = toRun(await child);
      expectExit(r, 0);
      expect(r.json().tasks).toEqual([
        expect.objectContaining({ id: "mars-4", state: "succeeded", unschedulable: null }),
      ]);
    },
    LONG,
  );

  it("a bad --unschedulable-timeout is a usage error", async () => {
    const r = await mesh(["watch", "mars-1", "--unschedulable-timeout", "soon", "--json"]);
    expectExit(r, 2);
    expect(JSON.parse(r.errLines()[0] as string).error).toMatchObject({
      code: "INVALID_ARGUMENT",
      field: "--unschedulable-timeout",
      exitCode: 2,
    });
  });
});

describe("a retried task", () => {
  it(
    "watch and submit --wait end on the current attempt; its `queued` event carries the new attempt",
    async () => {
      // Every attempt dies, each with its own exit code: 11, then 12.
      const spec = `{id: retried-1, prompt: p, runner: command, maxAttempts: 1, command: [node, -e, "process.exit(10 + Number(process.env.MESH_ATTEMPT))"]}\n`;
      const first = await mesh(["submit", "-", "--wait", "--json"], { input: spec });
      expectExit(first, 1);
      expect(first.json().tasks[0]).toMatchObject({ state: "dead", attempt: 1 });
      expectExit(await mesh(["retry", "retried-1", "--json"]), 0);
      await waitFor(
        async () => {
          const t = (await mesh(["task", "retried-1", "--json"])).json().task;
          return t.state === "dead" && t.attempt === 2;
        },
        { name: "retried-1's second attempt ended", timeoutMs: 60_000, intervalMs: 200 },
      );

      const w = await mesh(["watch", "retried-1", "--json"]);
      expectExit(w, 1);
      const states = w.lines().filter((e) => e.type === "state");
      expect(states.at(-1)).toMatchObject({
        state: "dead",
        attempt: 2,
        reason: expect.stringContaining("12"),
      });
      expect(states.map((e) => `${e.state}@${e.attempt}`)).toEqual([
        "queued@1",
        "claimed@1",
        "running@1",
        "dead@1",
        "queued@2",
        "claimed@2",
        "running@2",
        "dead@2",
      ]);
      expect(JSON.parse(w.errLines()[0] as string).error.message).toContain("exit code 12");

      const human = await mesh(["watch", "retried-1"]);
      expectExit(human, 1);
      expect(human.errLines()).toEqual([
        expect.stringMatching(/^error: task retried-1 ended dead: .*exit code 12/),
      ]);

      const again = await mesh(["submit", "-", "--wait", "--json"], { input: spec });
      expectExit(again, 1);
      expect(again.json().tasks).toEqual([
        expect.objectContaining({ id: "retried-1", created: false, state: "dead", attempt: 2 }),
      ]);
    },
    LONG,
  );
});

describe("a task that fails once and is retried by its worker", () => {
  it(
    "the re-queue's `queued` event carries the next attempt, and the watch ends on that attempt",
    async () => {
      const spec = `{id: requeued-1, prompt: p, runner: command, maxAttempts: 2, command: [node, -e, "process.exit(process.env.MESH_ATTEMPT === '1' ? 3 : 0)"]}\n`;
      const r = await mesh(["submit", "-", "--follow", "--json"], { input: spec });
      expectExit(r, 0);
      const states = r.lines().filter((e) => e.type === "state");
      expect(states.map((e) => `${e.state}@${e.attempt}`)).toEqual([
        "queued@1",
        "claimed@1",
        "running@1",
        "queued@2",
        "claimed@2",
        "running@2",
        "succeeded@2",
      ]);
      expect(r.lines().at(-1)).toMatchObject({
        type: "summary",
        tasks: [{ state: "succeeded", attempt: 2 }],
      });
    },
    LONG,
  );
});

describe("usage errors under --json", () => {
  const cases: Array<{ name: string; args: string[]; help?: false }> = [
    { name: "an invalid choice, --json first", args: ["--json", "tasks", "--state", "nonsense"] },
    { name: "an invalid choice, --json last", args: ["tasks", "--state", "nonsense", "--json"] },
    { name: "an unknown command", args: ["--json", "nosuch"] },
    { name: "an unknown option", args: ["tasks", "--json", "--bogus"] },
    { name: "an unknown global option", args: ["--json", "--bogus", "tasks"] },
    { name: "a missing argument", args: ["--json", "task"] },
    { name: "an option without its value", args: ["--json", "tasks", "--limit"] },
    { name: "too many arguments", args: ["--json", "watch", "x", "y"] },
    { name: "no command at all", args: ["--json"] },
    { name: "--json given a value", args: ["--json=true", "workers"] },
    { name: "--json given a value after the command", args: ["workers", "--json=false"] },
    {
      name: "a bad flag value checked by the command",
      args: ["--json", "--timeout", "soon", "workers"],
      help: false,
    },
  ];

  it.each(cases)("$name: one JSON error object on stderr, exit 2", async ({ args, help }) => {
    const r = await mesh(args);
    expectExit(r, 2);
    expect(r.stdout).toBe("");
    const lines = r.errLines();
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] as string);
    expect(Object.keys(parsed)).toEqual(["error"]);
    expect(parsed.error).toEqual({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/\S/),
      field: parsed.error.field === null ? null : expect.any(String),
      exitCode: 2,
    });
    if (help !== false) expect(parsed.error.message).toContain("--help");
  });

  it("without --json the same errors stay one human line", async () => {
    const r = await mesh(["tasks", "--state", "nonsense"]);
    expectExit(r, 2);
    expect(r.errLines()).toEqual([expect.stringMatching(/^error: .*"nonsense" is not a task state/)]);
    const help = await mesh(["--help"]);
    expectExit(help, 0);
    expect(help.stdout).toContain("6  a task that was waited on could not run");
  });
});
