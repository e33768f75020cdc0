/**
 * Spec validation and the worker's ceilings, as pure functions: every refusal is a MeshError
 * INVALID_ARGUMENT naming the field, and what a worker would refuse at claim is refused at submit.
 */
import { describe, expect, it } from "vitest";
import { parseDurationFlag } from "../cli/context.js";
import { compileConfig } from "../daemon/config.js";
import { checkBatchPolicy, checkTaskPolicy, type TaskPolicy } from "../daemon/tasks/policy.js";
import {
  MAX_TIMER_MS,
  parseTaskDocument,
  parseTaskSpecs,
  type TaskSpec,
  validateTaskSpec,
} from "../daemon/tasks/spec.js";

const base = { id: "t1", prompt: "p" };

function refusedField(input: Record<string, unknown>): string | undefined {
  try {
    validateTaskSpec({ ...base, ...input });
    return undefined;
  } catch (err) {
    expect(err).toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT" });
    return (err as { field?: string }).field;
  }
}

const policy = (p: Partial<TaskPolicy> = {}): TaskPolicy => ({ ...compileConfig({}).taskPolicy, ...p });

function policyField(spec: TaskSpec, p: TaskPolicy): string | undefined {
  try {
    checkTaskPolicy(spec, p);
    return undefined;
  } catch (err) {
    expect(err).toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT" });
    return (err as { field?: string }).field;
  }
}

describe("task env: an allowlist, with names no worker takes from a task", () => {
  it.each([
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "DYLD_INSERT_LIBRARIES",
    "BASH_ENV",
    "ENV",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_GLOBAL",
    "NODE_OPTIONS",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CONFIG_DIR",
    "MESH_NATS_PASSWORD",
    "AWS_REGION",
    "HOME",
    "GITHUB_TOKEN",
  ])("%s is refused at submit, whatever the worker allows", (name) => {
    expect(refusedField({ env: { [name]: "x" } })).toBe(`env.${name}`);
    // not even an operator can open it
    const spec = validateTaskSpec({ ...base, env: { TASK_OK: "1" } });
    expect(policyField({ ...spec, env: { [name]: "x" } }, policy({ envAllow: ["*"] }))).toBe(`env.${name}`);
  });

  it("takes the default allowlist, refuses other names with the fix, and lets the operator widen it", () => {
    const ok = validateTaskSpec({
      ...base,
      env: { TASK_MODE: "fast", CI: "1", LC_ALL: "C", NODE_ENV: "test" },
    });
    expect(policyField(ok, policy())).toBeUndefined();
    const other = validateTaskSpec({ ...base, env: { EXTRA: "yes" } });
    expect(policyField(other, policy())).toBe("env.EXTRA");
    expect(() => checkTaskPolicy(other, policy())).toThrow(/TASK_EXTRA.*taskEnv\.allow/);
    expect(policyField(other, policy({ envAllow: ["EXTRA"] }))).toBeUndefined();
    expect(policyField(other, policy({ envAllow: ["EX*"] }))).toBeUndefined();
    expect(policyField(other, policy({ envAllow: [] }))).toBe("env.EXTRA");
    // An operator cannot open the names no task may set, not even by a prefix.
    for (const allow of [["LD_*"], ["PATH"], ["GITHUB_*"], ["MY_TOKEN_*"]]) {
      expect(() => compileConfig({ taskEnv: { allow } }), allow[0]).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", field: "taskEnv.allow.0" }),
      );
    }
    expect(compileConfig({ taskEnv: { allow: ["*", "FEATURE_*"] } }).taskPolicy.envAllow).toEqual([
      "*",
      "FEATURE_*",
    ]);
  });

  it("refuses NUL in values and too many names", () => {
    expect(refusedField({ env: { TASK_A: "a\0b" } })).toBe("env.TASK_A");
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`TASK_${i}`, "x"]));
    expect(refusedField({ env: many })).toBe("env");
  });
});

describe("no spec value can become a command-line option", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["model", { agent: { model: "--dangerously-skip-permissions" } }, "agent.model"],
    ["model with a space", { agent: { model: "x --y" } }, "agent.model"],
    ["allowed tool", { agent: { allowedTools: ["Read", "--x"] } }, "agent.allowedTools[1]"],
    ["disallowed tool", { agent: { disallowedTools: ["-p"] } }, "agent.disallowedTools[0]"],
    ["tool with a newline", { agent: { allowedTools: ["Bash\n--x"] } }, "agent.allowedTools[0]"],
    ["ref", { repo: "/srv/r", ref: "--upload-pack=touch /tmp/x" }, "ref"],
    ["repo", { repo: "-oProxyCommand=touch /tmp/x" }, "repo"],
    ["relative repo", { repo: "some/relative/path" }, "repo"],
    ["remote helper repo", { repo: "ext::sh -c touch% /tmp/x" }, "repo"],
    ["repo with a password", { repo: "https://u:hunter22@example.com/r.git" }, "repo"],
    ["title with a newline", { title: "a\nb" }, "title"],
    ["label with a newline", { labels: { zone: "a\nb" } }, "labels.zone"],
    ["command with NUL", { runner: "command", command: ["node", "a\0b"] }, "command[1]"],
    ["empty program", { runner: "command", command: [""] }, "command[0]"],
    ["system prompt with NUL", { agent: { appendSystemPrompt: "a\0" } }, "agent.appendSystemPrompt"],
  ])("%s", (_name, input, field) => {
    expect(refusedField(input)).toBe(field);
  });

  it("accepts ordinary values", () => {
    const s = validateTaskSpec({
      ...base,
      repo: "git@github.com:acme/app.git",
      ref: "release/1.2",
      agent: {
        model: "claude-sonnet-4-5[1m]",
        allowedTools: ["Read", "Bash(npm test:*)", "mcp__github__get_issue"],
        appendSystemPrompt: "- be brief\n- be kind",
      },
    });
    expect(s.agent.allowedTools).toHaveLength(3);
  });
});

describe("a bad name as a record key", () => {
  it.each<[string, Record<string, unknown>, string, string]>([
    [
      "resource",
      { uses: { "staging db": 1 } },
      'uses.staging db: the name "staging db" is not allowed: resource names are',
      "uses.staging db",
    ],
    [
      "label",
      { labels: { "zone!": "a" } },
      'labels.zone!: the name "zone!" is not allowed: bad label key',
      "labels.zone!",
    ],
    [
      "env",
      { env: { "APP-X": "1" } },
      'env.APP-X: the name "APP-X" is not allowed: env names are',
      "env.APP-X",
    ],
  ])("%s: names the field and the rule, not zod's 'Invalid key in record'", (_name, input, text, field) => {
    let err: unknown;
    try {
      validateTaskSpec({ ...base, ...input });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT", field });
    expect((err as Error).message).toContain(text);
  });
});

describe("the operator's ceilings", () => {
  it("orders permission modes plan < dontAsk < default < acceptEdits < bypassPermissions", () => {
    const p = policy({ maxPermissionMode: "default" });
    const mode = (m: string) => validateTaskSpec({ ...base, agent: { permissionMode: m } });
    for (const m of ["plan", "dontAsk", "default"]) expect(policyField(mode(m), p)).toBeUndefined();
    for (const m of ["acceptEdits", "bypassPermissions"])
      expect(policyField(mode(m), p)).toBe("agent.permissionMode");
  });

  it("by default a task cannot raise the mode above acceptEdits or pre-approve tools the operator did not", () => {
    const cfg = compileConfig({});
    expect(cfg.taskPolicy.maxPermissionMode).toBe("acceptEdits");
    const bypass = validateTaskSpec({ ...base, agent: { permissionMode: "bypassPermissions" } });
    expect(policyField(bypass, cfg.taskPolicy)).toBe("agent.permissionMode");
    expect(() => checkTaskPolicy(bypass, cfg.taskPolicy)).toThrow(/claude\.maxPermissionMode/);
    const opted = compileConfig({ claude: { maxPermissionMode: "bypassPermissions" } });
    expect(policyField(bypass, opted.taskPolicy)).toBeUndefined();

    const bash = validateTaskSpec({ ...base, agent: { allowedTools: ["Read", "Bash"] } });
    expect(policyField(bash, cfg.taskPolicy)).toBe("agent.allowedTools[0]");
    const own = compileConfig({ claude: { allowedTools: ["Read"] } }).taskPolicy;
    expect(policyField(bash, own)).toBe("agent.allowedTools[1]");
    const extra = compileConfig({
      claude: { allowedTools: ["Read"], taskAllowedTools: ["Bash"] },
    }).taskPolicy;
    expect(policyField(bash, extra)).toBeUndefined();
    expect(policyField(bash, { ...own, taskTools: ["*"] })).toBeUndefined();
  });

  it("takes only repos inside the allowlist, at a path boundary, without dot segments", () => {
    const p = policy({ repos: ["https://github.com/acme", "/srv/git/"] });
    const repo = (r: string) => validateTaskSpec({ ...base, repo: r });
    for (const r of [
      "https://github.com/acme",
      "https://github.com/acme/app.git",
      "/srv/git/app",
      "file:///srv/git/x",
    ]) {
      expect(policyField(repo(r), p), r).toBeUndefined();
    }
    for (const r of [
      "https://github.com/acme-evil/app",
      "https://github.com/acme/../evil/app",
      "https://github.com/acme/%2e%2e/evil",
      "https://evil.example/github.com/acme/x",
      "/srv/gitx/app",
      "/srv/git/../etc",
      "git@github.com:acme/app.git",
    ]) {
      expect(policyField(repo(r), p), r).toBe("repo");
    }
    expect(policyField(repo("/anything"), policy())).toBeUndefined();
  });

  it("names the task in a batch", () => {
    const specs = parseTaskSpecs('- {id: a, prompt: p}\n- {id: b, prompt: p, env: {EXTRA: "1"}}\n');
    expect(() => checkBatchPolicy(specs, policy())).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "tasks[1].env.EXTRA" }),
    );
  });
});

describe("bounds", () => {
  it("refuses a timeout no timer can hold, naming the field and the limit", () => {
    expect(refusedField({ timeout: "25d" })).toBe("timeout");
    expect(refusedField({ timeout: Math.ceil(MAX_TIMER_MS / 1000) + 1 })).toBe("timeout");
    expect(() => validateTaskSpec({ ...base, timeout: "25d" })).toThrow(
      /timeout: "25d" is longer than the limit of 24d/,
    );
    expect(validateTaskSpec({ ...base, timeout: "24d" }).timeout).toBe(24 * 86_400_000);
  });

  it("the CLI refuses a --timeout or --wait-timeout its timers cannot hold (they would fire at once)", () => {
    expect(() => parseDurationFlag("30d", "--wait-timeout")).toThrow(
      expect.objectContaining({ exitCode: 2, field: "--wait-timeout" }),
    );
    expect(parseDurationFlag("24d", "--wait-timeout")).toBe(24 * 86_400_000);
  });

  it("caps the whole serialised spec, not only the prompt", () => {
    const big = "x".repeat(200 * 1024);
    expect(refusedField({ prompt: big })).toBeUndefined();
    expect(refusedField({ prompt: big, agent: { appendSystemPrompt: "y".repeat(60 * 1024) } })).toBe(
      "(root)",
    );
    expect(() =>
      validateTaskSpec({
        ...base,
        prompt: big,
        env: { TASK_A: "z".repeat(30 * 1024), TASK_B: "z".repeat(30 * 1024) },
      }),
    ).toThrow(/over the limit of 256 KiB/);
  });
});

describe("YAML errors", () => {
  function message(text: string): string {
    try {
      parseTaskDocument(text, "task.yaml");
    } catch (err) {
      expect(err).toMatchObject({ code: "INVALID_ARGUMENT", field: "task.yaml" });
      return (err as Error).message;
    }
    throw new Error("parsed");
  }

  it("name the position once, on a line the file has", () => {
    for (const text of [
      "id: a\nprompt: [unclosed\n",
      "id: a\nprompt: [unclosed",
      'id: a\nprompt: "open\n\n\n',
    ]) {
      const m = message(text);
      expect(m, m).toMatch(/^task\.yaml: not valid YAML\/JSON at the end of the input \(line 2\): /);
      expect(m.match(/line/g), m).toHaveLength(1);
      expect(m).not.toContain("\n");
    }
    const dup = message("id: a\nprompt: p\nid: b\n");
    expect(dup).toBe("task.yaml: not valid YAML/JSON at line 3, column 1: Map keys must be unique");
    expect(message("id: a\nprompt: x\n\tbad: 1\n")).toMatch(/at line 3, column 1: Tabs/);
  });

  it("refuse an alias to nothing and an alias bomb (found by the property tests)", () => {
    expect(message("id: a\nprompt: *nothing\n")).toMatch(/^task\.yaml: not valid YAML\/JSON: /);
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 8; i++)
      bomb.push(
        `${"abcdefgh"[i]}: &${"abcdefgh"[i]} [${Array(10)
          .fill(`*${"abcdefgh"[i - 1]}`)
          .join(", ")}]`,
      );
    expect(message(`${bomb.join("\n")}\nprompt: p\n`)).toMatch(/^task\.yaml: not valid YAML\/JSON: .*alias/i);
  });
});
