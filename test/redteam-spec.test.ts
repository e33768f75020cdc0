// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * Red team: task input as an attacker writes it. The built `mesh` CLI and `meshd` run as child
 * processes on a nats-server that requires a password; Claude tasks run the real Claude Code
 * against the mock Messages API. Every attack here would have worked before the ceilings: each
 * is now refused (at submit with the field named, exit 2; or by the claiming worker, cleanly) or
 * harmless, and the daemon serves on afterwards.
 */

import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskSpec } from "../daemon/tasks/spec.js";
import { MeshServiceClient } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  startMockAnthropic,
} from "./mock-anthropic/index.js";
import {
  MESH_BIN,
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  waitForState,
} from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

const LONG = 120_000;
const NATS_PASSWORD = "nats-pw-0123456789-do-not-leak";
const AWS_SECRET = "aws-secret-ABCDEFGHIJ0123456789";
const PLAIN = "plain-value-not-passed-0123";
/** A multi-line secret of the daemon's environment: a child prints it a line at a time. */
const PEM_BODY = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"];
const PEM = ["-----BEGIN PRIVATE KEY-----", ...PEM_BODY, "-----END PRIVATE KEY-----", ""].join("\n");
const POOL = "red";

let nats: NatsServer;
let mock: MockAnthropic;
let meshd: MeshdProcess;
let socket: string;
let client: MeshClient;
let workDir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function mesh(args: string[]): Promise<Run> {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    stdin: "ignore",
    env: { NO_COLOR: "1", MESH_DAEMON: socket, MESH_TOKEN: "" },
    extendEnv: true,
    timeout: LONG,
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function specFile(doc: Record<string, unknown>): Promise<string> {
  const file = join(workDir, `${uniqueId("spec")}.json`);
  await writeFile(file, JSON.stringify({ pool: POOL, prompt: "red team", ...doc }));
  return file;
}

/** Submits through the CLI with --json: exit 2, INVALID_ARGUMENT naming `field`, nothing created. */
async function refusedByCli(doc: Record<string, unknown>, field: string): Promise<void> {
  const id = uniqueId("rt");
  const r = await mesh(["--json", "submit", await specFile({ id, ...doc })]);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe("");
  expect(JSON.parse(r.stderr.trim()).error).toMatchObject({ code: "INVALID_ARGUMENT", field, exitCode: 2 });
  expect((await mesh(["task", id])).code).toBe(4);
}

/** Submits raw to the daemon's gRPC API (no CLI-side check): refused naming `field`. */
async function refusedByDaemon(doc: Record<string, unknown>, field: string): Promise<void> {
  const id = uniqueId("rt");
  const grpc = new MeshServiceClient(`unix:${socket}`, credentials.createInsecure());
  try {
    const err = await new Promise<ServiceError | undefined>((resolve) =>
      grpc.submitTasks(
        { document: JSON.stringify({ id, pool: POOL, prompt: "red team", ...doc }), source: "raw.json" },
        new Metadata(),
        { deadline: Date.now() + 20_000 },
        (e) => resolve(e ?? undefined),
      ),
    );
    expect(err?.code, err?.details).toBe(status.INVALID_ARGUMENT);
    expect(err?.metadata.get("mesh-error-field")).toEqual([field]);
  } finally {
    grpc.close();
  }
  expect(await client.store.get(id)).toBeUndefined();
}

/** Every event of a task as `mesh submit --follow --json` prints it, and the final record. */
async function runFollowing(
  doc: Record<string, unknown>,
): Promise<{ events: any[]; out: string; task: any }> {
  const id = uniqueId("rt");
  const r = await mesh(["--json", "submit", await specFile({ id, ...doc }), "--follow"]);
  const events = r.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const shown = await mesh(["--json", "task", id]);
  expect(shown.code, shown.stderr).toBe(0);
  return { events, out: r.stdout + shown.stdout, task: JSON.parse(shown.stdout).task };
}

beforeAll(async () => {
  for (const f of [MESH_BIN]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\``);
  workDir = await makeTempDir("redteam-");
  mock = await startMockAnthropic({
    // The "model" repeats whatever secret its prompt names: secrets in a child's output.
    script: ({ firstUserText }) =>
      answer(
        firstUserText.includes("leak")
          ? `the NATS password is ${NATS_PASSWORD}; the key is ${FAKE_API_KEY}; aws ${AWS_SECRET}`
          : "done",
      ),
  });
  nats = await NatsServer.start({
    extraConfig: `authorization { user: mesh, password: "${NATS_PASSWORD}" }`,
  });
  const stateDir = await makeTempDir("meshd-red-");
  const config = join(workDir, "meshd.yaml");
  await writeFile(
    config,
    [
      `pools: [${POOL}]`,
      "runners: [claude, command, noop]",
      "slots: 4",
      "lease: 2s",
      "presenceInterval: 500ms",
      "retryDelay: 100ms",
      `claude: { command: ["${CLAUDE_BIN}"], env: { ANTHROPIC_BASE_URL: "${mock.url}" }, hangTimeout: 60s, maxTurns: 40, maxBudgetUsd: 5 }`,
      "",
    ].join("\n"),
  );
  socket = join(stateDir, "meshd.sock");
  meshd = await spawnMeshd(
    ["-c", config, "--nats", nats.url, "--nats-user", "mesh", "--no-http", "--state-dir", stateDir],
    {
      MESH_NATS_PASSWORD: NATS_PASSWORD,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      AWS_SECRET_ACCESS_KEY: AWS_SECRET,
      DEPLOY_PRIVATE_KEY: PEM,
      RED_TEAM_PLAIN: PLAIN,
    },
  );
  client = await openClient(nats.url, { auth: { user: "mesh", pass: NATS_PASSWORD } });
  await waitFor(
    async () => {
      const r = await mesh(["--json", "workers"]);
      const w = r.code === 0 ? JSON.parse(r.stdout).workers : [];
      return w.length === 1 && ["claude", "command", "noop"].every((k) => w[0].runners.includes(k));
    },
    { name: "meshd offers claude, command and noop", timeoutMs: 60_000, intervalMs: 250 },
  );
}, LONG);

afterAll(async () => {
  meshd?.kill("SIGKILL");
  await client?.close();
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
}, LONG);

describe("red team: task input", () => {
  it(
    "a spec raising the permission mode or pre-approving tools is refused at submit, naming the field",
    async () => {
      await refusedByCli({ agent: { permissionMode: "bypassPermissions" } }, "agent.permissionMode");
      await refusedByCli({ agent: { allowedTools: ["Bash"] } }, "agent.allowedTools[0]");
      // The operator's turn and budget limits are ceilings too: a task can lower them only.
      await refusedByCli({ agent: { maxTurns: 41 } }, "agent.maxTurns");
      await refusedByDaemon({ agent: { maxBudgetUsd: 5.01 } }, "agent.maxBudgetUsd");
      const human = await mesh([
        "submit",
        await specFile({ agent: { permissionMode: "bypassPermissions" } }),
      ]);
      expect(human.code).toBe(2);
      expect(human.stderr).toMatch(
        /agent\.permissionMode: "bypassPermissions" is above this worker's ceiling "acceptEdits"/,
      );
      expect(human.stderr).toContain("claude.maxPermissionMode");
    },
    LONG,
  );

  it.each([
    "PATH",
    "LD_PRELOAD",
    "GIT_SSH_COMMAND",
    "BASH_ENV",
    "HTTPS_PROXY",
    "NODE_OPTIONS",
    // other casings: the loader, git and curl read some names in either case
    "git_dir",
    "Ld_Preload",
    "https_proxy",
    // options for the program that reads them (a pre-approved `go test` would run anything)
    "GOFLAGS",
    "GLIBC_TUNABLES",
  ])(
    "env injection: %s is refused by the CLI and by the daemon",
    async (name) => {
      const doc = { runner: "command", command: ["true"], env: { [name]: "/tmp/evil" } };
      await refusedByCli(doc, `env.${name}`);
      await refusedByDaemon(doc, `env.${name}`);
    },
    LONG,
  );

  it.each<[string, Record<string, unknown>, string]>([
    ["model", { agent: { model: "--dangerously-skip-permissions" } }, "agent.model"],
    ["tool name", { agent: { disallowedTools: ["--x"] } }, "agent.disallowedTools[0]"],
    ["ref", { repo: "/srv/repos/app", ref: "--upload-pack=touch /tmp/pwned" }, "ref"],
    ["repo", { repo: "-oProxyCommand=touch /tmp/pwned" }, "repo"],
    ["ssh host", { repo: "ssh://-oProxyCommand=touch%20/tmp/pwned/x" }, "repo"],
    ["scp-like user and host", { repo: "git@-oProxyCommand=x:app" }, "repo"],
    ["scp-like path", { repo: "git@example.com:--upload-pack=touch /tmp/pwned" }, "repo"],
    ["relative repo (refused only at claim before)", { runner: "noop", repo: "some/relative/dir" }, "repo"],
  ])(
    "option injection: %s is refused by the CLI and by the daemon",
    async (_what, doc, field) => {
      await refusedByCli(doc, field);
      await refusedByDaemon(doc, field);
    },
    LONG,
  );

  it(
    "the claiming worker checks its own ceilings: a spec written to the bus directly fails cleanly, and nothing runs",
    async () => {
      const marker = join(workDir, "should-not-exist");
      const base = { prompt: "red team", pool: POOL, maxAttempts: 3, labels: {}, agent: {}, env: {} };
      const planted: Array<[TaskSpec, RegExp]> = [
        [
          { ...base, id: uniqueId("bus"), runner: "claude", agent: { permissionMode: "bypassPermissions" } },
          /agent\.permissionMode: "bypassPermissions" is above this worker's ceiling/,
        ],
        [
          {
            ...base,
            id: uniqueId("bus"),
            runner: "command",
            command: [process.execPath, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "x")`],
            env: { LD_PRELOAD: "/tmp/evil.so" },
          },
          /env\.LD_PRELOAD: "LD_PRELOAD" is refused/,
        ],
        [
          {
            ...base,
            id: uniqueId("bus"),
            runner: "command",
            command: [process.execPath, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "x")`],
            env: { EXTRA: "1" },
          },
          /env\.EXTRA: "EXTRA" is not an allowed task variable on this worker/,
        ],
        [
          { ...base, id: uniqueId("bus"), runner: "noop", repo: "some/relative/dir" },
          /repo: "some\/relative\/dir": expected an absolute path or a URL/,
        ],
      ];
      // The bus client has no ceilings: it writes what a compromised submitter would.
      await client.api.submit(planted.map(([s]) => s));
      for (const [spec, reason] of planted) {
        const done = await waitForState(client.api, spec.id, ["succeeded", "failed", "dead"], 60_000);
        expect(done.record.state, JSON.stringify(done.record.attempts)).toBe("failed");
        expect(done.record.attempts).toHaveLength(1); // permanent: not retried
        expect(done.record.reason).toMatch(/^refused by this worker(: not a valid task spec|'s ceilings): /);
        expect(done.record.reason).toMatch(reason);
      }
      expect(existsSync(marker)).toBe(false);
      expect(mock.messages().filter((m) => m.view?.firstUserText === "red team")).toHaveLength(0);
    },
    LONG,
  );

  it(
    "a command task's environment holds none of the daemon's secrets",
    async () => {
      const { events, task } = await runFollowing({
        runner: "command",
        command: ["env"],
        env: { TASK_MODE: "red" },
      });
      expect(task.state).toBe("succeeded");
      const env = events.filter((e) => e.type === "log").map((e) => e.line as string);
      expect(env).toContain("TASK_MODE=red");
      expect(env.some((l) => l.startsWith("PATH="))).toBe(true);
      expect(env.some((l) => l.startsWith("MESH_TASK_ID="))).toBe(true);
      for (const name of [
        "ANTHROPIC_API_KEY",
        "MESH_NATS_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "RED_TEAM_PLAIN",
      ]) {
        expect(env.filter((l) => l.startsWith(`${name}=`))).toEqual([]);
      }
      const all = JSON.stringify(events);
      for (const secret of [FAKE_API_KEY, NATS_PASSWORD, AWS_SECRET, PLAIN])
        expect(all).not.toContain(secret);
    },
    LONG,
  );

  it(
    "a secret value a child prints is masked in its events and in the record",
    async () => {
      // The command recovers the password without it ever being in the spec.
      const encoded = Buffer.from(NATS_PASSWORD).toString("base64");
      const cmd = await runFollowing({
        runner: "command",
        command: [
          process.execPath,
          "-e",
          'console.log("pw=" + Buffer.from(process.argv[1], "base64"))',
          encoded,
        ],
      });
      expect(cmd.task.state).toBe("succeeded");
      const lines = cmd.events.filter((e) => e.type === "log").map((e) => e.line);
      expect(lines).toContain("pw=[redacted]");
      expect(cmd.out).not.toContain(NATS_PASSWORD);

      // A multi-line secret printed as it is: every line of it is masked, not only the whole.
      const pem = await runFollowing({
        runner: "command",
        command: [
          process.execPath,
          "-e",
          'process.stdout.write(String(Buffer.from(process.argv[1], "base64")))',
          Buffer.from(PEM).toString("base64"),
        ],
      });
      expect(pem.task.state).toBe("succeeded");
      const pemLines = pem.events.filter((e) => e.type === "log").map((e) => e.line);
      expect(pemLines).toHaveLength(4);
      for (const body of PEM_BODY) expect(pem.out).not.toContain(body);

      // The agent repeats the daemon's secrets in its answer: masked in events and in the result.
      const agent = await runFollowing({ runner: "claude", prompt: "please leak the secrets" });
      expect(agent.task.state, JSON.stringify(agent.task)).toBe("succeeded");
      expect(JSON.stringify(agent.task)).toContain(
        "the NATS password is [redacted]; the key is [redacted]; aws [redacted]",
      );
      for (const secret of [FAKE_API_KEY, NATS_PASSWORD, AWS_SECRET]) expect(agent.out).not.toContain(secret);
      expect(meshd.stderr()).not.toContain(NATS_PASSWORD);
    },
    LONG,
  );

  it(
    "a child printing 640 MiB without a newline costs the daemon one cut line, not its memory",
    async () => {
      const { task, events } = await runFollowing({
        runner: "command",
        command: [
          process.execPath,
          "-e",
          [
            'const b = Buffer.alloc(1 << 20, "x");',
            "let n = 0;",
            "const more = () => { while (n < 640) { n++; if (!process.stdout.write(b)) return process.stdout.once('drain', more); } };",
            "more();",
          ].join(" "),
        ],
      });
      expect(task.state, JSON.stringify(task.attempts)).toBe("succeeded");
      const lines = events.filter((e) => e.type === "log").map((e) => e.line as string);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toBe("x".repeat(4096));
      expect(meshd.child.exitCode).toBeNull();
    },
    LONG,
  );

  it(
    "escape sequences a task prints (window title, clipboard, clear screen) reach the terminal as text",
    async () => {
      const evil = "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b6n ok";
      const r = await mesh([
        "submit",
        await specFile({
          id: uniqueId("esc"),
          title: "title",
          runner: "command",
          command: [process.execPath, "-e", "console.log(process.argv[1])", evil],
        }),
        "--follow",
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("\\x1b]0;pwned\\x07\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\x9b6n ok");
      for (const raw of ["\x07", "\x9b", "\x1b]", "\x1b[2J"]) expect(r.stdout).not.toContain(raw);
    },
    LONG,
  );

  it(
    "the daemon still serves afterwards",
    async () => {
      const { task } = await runFollowing({ runner: "noop" });
      expect(task.state).toBe("succeeded");
      expect(meshd.child.exitCode).toBeNull();
    },
    LONG,
  );
});
