// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * No circular delegation (issue 14 §5) with the real Claude Code against the mock Messages
 * API, on a real daemon, nats-server and git: the lead task of a plan runs `mesh-task add`
 * (the command the shim puts on its PATH) through Bash. A sub-task inside its owns is added
 * (shown by `mesh plan status` with parent and depth), runs and succeeds; owns outside the
 * lead's, owns overlapping a sibling that may run at once and a fan-out above
 * `plans.maxChildren` are refused, and the refusal text is what Claude Code hands the model in
 * its next request; a child at `plans.maxDepth` is refused too. The pure decisions (needs,
 * idempotency, no plan, no owns) are checked against decideChild directly.
 */
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, Daemon, validatePlanSubmit, validateTaskSpec } from "../daemon/index.js";
import {
  type ChildRequest,
  DELEGATION_DEFAULTS,
  decideChild,
  type PlanRecord,
} from "../daemon/plans/index.js";
import { serveTaskPort } from "../daemon/runner/index.js";
import { grpcPlugin } from "../daemon/start.js";
import type { TaskEvent, TaskSpec } from "../daemon/tasks/index.js";
import { makeTempDir } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  type MockReply,
  REPO_ROOT,
  startMockAnthropic,
  writeFile as writeFileTool,
} from "./mock-anthropic/index.js";
import { useMesh } from "./support/fixture.js";
import { FAST, MESH_BIN, waitForState } from "./support/mesh.js";

describe("decideChild, the pure part", () => {
  const plan: PlanRecord = {
    v: 1,
    id: "p",
    createdAt: "2026-01-01T00:00:00.000Z",
    submitter: "t",
    tasks: ["lead", "other"],
    needs: [[], []],
    digest: "d",
  };
  const lead = validateTaskSpec({ id: "p-lead", plan: "p", prompt: "lead", owns: ["src/**"], repo: "/r" });
  const other = validateTaskSpec({ id: "p-other", plan: "p", prompt: "o", owns: ["lib/**"], repo: "/r" });
  const specs = new Map<string, TaskSpec>([
    [lead.id, lead],
    [other.id, other],
  ]);
  const req = (r: Partial<ChildRequest>): ChildRequest => ({
    name: "c",
    prompt: "do c",
    owns: ["src/c/**"],
    needs: [],
    ...r,
  });

  it("makes the child from the parent: plan, parent, depth, id, inherited repo", () => {
    const d = decideChild(lead, plan, specs, req({ needs: ["other"] }), DELEGATION_DEFAULTS);
    expect(d.kind).toBe("new");
    expect(d.spec).toMatchObject({
      id: "p-c",
      plan: "p",
      parent: "p-lead",
      depth: 1,
      repo: "/r",
      owns: ["src/c/**"],
      needs: ["p-other"],
    });
    expect(d.kind === "new" && d.needs).toEqual([1]);
  });

  it("refuses needs outside the plan, a parent without plan or owns, naming the field", () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return { code: (err as { code?: string }).code, field: (err as { field?: string }).field };
      }
      return undefined;
    };
    expect(code(() => decideChild(lead, plan, specs, req({ needs: ["nope"] }), DELEGATION_DEFAULTS))).toEqual(
      {
        code: "INVALID_ARGUMENT",
        field: "needs",
      },
    );
    const loose = validateTaskSpec({ id: "x", prompt: "x", owns: ["src/**"] });
    expect(code(() => decideChild(loose, undefined, specs, req({}), DELEGATION_DEFAULTS))).toEqual({
      code: "FAILED_PRECONDITION",
      field: "plan",
    });
    const noOwns = validateTaskSpec({ id: "p-lead", plan: "p", prompt: "x" });
    expect(code(() => decideChild(noOwns, plan, specs, req({}), DELEGATION_DEFAULTS))).toEqual({
      code: "FAILED_PRECONDITION",
      field: "owns",
    });
  });

  it("answers a repeat of the same request with the task made, and refuses the name for other work", () => {
    const first = decideChild(lead, plan, specs, req({}), DELEGATION_DEFAULTS);
    const grown: PlanRecord = { ...plan, tasks: [...plan.tasks, "c"], needs: [...plan.needs, []] };
    const withChild = new Map(specs).set(first.spec.id, first.spec);
    expect(decideChild(lead, grown, withChild, req({}), DELEGATION_DEFAULTS)).toEqual({
      kind: "exists",
      spec: first.spec,
    });
    // Even at the fan-out limit: the repeat adds nothing.
    expect(decideChild(lead, grown, withChild, req({}), { maxDepth: 2, maxChildren: 1 }).kind).toBe("exists");
    expect(() =>
      decideChild(lead, grown, withChild, req({ prompt: "other work" }), DELEGATION_DEFAULTS),
    ).toThrow(expect.objectContaining({ code: "ALREADY_EXISTS", field: "name" }));
  });

  it("decides on tasks added by delegation whose records are not written yet (from the plan record)", () => {
    const pending: PlanRecord = {
      ...plan,
      tasks: [...plan.tasks, "x"],
      needs: [...plan.needs, []],
      delegated: { x: { parent: "p-lead", owns: ["src/x/**"] } },
    };
    expect(() =>
      decideChild(lead, pending, specs, req({ name: "y", owns: ["src/x/y/**"] }), DELEGATION_DEFAULTS),
    ).toThrow(/overlaps "src\/x\/\*\*" of task p-x/);
    expect(() =>
      decideChild(lead, pending, specs, req({ name: "y", owns: ["src/y/**"] }), {
        maxDepth: 2,
        maxChildren: 1,
      }),
    ).toThrow(expect.objectContaining({ code: "RESOURCE_EXHAUSTED" }));
    // The same request as the pending one: it is that task (its record is made by this repeat).
    expect(
      decideChild(lead, pending, specs, req({ name: "x", owns: ["src/x/**"] }), DELEGATION_DEFAULTS).kind,
    ).toBe("exists");
  });

  it("lets a child overlap a task it needs (it runs after it), never one that may run at once", () => {
    const wide = validateTaskSpec({ id: "p-lead", plan: "p", prompt: "l", owns: ["src/**", "lib/**"] });
    const s = new Map(specs).set(wide.id, wide);
    expect(() => decideChild(wide, plan, s, req({ owns: ["lib/x/**"] }), DELEGATION_DEFAULTS)).toThrow(
      /overlaps "lib\/\*\*" of task p-other, which may run at the same time/,
    );
    expect(
      decideChild(wide, plan, s, req({ owns: ["lib/x/**"], needs: ["other"] }), DELEGATION_DEFAULTS).kind,
    ).toBe("new");
  });
});

describe("mesh-task and the port's add-task kind, without an agent", () => {
  const MESH_TASK = join(REPO_ROOT, "dist", "agent-shim", "mesh-task.js");
  const meshTask = (args: string[], env: Record<string, string> = {}) =>
    execa(process.execPath, [MESH_TASK, ...args], {
      reject: false,
      env: { PATH: process.env.PATH ?? "", ...env },
    });

  it("refuses bad usage (exit 2) and says when there is no task port (exit 4)", async () => {
    const noOwns = await meshTask(["add", "--name", "a", "--prompt", "p"]);
    expect(noOwns.exitCode).toBe(2);
    expect(String(noOwns.stderr)).toContain("--owns is required");
    const noPort = await meshTask(["add", "--name", "a", "--prompt", "p", "--owns", "src/a/**"], {
      MESH_TASK_PORT: "",
    });
    expect(noPort.exitCode).toBe(4);
    expect(String(noPort.stderr)).toContain("MESH_TASK_PORT is not set");
  });

  it("a port without delegation refuses add-task, naming why (exit 3)", async () => {
    const port = await serveTaskPort({
      scratchDir: await makeTempDir("delegate-port-"),
      handlers: { lease: async () => ({ ok: true, kind: "lease", granted: true }) },
    });
    try {
      const r = await meshTask(["add", "--name", "a", "--prompt", "p", "--owns", "src/a/**", "src/b/**"], {
        MESH_TASK_PORT: port.path,
        MESH_TASK_PORT_TOKEN: port.token,
      });
      expect(r.exitCode).toBe(3);
      expect(String(r.stderr)).toContain("refused (FAILED_PRECONDITION): this task cannot add tasks");
    } finally {
      await port.close();
    }
  });
});

const mesh = useMesh();
const POOL = "delegate";
const scripts = new Map<string, MockReply[]>();
let mock: MockAnthropic;
let daemon: Daemon;
let socket: string;
let origin: string;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...args], { cwd });
  return r.stdout.trim();
}

beforeAll(async () => {
  origin = await makeTempDir("delegate-origin-");
  await git(origin, "init", "--quiet", "-b", "main");
  await mkdir(join(origin, "src"));
  await writeFile(join(origin, "src", "index.ts"), "export {};\n");
  await git(origin, "add", "-A");
  await git(origin, "commit", "--quiet", "-m", "first");

  mock = await startMockAnthropic({
    script: (ctx) => {
      const id = ctx.workdir ? /\/work\/([^/]+)\/a\d+$/.exec(ctx.workdir)?.[1] : undefined;
      return (id ? scripts.get(id)?.[ctx.turn] : undefined) ?? answer("done");
    },
  });
  const stateDir = await makeTempDir("delegate-meshd-");
  const keyFile = join(stateDir, "anthropic-key");
  await writeFile(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    http: { enabled: false },
    nats: { servers: [mesh.nats.url] },
    stateDir,
    pools: [POOL],
    slots: 2,
    runners: ["claude"],
    claude: {
      command: [CLAUDE_BIN],
      env: { ANTHROPIC_BASE_URL: mock.url },
      apiKeyFile: keyFile,
      allowedTools: ["Bash", "Write"],
    },
    plans: { maxDepth: 1, maxChildren: 2 },
  });
  daemon = new Daemon(config);
  daemon.use(grpcPlugin(config));
  await daemon.start();
  mesh.daemons.push(daemon);
  socket = config.socketPath;
}, 60_000);

afterAll(async () => {
  await mock?.close();
});

async function events(id: string): Promise<TaskEvent[]> {
  const seen: TaskEvent[] = [];
  for await (const e of mesh.client.api.watchTask(id, new AbortController().signal)) seen.push(e);
  return seen;
}
const agentEvents = (all: TaskEvent[], kind: string) =>
  all.filter((e) => e.type === "agent" && e.kind === kind).map((e) => (e as { data: any }).data);

/** The text of the tool result Claude Code sent after the agent's `turn`-th tool call. */
function toolResultAfter(taskId: string, turn: number) {
  const q = mock.messages().find((m) => m.conversation?.endsWith(`/${taskId}/a1`) && m.turn === turn + 1);
  return q?.view?.lastToolResult;
}

const add = (name: string, owns: string[], extra = "") =>
  bash(
    `mesh-task add --name ${name} --prompt 'Write ${name}.' --owns ${owns.map((o) => `'${o}'`).join(" ")}${extra}`,
  );

describe("an agent delegating through mesh-task", () => {
  it("adds sub-tasks inside its owns that run and succeed, and is refused what it may not do", async () => {
    const planId = `dlg-${randomBytes(3).toString("hex")}`;
    const lead = `${planId}-lead`;
    const api = `${planId}-api`;
    scripts.set(lead, [
      add("api", ["src/api/**"]),
      add("docs", ["docs/**"]),
      add("api2", ["src/api/v2/**"]),
      add("api", ["src/api/**"], " --json"),
      add("ui", ["src/ui/**"]),
      add("more", ["src/more/**"]),
      answer("handed on"),
    ]);
    scripts.set(api, [
      add("deeper", ["src/api/deep/**"]),
      writeFileTool("src/api/a.ts", "export const a = 1;\n"),
      answer("api written"),
    ]);
    const plan = validatePlanSubmit({
      plan: planId,
      tasks: [
        { id: "lead", prompt: "Lead the work.", repo: origin, pool: POOL, owns: ["src/**"], maxAttempts: 1 },
      ],
    });
    await mesh.client.api.submitPlan(plan);

    const done = await waitForState(mesh.client.api, lead, ["succeeded", "failed", "dead"], 120_000);
    expect(done.record.state, JSON.stringify(done.record.attempts)).toBe("succeeded");

    // The agent was told about mesh-task and what it owns.
    const first = mock.messages().find((m) => m.conversation?.endsWith(`/${lead}/a1`) && m.turn === 0);
    expect(JSON.stringify(first?.body?.system)).toContain("mesh-task add --name");
    expect(JSON.stringify(first?.body?.system)).toContain(`You own src/**`);

    // Added: what mesh-task printed is what the model read.
    expect(toolResultAfter(lead, 0)).toMatchObject({ isError: false });
    expect(toolResultAfter(lead, 0)?.text).toContain(`added task ${api} (queued, depth 1)`);
    // Refused, and the model read why.
    const outside = toolResultAfter(lead, 1);
    expect(outside?.isError).toBe(true);
    expect(outside?.text).toContain(`owns: "docs/**" is not inside this task's owns [src/**]`);
    const overlap = toolResultAfter(lead, 2);
    expect(overlap?.isError).toBe(true);
    expect(overlap?.text).toMatch(
      /"src\/api\/v2\/\*\*" overlaps "src\/api\/\*\*" of task .*-api, which may run/,
    );
    // The same request again: the same task, not another.
    expect(JSON.parse(toolResultAfter(lead, 3)?.text ?? "{}")).toEqual({
      ok: true,
      taskId: api,
      created: false,
      state: expect.any(String),
      depth: 1,
    });
    expect(toolResultAfter(lead, 4)?.isError).toBe(false);
    const fanOut = toolResultAfter(lead, 5);
    expect(fanOut?.isError).toBe(true);
    expect(fanOut?.text).toContain("has added 2 tasks, the most one task may add (plans.maxChildren = 2)");

    const ev = await events(lead);
    expect(agentEvents(ev, "delegated").map((d) => [d.taskId, d.created])).toEqual([
      [api, true],
      [api, false],
      [`${planId}-ui`, true],
    ]);
    expect(agentEvents(ev, "delegate_refused").map((d) => [d.name, d.code])).toEqual([
      ["docs", "INVALID_ARGUMENT"],
      ["api2", "INVALID_ARGUMENT"],
      ["more", "RESOURCE_EXHAUSTED"],
    ]);

    // The children run; the one at the depth limit is refused its own sub-task.
    for (const id of [api, `${planId}-ui`]) {
      const child = await waitForState(mesh.client.api, id, ["succeeded", "failed", "dead"], 120_000);
      expect(child.record.state, JSON.stringify(child.record.attempts)).toBe("succeeded");
    }
    const deeper = toolResultAfter(api, 0);
    expect(deeper?.isError).toBe(true);
    expect(deeper?.text).toContain("delegation down to depth 1 (plans.maxDepth)");
    const apiDone = await mesh.client.store.get(api);
    expect(apiDone?.record.result?.headCommit).toMatch(/^[0-9a-f]{40}$/);

    // `mesh plan status` shows the tree with who added what; nothing refused got in.
    const r = await execa(process.execPath, [MESH_BIN, "--json", "plan", "status", planId], {
      reject: false,
      env: { NO_COLOR: "1", MESH_DAEMON: socket, MESH_TOKEN: "" },
      timeout: 60_000,
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const status = JSON.parse(String(r.stdout));
    expect(status.tasks.map((t: any) => [t.id, t.state, t.parent, t.depth])).toEqual([
      [lead, "succeeded", null, 0],
      [api, "succeeded", lead, 1],
      [`${planId}-ui`, "succeeded", lead, 1],
    ]);
    const text = await execa(process.execPath, [MESH_BIN, "plan", "status", planId], {
      env: { NO_COLOR: "1", MESH_DAEMON: socket, MESH_TOKEN: "" },
    });
    expect(String(text.stdout)).toContain("added by lead, depth 1");
    for (const refused of ["docs", "api2", "more", "deeper"])
      expect(await mesh.client.store.get(`${planId}-${refused}`)).toBeUndefined();
  }, 240_000);
});

describe("adding to a plan, concurrently, on the real bus", () => {
  /** A plan whose lead sits queued in a pool nobody serves: only its record matters here. */
  async function submitLead(): Promise<{ planId: string; lead: TaskSpec }> {
    const planId = `cas-${randomBytes(3).toString("hex")}`;
    await mesh.client.api.submitPlan(
      validatePlanSubmit({
        plan: planId,
        tasks: [
          { id: "lead", prompt: "lead", repo: origin, pool: "nobody", owns: ["src/**"] },
          { id: "tail", prompt: "tail", repo: origin, pool: "nobody", owns: ["lib/**"] },
        ],
      }),
    );
    const lead = (await mesh.client.store.get(`${planId}-lead`))!.record.spec;
    return { planId, lead };
  }
  const svc = () => mesh.client.api as unknown as import("../daemon/service.js").MeshService;

  it("lets only one of two overlapping siblings in, and makes one task of the same request twice", async () => {
    const { planId, lead } = await submitLead();
    const res = await Promise.allSettled([
      svc().addToPlan(lead, { name: "x", prompt: "x", owns: ["src/x/**"], needs: [] }),
      svc().addToPlan(lead, { name: "y", prompt: "y", owns: ["src/x/y/**"], needs: [] }),
    ]);
    expect(res.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = res.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: "INVALID_ARGUMENT", field: "owns" });

    const same = { name: "z", prompt: "z", owns: ["src/z/**"], needs: ["tail"] };
    const twice = await Promise.all([svc().addToPlan(lead, same), svc().addToPlan(lead, same)]);
    expect(twice.map((t) => t.created).sort()).toEqual([false, true]);
    expect(twice.map((t) => t.taskId)).toEqual([`${planId}-z`, `${planId}-z`]);
    // It needs a task that has not run: it waits.
    expect(twice.find((t) => t.created)?.state).toBe("waiting");

    const view = await mesh.client.api.getPlan(planId);
    const added = view.plan.tasks.slice(2);
    expect(added.filter((n) => n === "z")).toHaveLength(1);
    expect(added).toHaveLength(2);
    const z = await mesh.client.store.get(`${planId}-z`);
    expect(z?.record.spec).toMatchObject({
      parent: lead.id,
      depth: 1,
      needs: [`${planId}-tail`],
      pool: "nobody",
    });
  });
});
