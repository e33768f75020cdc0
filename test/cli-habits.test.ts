// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's JSON output is asserted field by field
// The habits people expect of a CLI, each through the built `mesh`: `mesh run` without a file
// (against a real meshd on a real nats-server), shell completion sourced in real bash, `mesh
// doctor` against a real nats-server (with and without JetStream), the JSON Schemas being
// current and accepting what the daemon accepts, and `mesh up`'s readable log lines.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { humanLine, logFormat } from "../cli/up-log.js";
import { jsonSchemaFiles } from "../cli/json-schema.js";
import { makeTempDir, NatsServer, removeTempDirs } from "./harness/index.js";
import { MESH_BIN, REPO_ROOT } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";

let nats: NatsServer;
let plain: NatsServer | undefined;
let locked: NatsServer | undefined;
let d: Meshd;
let dir: string;

beforeAll(async () => {
  nats = await NatsServer.start();
  d = await startMeshdProcess({ natsUrl: nats.url, name: "habits", logLevel: "warn", prefix: "mesh-habits" });
  dir = await makeTempDir("mesh-habits-");
}, 120_000);

afterAll(async () => {
  if (d) await stopMeshdProcess(d);
  await nats?.cleanup();
  await plain?.cleanup();
  await locked?.cleanup();
  await removeTempDirs();
}, 60_000);

async function mesh(args: string[], env: Record<string, string> = {}) {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    env: { NO_COLOR: "1", MESH_DAEMON: d.socket, ...env },
    reject: false,
    stdin: "ignore",
    timeout: 60_000,
  });
  const stdout = String(r.stdout);
  return { code: r.exitCode, stdout, stderr: String(r.stderr), json: () => JSON.parse(stdout) };
}

describe("mesh run", () => {
  it("submits one task from the prompt and flags, waits, and exits by its result", async () => {
    const ok = await mesh([
      "run",
      "say hi",
      "--id",
      "run-ok",
      "--label",
      "zone=any",
      "--unschedulable-timeout",
      "1s",
      "--wait",
      "--json",
      "--",
      "node",
      "-e",
      "console.log('hi')",
    ]);
    // No worker has zone=any: unschedulable, not run. Without the label it runs.
    expect(ok.code).toBe(6);
    const r = await mesh([
      "run",
      "say hi",
      "--id",
      "run-ok-2",
      "--max-attempts",
      "1",
      "--wait",
      "--json",
      "--",
      "node",
      "-e",
      "0",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().tasks).toEqual([
      expect.objectContaining({ id: "run-ok-2", created: true, state: "succeeded", attempt: 1 }),
    ]);
    const task = await mesh(["task", "run-ok-2", "--json"]);
    expect(task.json().task).toMatchObject({ id: "run-ok-2", runner: "command", maxAttempts: 1 });

    const bad = await mesh([
      "run",
      "fail",
      "--max-attempts",
      "1",
      "--wait",
      "--",
      "node",
      "-e",
      "process.exit(2)",
    ]);
    expect(bad.code).toBe(1);
  });

  it("refuses bad input with submit's own checks, naming the field, submitting nothing", async () => {
    const badLabel = await mesh(["run", "p", "--label", "novalue", "--json", "--", "node"]);
    expect(badLabel.code).toBe(2);
    expect(JSON.parse(badLabel.stderr).error).toMatchObject({ code: "INVALID_ARGUMENT", field: "--label" });
    // Validated exactly as a task file: an id the spec refuses.
    const badId = await mesh(["run", "p", "--id", "-bad", "--json", "--", "node"]);
    expect(badId.code).toBe(2);
    expect(JSON.parse(badId.stderr).error.field).toBe("id");
    const empty = await mesh(["run", "", "--runner", "noop", "--json"]);
    expect(empty.code).toBe(2);
    expect(JSON.parse(empty.stderr).error.field).toBe("prompt");
    const list = await mesh(["tasks", "--json"]);
    expect(
      list
        .json()
        .tasks.map((t: any) => t.id)
        .sort(),
    ).not.toContain("-bad");
  });
});

describe("mesh completion", () => {
  /** Completions bash offers for `words` (the last one being completed), after sourcing the script. */
  async function complete(file: string, words: string[]): Promise<string[]> {
    const script = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _mesh_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await execa("bash", ["--norc", "-c", script], { reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    return String(r.stdout).split("\n").filter(Boolean);
  }

  it("bash: registered with complete, covering subcommands, nested ones, options and choices", async () => {
    const r = await mesh(["completion", "bash"]);
    expect(r.code).toBe(0);
    const file = join(dir, "mesh.bash");
    await writeFile(file, r.stdout);
    const reg = await execa("bash", ["--norc", "-c", `source ${file}; complete -p mesh`]);
    expect(String(reg.stdout).trim()).toBe("complete -F _mesh_complete mesh");
    const top = await complete(file, ["mesh", ""]);
    for (const c of ["submit", "run", "logs", "watch", "doctor", "completion", "hub", "--json", "--daemon"]) {
      expect(top).toContain(c);
    }
    expect(await complete(file, ["mesh", "lo"])).toEqual(["logs"]);
    expect(await complete(file, ["mesh", "logs", "--f"])).toEqual(["--follow"]);
    expect(await complete(file, ["mesh", "hub", "in"])).toEqual(["init"]);
    expect(await complete(file, ["mesh", "run", "p", "--runner", ""])).toEqual(["claude", "command", "noop"]);
    expect(await complete(file, ["mesh", "completion", ""])).toEqual(
      expect.arrayContaining(["bash", "zsh", "fish"]),
    );
    // Global options after a subcommand too; an option's value completes files.
    expect(await complete(file, ["mesh", "watch", "--deb"])).toEqual(["--debug"]);
    // The version is the root's alone; each command offers its own --help once.
    expect(await complete(file, ["mesh", "--ver"])).toEqual(["--version"]);
    expect(await complete(file, ["mesh", "watch", "--ver"])).toEqual([]);
    expect(await complete(file, ["mesh", "watch", "--he"])).toEqual(["--help"]);
    expect(await complete(file, ["mesh", "submit", join(dir, "mesh.ba")])).toContain(file);
  });

  it("zsh and fish scripts name every subcommand; an unknown shell is a usage error", async () => {
    const zsh = await mesh(["completion", "zsh"]);
    expect(zsh.stdout).toMatch(/^#compdef mesh\n/);
    const fish = await mesh(["completion", "fish"]);
    for (const c of ["submit", "run", "logs", "doctor"]) {
      expect(zsh.stdout).toContain(`'${c}:`);
      expect(fish.stdout).toContain(`-a '${c}'`);
    }
    expect(fish.stdout).toContain("complete -c mesh -n '__fish_seen_subcommand_from logs' -l follow -s f");
    expect(fish.stdout).toContain("complete -c mesh -n '__fish_use_subcommand' -l version");
    expect((await mesh(["completion", "tcsh"])).code).toBe(2);
  });
});

describe("mesh doctor", () => {
  /** A PATH whose git says `version`, and nothing else of ours. */
  async function fakeGit(version: string): Promise<string> {
    const bin = join(dir, `git-${version}`);
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "git"), `#!/bin/sh\necho "git version ${version}"\n`);
    await chmod(join(bin, "git"), 0o755);
    return `${bin}:${join(REPO_ROOT, "node_modules", ".bin")}:/usr/bin:/bin`;
  }

  it("passes against a real nats-server with JetStream, showing versions; credentials never printed", async () => {
    const secret = "sk-ant-doctor-secret-value";
    const r = await mesh(["doctor", "--nats", nats.url, "--json"], {
      ANTHROPIC_API_KEY: secret,
      PATH: await fakeGit("2.43.0"),
    });
    expect(r.code, r.stderr).toBe(0);
    const checks = Object.fromEntries(r.json().checks.map((c: any) => [c.name, c]));
    expect(r.json().ok).toBe(true);
    expect(checks.nats).toMatchObject({ status: "ok", required: true });
    expect(checks.nats.detail).toMatch(/^nats-server \d+\.\d+\.\d+ at /);
    expect(checks.jetstream.status).toBe("ok");
    expect(checks.git).toMatchObject({ status: "ok", detail: "git version 2.43.0" });
    // The devDependency's claude on PATH.
    expect(checks.claude.status).toBe("ok");
    expect(checks.claude.detail).toMatch(/^Claude Code \d+\.\d+/);
    expect(checks.credentials).toMatchObject({
      status: "ok",
      detail: expect.stringContaining("ANTHROPIC_API_KEY is set"),
    });
    expect(r.stdout + r.stderr).not.toContain(secret);
  });

  it("fails, with the fix and a non-zero exit, on an old git, no JetStream, or no NATS", async () => {
    const old = await mesh(["doctor", "--nats", nats.url, "--json"], { PATH: await fakeGit("2.30.1") });
    expect(old.code).toBe(5);
    const git = old.json().checks.find((c: any) => c.name === "git");
    expect(git).toMatchObject({ status: "fail", required: true });
    expect(git.fix).toMatch(/2\.38/);
    expect(JSON.parse(old.stderr).error.code).toBe("DOCTOR_FAILED");

    plain = await NatsServer.start({ jetstream: false });
    const nojs = await mesh(["doctor", "--nats", plain.url]);
    expect(nojs.code).toBe(5);
    expect(nojs.stdout).toMatch(/^jetstream +FAIL/m);
    expect(nojs.stdout).toMatch(/^fix jetstream: start nats-server with -js/m);

    const none = await mesh(["doctor", "--nats", "nats://127.0.0.1:1"]);
    expect(none.code).toBe(5);
    expect(none.stdout).toMatch(/^nats +FAIL +cannot reach NATS at nats:\/\/127\.0\.0\.1:1/m);
    expect(none.stdout).toMatch(/^fix nats: start one with `mesh up`/m);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("checks a local `mesh up` NATS with its state dir's nkey; a refusal says credentials, not 'start one'", async () => {
    // Like `mesh up`'s nats-server: only the nkey in <state dir>/nats-daemon.nk may connect.
    const user = createUser();
    locked = await NatsServer.start({
      extraConfig: `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`,
    });
    const state = await makeTempDir("doctor-state-");
    await writeFile(join(state, "nats-daemon.nk"), new TextDecoder().decode(user.getSeed()), { mode: 0o600 });
    const ok = await mesh(["doctor", "--nats", locked.url, "--json"], { MESH_STATE_DIR: state });
    const nats = ok.json().checks.find((c: any) => c.name === "nats");
    expect(nats, ok.stdout).toMatchObject({ status: "ok" });
    expect(ok.json().checks.find((c: any) => c.name === "jetstream").status).toBe("ok");

    const other = await mesh(["doctor", "--nats", locked.url], {
      MESH_STATE_DIR: await makeTempDir("doctor-none-"),
    });
    expect(other.code).toBe(5);
    expect(other.stdout).toMatch(/^nats +FAIL +cannot log in to NATS at /m);
    expect(other.stdout).toMatch(/^fix nats: give the mesh's credentials with --nats-creds/m);
  });
});

describe("JSON Schemas", () => {
  it("the committed schema/*.json are what the zod schemas generate (npm run schema)", async () => {
    for (const [name, text] of Object.entries(jsonSchemaFiles())) {
      const committed = await readFile(join(REPO_ROOT, "schema", name), "utf8").catch(() => "(missing)");
      expect(committed, `schema/${name} is stale: run \`npm run schema\``).toBe(text);
    }
  });

  it("name the fields the daemon knows, webhooks included, and refuse unknown ones", () => {
    const files = jsonSchemaFiles();
    const task = JSON.parse(files["task-file.json"] as string);
    expect(task.$defs.task.required).toEqual(["prompt"]);
    expect(task.$defs.task.additionalProperties).toBe(false);
    expect(Object.keys(task.$defs.task.properties)).toEqual(
      expect.arrayContaining(["id", "prompt", "repo", "runner", "labels"]),
    );
    const cfg = JSON.parse(files["meshd-config.json"] as string);
    expect(cfg.additionalProperties).toBe(false);
    const hook = cfg.properties.webhooks.items;
    expect(Object.keys(hook.properties)).toEqual(
      expect.arrayContaining(["url", "secretFile", "secretEnv", "events", "format"]),
    );
    expect(hook.properties.events.items.enum).toEqual(["terminal", "attention"]);
    expect(hook.properties).not.toHaveProperty("secret");
  });
});

describe("mesh up's log on stderr", () => {
  it("pretty on a terminal, JSON otherwise, unless --log-format says", () => {
    expect(logFormat(undefined, { isTTY: true })).toBe("pretty");
    expect(logFormat(undefined, { isTTY: false })).toBe("json");
    expect(logFormat("json", { isTTY: true })).toBe("json");
    expect(logFormat("pretty", { isTTY: false })).toBe("pretty");
    const line = JSON.stringify({
      level: 40,
      time: Date.parse("2026-01-01T10:00:00Z"),
      msg: "webhook not delivered",
      webhook: "w",
      err: { message: "HTTP 500" },
    });
    const plain = humanLine(line);
    expect(plain).toMatch(/^\d\d:\d\d:\d\d warn {2}webhook not delivered \(webhook=w\): HTTP 500\n$/);
    expect(humanLine(line, true)).toContain("\x1b[33mwarn \x1b[0m");
  });
});
