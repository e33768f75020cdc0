/**
 * ClaudeRunner -> mesh-shim (TypeScript through tsx) -> the real Claude Code CLI -> the mock
 * Messages API. No NATS: the runner is called directly with a hand-made RunContext.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile as writeFs } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import {
  buildClaudeArgs,
  buildClaudeEnv,
  classifyEnd,
  parseShimJob,
  StreamParser,
} from "../agent-shim/index.js";
import type { RunContext, RunOutcome } from "../daemon/claim/runner.js";
import { ClaudeRunner, type ClaudeRunnerOptions } from "../daemon/runner/claude-runner.js";
import type { RunnerEvent } from "../daemon/tasks/events.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  fail,
  isAlive,
  type MockAnthropic,
  type MockReply,
  type MockScript,
  REPO_ROOT,
  rateLimited,
  serverError,
  stall,
  startMockAnthropic,
  steps,
  waitFor,
  writeFile,
} from "./mock-anthropic/index.js";

const KEY_ENV = "MESH_TEST_ANTHROPIC_KEY";
process.env[KEY_ENV] = FAKE_API_KEY;

const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const SHIM = [process.execPath, "--import", TSX, join(REPO_ROOT, "agent-shim", "main.ts")];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  const all = cleanups.splice(0).reverse();
  await Promise.allSettled(all.map((c) => c()));
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Harness {
  mock: MockAnthropic;
  root: string;
  runner: ClaudeRunner;
  shimLines: string[];
}

async function harness(script: MockScript, opts: Partial<ClaudeRunnerOptions> = {}): Promise<Harness> {
  const mock = await startMockAnthropic({ script });
  cleanups.push(() => mock.close());
  const root = await tempDir("mesh-shim-test-");
  const shimLines: string[] = [];
  const runner = new ClaudeRunner({
    claudeCommand: [CLAUDE_BIN],
    shimCommand: SHIM,
    configRoot: join(root, "claude-state"),
    extraEnv: { ANTHROPIC_BASE_URL: mock.url },
    apiKey: { env: KEY_ENV },
    maxRetries: 0,
    heartbeatMs: 1_000,
    hangTimeoutMs: 120_000,
    rateLimitDelayMs: 1_234,
    onShimLine: (_stream, line) => shimLines.push(line),
    ...opts,
  });
  cleanups.push(() => runner.close());
  return { mock, root, runner, shimLines };
}

interface Attempt {
  ctx: RunContext;
  events: RunnerEvent[];
  controller: AbortController;
  workdir: string;
  run: () => Promise<RunOutcome>;
}

async function attempt(
  h: Harness,
  opts: {
    taskId?: string;
    attempt?: number;
    previousSessionId?: string;
    agent?: Record<string, unknown>;
  } = {},
): Promise<Attempt> {
  const n = opts.attempt ?? 1;
  const taskId = opts.taskId ?? "t-shim";
  const workdir = join(h.root, `work-${taskId}-${n}`);
  const scratchDir = join(h.root, `scratch-${taskId}-${n}`);
  await mkdir(workdir, { recursive: true });
  await mkdir(scratchDir, { recursive: true });
  const spec = validateTaskSpec({
    id: taskId,
    prompt: "Create out.txt with a greeting.",
    agent: opts.agent ?? {},
  });
  const events: RunnerEvent[] = [];
  const controller = new AbortController();
  const ctx: RunContext = {
    spec,
    attempt: n,
    workerId: "w-test",
    pool: "default",
    workdir,
    scratchDir,
    signal: controller.signal,
    emit: (e) => events.push(e),
    ...(opts.previousSessionId ? { previousSessionId: opts.previousSessionId } : {}),
  };
  return { ctx, events, controller, workdir, run: () => h.runner.run(ctx) };
}

const agentEvents = (events: RunnerEvent[], kind: string) =>
  events.filter((e): e is Extract<RunnerEvent, { type: "agent" }> => e.type === "agent" && e.kind === kind);

/** The fake key must never show up in anything the shim or runner produced. */
async function expectNoKeyLeak(h: Harness, a: Attempt, outcome: RunOutcome): Promise<void> {
  const everything = [
    JSON.stringify(a.events),
    JSON.stringify(outcome),
    h.shimLines.join("\n"),
    await readFile(join(a.ctx.scratchDir, "shim-job.json"), "utf8"),
  ].join("\n");
  expect(everything).not.toContain(FAKE_API_KEY);
}

describe("ClaudeRunner with the real Claude Code CLI", () => {
  it("succeeds: writes the file, reports cost, tokens and the session, relays tool events", async () => {
    const h = await harness(steps(writeFile("out.txt", "hello, mesh\n"), answer("Created out.txt.")));
    const a = await attempt(h);
    const outcome = await a.run();

    expect(outcome.status, outcome.reason).toBe("succeeded");
    expect(await readFile(join(a.workdir, "out.txt"), "utf8")).toBe("hello, mesh\n");
    const r = outcome.result!;
    expect(r.costUsd).toBeGreaterThan(0);
    expect(r.tokens).toEqual({ input: 200, output: 40, cacheRead: 0, cacheCreation: 0 });
    expect(r.turns).toBe(2);
    expect(r.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.model).toBe("claude-sonnet-4-6");
    expect(r.summary).toBe("Created out.txt.");
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect(outcome.exitCode).toBe(0);

    expect(agentEvents(a.events, "session_started")[0]?.data).toMatchObject({ sessionId: r.sessionId });
    expect(agentEvents(a.events, "tool_use")[0]?.data).toMatchObject({
      tool: "Write",
      filePath: join(a.workdir, "out.txt"),
    });
    expect(agentEvents(a.events, "tool_result")[0]?.data).toMatchObject({ tool: "Write", isError: false });
    expect(agentEvents(a.events, "result")[0]?.data).toMatchObject({ isError: false, turns: 2 });
    // The key reached the API (through the environment) and nothing else.
    expect(h.mock.messages()[0]?.headers["x-api-key"]).toBe(FAKE_API_KEY);
    await expectNoKeyLeak(h, a, outcome);
  });

  it("reports an exhausted 429 as rate_limited with a retry delay", async () => {
    const h = await harness(steps(rateLimited(1)));
    const a = await attempt(h);
    const outcome = await a.run();
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.reason).toContain("429");
    expect(outcome.retryAfterMs).toBeGreaterThanOrEqual(1_234);
    await expectNoKeyLeak(h, a, outcome);
  });

  it("fails a 500 with the status in the reason", async () => {
    const h = await harness(steps(serverError()));
    const a = await attempt(h);
    const outcome = await a.run();
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toMatch(/api error 500/);
    await expectNoKeyLeak(h, a, outcome);
  });

  it("fails a refused key (401) for good, through the shim's typed failure, with the fix named", async () => {
    const h = await harness(steps(fail(401, { message: "invalid x-api-key" })));
    const a = await attempt(h);
    const outcome = await a.run();
    expect(outcome.status).toBe("failed");
    expect(outcome.permanent).toBe(true);
    expect(outcome.reason).toMatch(/^Claude Code was not authenticated/);
    await expectNoKeyLeak(h, a, outcome);
  });

  it("stops promptly on abort while the API stalls, through the interrupt request", async () => {
    const h = await harness(steps(writeFile("a.txt", "first\n"), stall()));
    const a = await attempt(h);
    const running = a.run();
    await h.mock.waitForRequest((r) => r.kind === "messages" && r.turn === 1, {
      timeoutMs: 60_000,
      name: "the stalled second turn",
    });
    a.controller.abort("cancelled");
    const outcome = await running;
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toBe("aborted (cancelled)");
    // Claude Code acknowledged the interrupt request and ended the turn for it with its result
    // line (a SIGTERM, which the daemon no longer sends to the shim's process group, leaves none).
    expect(agentEvents(a.events, "control_response")).toHaveLength(1);
    expect(agentEvents(a.events, "result")[0]?.data).toMatchObject({
      subtype: "error_during_execution",
      terminalReason: expect.stringMatching(/^aborted/),
    });
    // The interrupted session still reports what it cost, and its id for a later resume.
    expect(outcome.result?.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    await h.mock.waitForRequest((r) => r.turn === 1 && r.clientClosed, {
      name: "claude to drop the stalled call",
    });
    await expectNoKeyLeak(h, a, outcome);
  });

  it("fails a session that produces no output for hangTimeoutMs", async () => {
    const h = await harness(() => stall(), { hangTimeoutMs: 4_000 });
    const a = await attempt(h);
    const outcome = await a.run();
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toBe("hung: no output for 4s");
  });

  it("fails when the claude command crashes, with its exit code and stderr", async () => {
    const h = await harness(() => answer("unused"));
    const crash = join(h.root, "crash.mjs");
    await writeFs(crash, 'process.stderr.write("boom: simulated crash\\n");\nprocess.exit(3);\n');
    const runner = new ClaudeRunner({
      claudeCommand: [process.execPath, crash],
      shimCommand: SHIM,
      configRoot: join(h.root, "claude-state"),
      apiKey: { env: KEY_ENV },
      onShimLine: (_s, line) => h.shimLines.push(line),
    });
    const a = await attempt(h);
    const outcome = await runner.run(a.ctx);
    expect(outcome.status).toBe("failed");
    expect(outcome.exitCode).toBe(3);
    expect(outcome.reason).toContain("exited with code 3 without a result line");
    expect(outcome.reason).toContain("boom: simulated crash");
    await expectNoKeyLeak(h, a, outcome);
  });

  it("passes the task's agent settings (model, max turns) to Claude Code", async () => {
    const h = await harness(({ turn }) => writeFile(`f${turn}.txt`, "x"));
    const a = await attempt(h, { agent: { model: "claude-mesh-test-model", maxTurns: 1 } });
    const outcome = await a.run();
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toMatch(/^claude ended with error_max_turns/);
    expect(h.mock.messages()[0]?.view?.model).toBe("claude-mesh-test-model");
    expect(outcome.result?.turns).toBeGreaterThanOrEqual(1);
  });

  it("fails when the claude command does not exist", async () => {
    const h = await harness(() => answer("unused"), {
      claudeCommand: [join(tmpdir(), "no-such-claude-binary")],
    });
    const a = await attempt(h);
    const outcome = await a.run();
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toMatch(/^cannot start claude: .*ENOENT/);
    // the shim's typed failure field makes it permanent, with the fix named
    expect(outcome.permanent).toBe(true);
    expect(outcome.reason).toMatch(/install Claude Code or set claude\.command/);
  });

  it("resumes the previous session in a new worktree, and starts fresh when resume is never", async () => {
    const script: MockScript = ({ turn }): MockReply =>
      turn === 0 ? writeFile("out.txt", "v1\n") : answer(`turn ${turn}`);
    const h = await harness(script);
    const first = await attempt(h, { attempt: 1 });
    const o1 = await first.run();
    expect(o1.status, o1.reason).toBe("succeeded");
    const sessionId = o1.result!.sessionId!;

    const second = await attempt(h, { attempt: 2, previousSessionId: sessionId });
    const o2 = await second.run();
    expect(o2.status, o2.reason).toBe("succeeded");
    expect(o2.result?.sessionId).toBe(sessionId);
    expect(agentEvents(second.events, "shim_started")[0]?.data).toMatchObject({ resumed: true, sessionId });
    expect(h.shimLines.some((l) => l.includes(`"--resume=${sessionId}"`))).toBe(true);
    // The resumed conversation carries the first attempt's two turns.
    const resumed = h.mock.messages(second.workdir);
    expect(resumed.map((r) => r.turn)).toEqual([2]);
    expect(resumed[0]!.view?.firstUserText).toBe("Create out.txt with a greeting.");

    const third = await attempt(h, { attempt: 3, previousSessionId: sessionId, agent: { resume: "never" } });
    const o3 = await third.run();
    expect(o3.status, o3.reason).toBe("succeeded");
    expect(o3.result?.sessionId).not.toBe(sessionId);
    expect(agentEvents(third.events, "shim_started")[0]?.data).toMatchObject({ resumed: false });
    await expectNoKeyLeak(h, third, o3);
  });

  it("starts fresh (and says so) when the previous session's transcript is not on this machine", async () => {
    const h = await harness(steps(answer("fresh")));
    const a = await attempt(h, { previousSessionId: "00000000-0000-4000-8000-000000000000" });
    const outcome = await a.run();
    expect(outcome.status, outcome.reason).toBe("succeeded");
    expect(agentEvents(a.events, "resume_skipped")).toHaveLength(1);
    expect(outcome.result?.sessionId).not.toBe("00000000-0000-4000-8000-000000000000");
  });
});

describe("mesh-shim process", () => {
  it("stops Claude Code when its parent goes away (stdin closes)", async () => {
    const h = await harness(() => stall());
    const root = h.root;
    const workdir = join(root, "w");
    await mkdir(workdir);
    const job = {
      v: 1,
      taskId: "t-orphan",
      attempt: 1,
      prompt: "wait forever",
      workdir,
      claudeCommand: [CLAUDE_BIN],
      configDir: join(root, "cfg"),
      tmpDir: join(root, "tmp"),
      runtimeDir: join(root, "run"),
      maxRetries: 0,
      env: { ANTHROPIC_BASE_URL: h.mock.url },
    };
    const jobPath = join(root, "job.json");
    await writeFs(jobPath, JSON.stringify(job));
    const [cmd, ...args] = SHIM;
    const shim = execa(cmd!, [...args, jobPath, "--parent-watch", "stdin"], {
      env: { ...process.env, ANTHROPIC_API_KEY: FAKE_API_KEY },
      stdin: "pipe",
      reject: false,
      lines: true,
    });
    await h.mock.waitForRequest((r) => r.kind === "messages", {
      timeoutMs: 60_000,
      name: "claude to call the API",
    });
    shim.stdin?.end();
    const res = await shim;
    const out = res.stdout as unknown as string[];
    const startedLine = out
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.type === "started");
    const outcome = out
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.type === "outcome");
    expect(outcome?.outcome).toMatchObject({
      status: "cancelled",
      reason: "cancelled: the parent process went away",
    });
    expect(res.exitCode).toBe(130);
    const pid = startedLine?.pid as number;
    await waitFor(() => !isAlive(pid), { name: "claude to exit" });
    expect([...out, ...(res.stderr as unknown as string[])].join("\n")).not.toContain(FAKE_API_KEY);
  });
});

describe("stream-json parsing and outcome rules", () => {
  it("builds the documented command line", () => {
    const job = parseShimJob({
      v: 1,
      taskId: "t",
      attempt: 1,
      prompt: "p",
      workdir: "/w",
      claudeCommand: ["claude"],
      configDir: "/c",
      tmpDir: "/t",
      runtimeDir: "/r",
      model: "m",
      maxTurns: 7,
      maxBudgetUsd: 1.5,
      settings: '{"hooks":{}}',
      allowedTools: ["Read", "Bash(git diff:*)"],
      disallowedTools: ["WebFetch"],
      appendSystemPrompt: "be brief",
      maxRetries: 2,
      env: { FOO: "bar" },
    });
    // Every value in the --flag=value form, so none can be read as an option.
    expect(buildClaudeArgs(job, { resume: "s-1" })).toEqual([
      "-p",
      "--input-format=stream-json",
      "--output-format=stream-json",
      "--verbose",
      "--permission-mode=acceptEdits",
      "--resume=s-1",
      "--model=m",
      "--max-turns=7",
      "--max-budget-usd=1.5",
      '--settings={"hooks":{}}',
      "--allowedTools=Read",
      "--allowedTools=Bash(git diff:*)",
      "--disallowedTools=WebFetch",
      "--append-system-prompt=be brief",
    ]);
    const env = buildClaudeEnv(job, { PATH: "/bin", CLAUDE_CONFIG_DIR: "/home/u/.claude" });
    expect(env).toMatchObject({
      PATH: "/bin",
      FOO: "bar",
      CLAUDE_CONFIG_DIR: "/c",
      CLAUDE_CODE_TMPDIR: "/t",
      XDG_RUNTIME_DIR: "/r",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_AUTOUPDATER: "1",
      CLAUDE_CODE_MAX_RETRIES: "2",
    });
  });

  it("parses init, tool use, tool results, retries and the result line", () => {
    const p = new StreamParser();
    const lines = [
      {
        type: "system",
        subtype: "init",
        session_id: "s1",
        model: "m1",
        cwd: "/w",
        claude_code_version: "2.1.112",
      },
      {
        type: "assistant",
        message: {
          content: [{ type: "tool_use", id: "tu1", name: "Edit", input: { file_path: "/w/a.ts" } }],
        },
      },
      { type: "user", message: { content: [{ type: "tool_result", tool_use_id: "tu1", is_error: true }] } },
      {
        type: "system",
        subtype: "api_retry",
        attempt: 1,
        max_retries: 3,
        retry_delay_ms: 500.4,
        error_status: 529,
      },
      {
        type: "result",
        subtype: "success",
        is_error: true,
        api_error_status: 529,
        total_cost_usd: 0.5,
        num_turns: 3,
        duration_ms: 10,
        session_id: "s1",
        usage: {
          input_tokens: 1,
          output_tokens: 2,
          cache_read_input_tokens: 3,
          cache_creation_input_tokens: 4,
        },
        modelUsage: { small: { costUSD: 0.1 }, big: { costUSD: 0.4 } },
        permission_denials: [{ tool_name: "Write", tool_use_id: "tu2", tool_input: { file_path: "/w/b" } }],
        result: "API Error: overloaded",
      },
    ];
    const events = lines.flatMap((l) => p.parseLine(JSON.stringify(l)));
    expect(events.map((e) => e.kind)).toEqual([
      "session_started",
      "tool_use",
      "tool_result",
      "api_retry",
      "tool_denied",
      "result",
    ]);
    expect(events[2]).toMatchObject({ tool: "Edit", isError: true });
    expect(events[3]).toMatchObject({ status: 529, attempt: 1, retryDelayMs: 500 });
    expect(events[4]).toMatchObject({ tool: "Write", filePath: "/w/b" });
    const result = events[5];
    expect(result).toMatchObject({
      isError: true,
      apiErrorStatus: 529,
      model: "big",
      tokens: { input: 1, output: 2, cacheRead: 3, cacheCreation: 4 },
    });
    expect(p.parseLine("not json")).toEqual([]);

    const end = {
      exitCode: 1,
      signal: null,
      stderrTail: [],
      ...(result?.kind === "result" ? { result } : {}),
    };
    expect(classifyEnd(end)).toMatchObject({ status: "rate_limited", apiErrorStatus: 529 });
  });

  it("never treats subtype success with is_error as success", () => {
    const p = new StreamParser();
    const [result] = p.parseLine(
      JSON.stringify({
        type: "result",
        subtype: "success",
        is_error: true,
        api_error_status: 401,
        result: "auth",
      }),
    );
    const outcome = classifyEnd({
      exitCode: 1,
      signal: null,
      stderrTail: [],
      ...(result?.kind === "result" ? { result } : {}),
    });
    expect(outcome.status).toBe("failed");
    expect(outcome.reason).toBe("api error 401: auth");
    expect(outcome.failure).toBe("not_authenticated");
  });

  it("reports Claude Code's 'Not logged in' result as a typed failure, and other errors without one", () => {
    const end = (text: string) => {
      const [result] = new StreamParser().parseLine(
        JSON.stringify({ type: "result", subtype: "success", is_error: true, result: text }),
      );
      return { exitCode: 1, signal: null, stderrTail: [], ...(result?.kind === "result" ? { result } : {}) };
    };
    expect(classifyEnd(end("Not logged in · Please run /login"))).toMatchObject({
      status: "failed",
      failure: "not_authenticated",
    });
    expect(classifyEnd(end("something else broke")).failure).toBeUndefined();
  });

  it("keeps one shim pre-started after a task, uses it for the next, and closes it", async () => {
    const h = await harness(() => answer("ok"));
    const shimPids = (): number[] =>
      h.shimLines
        .filter((l) => l.includes('"msg":"starting claude"'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid);
    const first = await attempt(h, { taskId: "warm-1" });
    expect((await first.run()).status).toBe("succeeded");
    // The pre-started shim waits with its working directory in the runner's config root.
    const warmPid = await waitFor(() => shimsIn(join(h.root, "claude-state"))[0], {
      name: "a pre-started shim",
      timeoutMs: 30_000,
    });
    const second = await attempt(h, { taskId: "warm-2" });
    expect((await second.run()).status).toBe("succeeded");
    expect(shimPids()).toHaveLength(2);
    expect(shimPids()[1]).toBe(warmPid);
    await h.runner.close();
    await waitFor(() => shimsIn(join(h.root, "claude-state")).length === 0, {
      name: "pre-started shim closed",
    });
  });
});

/**
 * Shim processes whose working directory is `dir` (the runner starts warm shims there; the
 * run guardian above each one shares its directory but is not a shim).
 */
function shimsIn(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) !== dir) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (!/perl$/.test(argv[0] ?? "") && argv.some((a) => a.includes("agent-shim"))) out.push(Number(pid));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}
