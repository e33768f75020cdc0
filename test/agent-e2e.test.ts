/**
 * Issue 4, end to end: a real nats-server, real daemons (in-process, and the built `meshd` as a
 * child), the real Claude Code CLI (node_modules, 2.1.112) through mesh-shim against the mock
 * Messages API, in git worktrees of real repos. Each case serves its own pool so daemons never
 * take each other's tasks. The fake API key must never show up in records, events or logs.
 */
import { writeFileSync } from "node:fs";
import { readFile, writeFile as writeFs } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { execa } from "execa";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Daemon, DaemonDeps, DaemonOptions, TaskEvent, TaskRecord } from "../daemon/index.js";
import { EVENTS_STREAM } from "../daemon/nats/names.js";
import { ClaudeRunner } from "../daemon/runner/claude-runner.js";
import { type TaskSpec, validateTaskSpec } from "../daemon/tasks/spec.js";
import { cacheDirFor, parseRepo } from "../daemon/workspace/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  isAlive,
  type MockAnthropic,
  type MockReply,
  rateLimited,
  stall,
  startMockAnthropic,
  type TurnContext,
  writeFile,
} from "./mock-anthropic/index.js";
import {
  type MeshClient,
  type MeshdProcess,
  openClient,
  spawnMeshd,
  startDaemon,
  waitForState,
} from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

/** A turn of one task's conversation: which attempt (from the worktree path) and the mock's context. */
type TaskScript = (ctx: TurnContext, attempt: number) => MockReply | Promise<MockReply>;

let nats: NatsServer;
let client: MeshClient;
let mock: MockAnthropic;
let keyFile: string;
const scripts = new Map<string, TaskScript>();
const daemons: Daemon[] = [];
const children: MeshdProcess[] = [];
/** Everything the in-process daemons logged (pino JSON lines), at debug level. */
const logs: string[] = [];
const logger = pino({ level: "debug", base: { component: "meshd" } }, { write: (s: string) => logs.push(s) });

const WORKDIR_RE = /\/work\/([^/]+)\/a(\d+)$/;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  mock = await startMockAnthropic({
    script: (ctx) => {
      const m = ctx.workdir ? WORKDIR_RE.exec(ctx.workdir) : null;
      const script = m ? scripts.get(m[1]!) : undefined;
      return script ? script(ctx, Number(m![2])) : answer("no script for this conversation");
    },
  });
  keyFile = join(await makeTempDir("e2e-key-"), "anthropic-key");
  writeFileSync(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
});

afterEach(async () => {
  await Promise.allSettled(daemons.splice(0).map((d) => d.stop(2_000)));
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

afterAll(async () => {
  await client?.close();
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

const ID = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"];
async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa("git", [...ID, ...args], { cwd, env: { LC_ALL: "C" } })).stdout.trim();
}

async function makeOrigin(): Promise<string> {
  const dir = await makeTempDir("e2e-origin-");
  await git(dir, "init", "--quiet", "-b", "main");
  await writeFs(join(dir, "README.md"), "a repo for agents\n");
  await git(dir, "add", "README.md");
  await git(dir, "commit", "--quiet", "-m", "first");
  return dir;
}

const claudeConfig = (extra: Record<string, unknown> = {}) => ({
  command: [CLAUDE_BIN],
  env: { ANTHROPIC_BASE_URL: mock.url },
  apiKeyFile: keyFile,
  ...extra,
});

async function daemon(
  pool: string,
  opts: Partial<DaemonOptions> = {},
  deps: DaemonDeps = {},
): Promise<Daemon> {
  const d = await startDaemon(
    nats.url,
    { pools: [pool], runners: ["claude"], slots: 1, claude: claudeConfig(), ...opts },
    { logger, ...deps },
  );
  daemons.push(d);
  return d;
}

function task(pool: string, repo: string, script: TaskScript, extra: Record<string, unknown> = {}): TaskSpec {
  const spec = validateTaskSpec({
    id: uniqueId("e2e"),
    prompt: "Please do the scripted work.",
    repo,
    pool,
    maxAttempts: 2,
    ...extra,
  });
  scripts.set(spec.id, script);
  return spec;
}

interface Watch {
  events: TaskEvent[];
  /** Resolves once the task reached a terminal state (or the watch failed). */
  done: Promise<void>;
}

function watch(id: string): Watch {
  const events: TaskEvent[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const e of client.api.watchTask(id, ac.signal)) events.push(e);
  })();
  return { events, done };
}

const agentEvents = (events: TaskEvent[], kind: string, attempt?: number) =>
  events.filter(
    (e): e is Extract<TaskEvent, { type: "agent" }> =>
      e.type === "agent" && e.kind === kind && (attempt === undefined || e.attempt === attempt),
  );

async function submitAndWatch(spec: TaskSpec): Promise<Watch> {
  await client.api.submit([spec]);
  return watch(spec.id);
}

async function finished(id: string, timeoutMs = 150_000): Promise<TaskRecord> {
  const v = await waitForState(client.api, id, ["succeeded", "failed", "dead", "cancelled"], timeoutMs);
  return v.record;
}

const lastAttempt = (r: TaskRecord) => r.attempts[r.attempts.length - 1];

describe("Claude Code tasks through the mesh", { timeout: 300_000 }, () => {
  it("runs a task in a worktree: the branch gets a commit with the file, the record the numbers", async () => {
    const pool = "e2e-ok";
    const origin = await makeOrigin();
    const d = await daemon(pool);
    const spec = task(
      pool,
      origin,
      ({ turn }) => (turn === 0 ? writeFile("hello.txt", "hello from claude\n") : answer("Wrote hello.txt.")),
      { push: true, title: "say hello" },
    );
    const w = await submitAndWatch(spec);
    const r = await finished(spec.id);
    expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
    const res = r.result!;
    expect(res.costUsd).toBeGreaterThan(0);
    expect(res.tokens).toEqual({ input: 200, output: 40, cacheRead: 0, cacheCreation: 0 });
    expect(res.turns).toBe(2);
    expect(res.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.branch).toBe(`mesh/${spec.id}`);
    expect(res.headCommit).toMatch(/^[0-9a-f]{40}$/);

    // Pushed to the origin (a non-bare repo, its own checkout untouched) and in the daemon's cache.
    expect(await git(origin, "rev-parse", `refs/heads/mesh/${spec.id}`)).toBe(res.headCommit);
    expect(await git(origin, "show", `mesh/${spec.id}:hello.txt`)).toBe("hello from claude");
    expect(await git(origin, "log", "-1", "--format=%s", `mesh/${spec.id}`)).toContain("say hello");
    expect(await git(origin, "symbolic-ref", "HEAD")).toBe("refs/heads/main");
    const cache = cacheDirFor(join(d.config.stateDir, "repos"), parseRepo(origin));
    expect(await git(cache, "rev-parse", `mesh/${spec.id}`)).toBe(res.headCommit);

    // The events show the tool call, naming the tool and the file in the worktree.
    await w.done;
    const workdir = join(d.config.stateDir, "work", spec.id, "a1");
    const tools = agentEvents(w.events, "tool_use").map((e) => e.data);
    expect(tools).toContainEqual(
      expect.objectContaining({ tool: "Write", filePath: join(workdir, "hello.txt") }),
    );
    expect(agentEvents(w.events, "session_started")[0]?.data).toMatchObject({ sessionId: res.sessionId });
    expect(agentEvents(w.events, "result")[0]?.data).toMatchObject({ isError: false, turns: 2 });
    expect(
      w.events.filter((e) => e.type === "state").map((e) => (e.type === "state" ? e.state : "")),
    ).toEqual(expect.arrayContaining(["queued", "claimed", "running", "succeeded"]));
    // The key reached the API through the environment.
    expect(mock.messages(workdir)[0]?.headers["x-api-key"]).toBe(FAKE_API_KEY);
  });

  it("retries a rate-limited attempt after a delay without counting it as a failure", async () => {
    const pool = "e2e-429";
    const origin = await makeOrigin();
    const stateDir = await makeTempDir("meshd-429-");
    const runner = new ClaudeRunner({
      claudeCommand: [CLAUDE_BIN],
      extraEnv: { ANTHROPIC_BASE_URL: mock.url },
      apiKey: { file: keyFile },
      configRoot: join(stateDir, "claude"),
      maxRetries: 0,
      rateLimitDelayMs: 300,
      heartbeatMs: 1_000,
      logger,
    });
    await daemon(pool, { stateDir }, { runners: [runner] });
    const spec = task(
      pool,
      origin,
      // The next attempt resumes the session: its turns count on from attempt 1's.
      ({ lastToolResult }, attempt) =>
        attempt === 1 ? rateLimited(1) : lastToolResult ? answer("done") : writeFile("after-429.txt", "ok\n"),
      { maxAttempts: 1 },
    );
    await client.api.submit([spec]);
    const r = await finished(spec.id);
    expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
    expect(r.attempts[0]).toMatchObject({ outcome: "rate_limited" });
    expect(r.attempts[0]?.reason).toMatch(/429/);
    expect(lastAttempt(r)).toMatchObject({ outcome: "succeeded" });
    // maxAttempts 1, yet it ran again: a rate limit is not a failure.
    expect(r.countedFailures).toBe(0);
    const cache = cacheDirFor(join(stateDir, "repos"), parseRepo(origin));
    expect(await git(cache, "show", `mesh/${spec.id}:after-429.txt`)).toBe("ok");
  });

  it("cancels a running session promptly; the claude process is gone", async () => {
    const pool = "e2e-cancel";
    const origin = await makeOrigin();
    await daemon(pool);
    const spec = task(pool, origin, () => stall());
    const w = await submitAndWatch(spec);
    await mock.waitForRequest(
      (q) => q.kind === "messages" && (q.conversation ?? "").includes(`/${spec.id}/`),
      {
        timeoutMs: 120_000,
        name: "the stalled API call",
      },
    );
    const pid = await waitFor(
      () => agentEvents(w.events, "shim_started")[0]?.data.pid as number | undefined,
      {
        name: "shim_started event with the claude pid",
        timeoutMs: 30_000,
      },
    );
    expect(isAlive(pid)).toBe(true);
    await client.api.cancel(spec.id);
    const r = await finished(spec.id, 60_000);
    expect(r.state).toBe("cancelled");
    expect(r.attempts[0]?.outcome).toBe("cancelled");
    await waitFor(() => !isAlive(pid), { name: "claude process gone", timeoutMs: 20_000 });
  });

  it("fails an attempt whose session hangs, saying so", async () => {
    const pool = "e2e-hung";
    const origin = await makeOrigin();
    await daemon(pool, { claude: claudeConfig({ hangTimeout: "3s" }) });
    const spec = task(pool, origin, () => stall(), { maxAttempts: 1 });
    await client.api.submit([spec]);
    const r = await finished(spec.id);
    expect(r.state).toBe("dead");
    expect(r.attempts[0]).toMatchObject({ outcome: "failed" });
    expect(r.attempts[0]?.reason).toMatch(/hung: no output for 3s/);
    expect(r.reason).toMatch(/hung/);
  });

  it("fails the attempts of a claude command that crashes, with the reason", async () => {
    const pool = "e2e-crash";
    const origin = await makeOrigin();
    const crash = join(await makeTempDir("e2e-crash-"), "crash.mjs");
    await writeFs(crash, 'process.stderr.write("boom: simulated crash\\n");\nprocess.exit(3);\n');
    await daemon(pool, { claude: claudeConfig({ command: [process.execPath, crash] }) });
    const spec = task(pool, origin, () => answer("unused"), { maxAttempts: 2 });
    await client.api.submit([spec]);
    const r = await finished(spec.id);
    expect(r.state).toBe("dead");
    expect(r.attempts).toHaveLength(2);
    for (const a of r.attempts) {
      expect(a.outcome).toBe("failed");
      expect(a.reason).toContain("exited with code 3 without a result line");
      expect(a.reason).toContain("boom: simulated crash");
    }
    expect(r.reason).toMatch(/attempts exhausted \(2\/2\)/);
  });

  it("fails at once when the repo does not exist (no retries)", async () => {
    const pool = "e2e-badrepo";
    await daemon(pool);
    const spec = task(pool, "/nonexistent/agent-mesh/repo", () => answer("unused"), { maxAttempts: 3 });
    await client.api.submit([spec]);
    const r = await finished(spec.id);
    expect(r.state).toBe("failed");
    expect(r.attempts).toHaveLength(1);
    expect(r.reason).toMatch(/workspace: repo .* does not exist/);
  });

  it("runs two tasks of one repo at once, each in its own worktree", async () => {
    const pool = "e2e-pair";
    const origin = await makeOrigin();
    const d = await daemon(pool, { slots: 2 });
    // Both sessions must be in flight before either answers: proof they overlap.
    const arrived = new Set<string>();
    let bothArrived!: () => void;
    const both = new Promise<void>((r) => {
      bothArrived = r;
    });
    const pairScript =
      (file: string): TaskScript =>
      async (ctx) => {
        if (ctx.turn === 0) {
          arrived.add(ctx.conversation);
          if (arrived.size >= 2) bothArrived();
          await both;
          return writeFile(file, `${file}\n`);
        }
        return answer(`wrote ${file}`);
      };
    const a = task(pool, origin, pairScript("a.txt"));
    const b = task(pool, origin, pairScript("b.txt"));
    await client.api.submit([a, b]);
    const [ra, rb] = await Promise.all([finished(a.id), finished(b.id)]);
    expect(ra.state, JSON.stringify(ra.attempts)).toBe("succeeded");
    expect(rb.state, JSON.stringify(rb.attempts)).toBe("succeeded");
    const cache = cacheDirFor(join(d.config.stateDir, "repos"), parseRepo(origin));
    const files = async (id: string) =>
      (await git(cache, "ls-tree", "--name-only", `mesh/${id}`)).split("\n").sort();
    expect(await files(a.id)).toEqual(["README.md", "a.txt"]);
    expect(await files(b.id)).toEqual(["README.md", "b.txt"]);
    expect(ra.result?.headCommit).not.toBe(rb.result?.headCommit);
  });

  it("resumes the session on the same branch after its daemon was killed with SIGKILL", async () => {
    const pool = "e2e-resume";
    const origin = await makeOrigin();
    const stateDir = await makeTempDir("meshd-resume-");
    const cfgFile = join(await makeTempDir("meshd-cfg-"), "meshd.json");
    const claude = claudeConfig({ allowedTools: ["Bash"], hangTimeout: "120s" });
    const { apiKeyFile: _, ...childClaude } = claude;
    await writeFs(
      cfgFile,
      JSON.stringify({
        pools: [pool],
        runners: ["claude"],
        slots: 1,
        lease: "2s",
        presenceInterval: "500ms",
        retryDelay: "100ms",
        http: { enabled: false },
        logLevel: "debug",
        // The child reads the key from its environment (ANTHROPIC_API_KEY), not a file.
        claude: childClaude,
      }),
    );
    const child = await spawnMeshd(["-c", cfgFile, "--nats", nats.url, "--state-dir", stateDir], {
      ANTHROPIC_API_KEY: FAKE_API_KEY,
    });
    children.push(child);
    let resumedFirstCall: TurnContext | undefined;
    const spec = task(pool, origin, (ctx, attempt) => {
      if (attempt === 1) {
        // Write, commit (the agent's own commit), then hang mid-session.
        if (ctx.turn === 0) return writeFile("first.txt", "from attempt 1\n");
        if (ctx.turn === 1)
          return bash(
            "git add first.txt && git -c user.name=agent -c user.email=agent@example.com commit -qm wip",
          );
        return stall();
      }
      resumedFirstCall ??= ctx;
      return ctx.lastToolResult &&
        !ctx.lastToolResult.isError &&
        ctx.request.seq > resumedFirstCall.request.seq
        ? answer("resumed and finished")
        : writeFile("second.txt", "from attempt 2\n");
    });
    const w = await submitAndWatch(spec);
    await mock.waitForRequest((q) => q.conversation?.endsWith(`/${spec.id}/a1`) === true && q.turn === 2, {
      timeoutMs: 120_000,
      name: "attempt 1 stalled after its commit",
    });
    const started1 = await waitFor(() => agentEvents(w.events, "shim_started", 1)[0]?.data, {
      name: "attempt 1 shim_started",
    });
    const firstSession = started1.sessionId as string;
    expect(firstSession).toMatch(/^[0-9a-f-]{36}$/);
    child.kill("SIGKILL");
    await child.exited;
    expect(child.stderr()).toContain("mesh-shim");
    logs.push(child.stderr());
    // Its shim notices the daemon is gone and stops Claude Code.
    await waitFor(() => !isAlive(started1.pid as number), {
      name: "attempt 1 claude gone",
      timeoutMs: 30_000,
    });

    // Another daemon on the same state dir (same repo cache, same Claude config dir) takes over.
    await daemon(pool, { stateDir, claude: claude });
    const r = await finished(spec.id);
    expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
    expect(r.attempts[0]).toMatchObject({ outcome: "lost" });
    expect(lastAttempt(r)).toMatchObject({ outcome: "succeeded" });
    const n = lastAttempt(r)!.attempt;

    // Same branch: the agent's commit from attempt 1, then attempt 2's work on top.
    expect(r.result?.branch).toBe(`mesh/${spec.id}`);
    const cache = cacheDirFor(join(stateDir, "repos"), parseRepo(origin));
    expect(await git(cache, "rev-parse", `mesh/${spec.id}`)).toBe(r.result?.headCommit);
    expect(await git(cache, "log", "--format=%s", `mesh/${spec.id}`)).toMatch(/^.*\nwip\nfirst$/);
    expect((await git(cache, "ls-tree", "--name-only", `mesh/${spec.id}`)).split("\n").sort()).toEqual([
      "README.md",
      "first.txt",
      "second.txt",
    ]);
    // The crashed attempt's folder is kept for inspection, detached from the branch.
    expect(await readFile(join(stateDir, "work", spec.id, "a1", "first.txt"), "utf8")).toBe(
      "from attempt 1\n",
    );

    // Resumed: --resume with the first session id; the conversation carries attempt 1's turns.
    await w.done;
    expect(agentEvents(w.events, "shim_started", n)[0]?.data).toMatchObject({
      resumed: true,
      sessionId: firstSession,
    });
    expect(resumedFirstCall?.turn).toBeGreaterThanOrEqual(2);
    expect(resumedFirstCall?.firstUserText).toBe("Please do the scripted work.");
    expect(r.result?.sessionId).toBe(firstSession);
  });

  it("never lets the API key reach task records, the events stream or the logs", async () => {
    // Runs last: everything the cases above produced.
    const { tasks: records } = await client.api.listTasks({ limit: 10_000 });
    expect(records.length).toBeGreaterThanOrEqual(8);
    const recordText = JSON.stringify(records);
    expect(recordText).not.toContain(FAKE_API_KEY);

    const js = jetstream(client.nc);
    const consumer = await js.consumers.get(EVENTS_STREAM);
    const info = await consumer.info();
    const total = info.num_pending;
    expect(total).toBeGreaterThan(0);
    let seen = 0;
    let leaks = 0;
    const msgs = await consumer.consume();
    for await (const m of msgs) {
      seen++;
      if (m.string().includes(FAKE_API_KEY)) leaks++;
      if (m.info.pending === 0) break;
    }
    expect(seen).toBeGreaterThanOrEqual(total);
    expect(leaks).toBe(0);

    const logText = logs.join("");
    expect(logText.length).toBeGreaterThan(10_000);
    expect(logText).toContain("mesh-shim");
    expect(logText).not.toContain(FAKE_API_KEY);
    // Positive control: the key did reach the API.
    expect(mock.messages().some((q) => q.headers["x-api-key"] === FAKE_API_KEY)).toBe(true);
  });
});
