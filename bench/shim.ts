/**
 * Scenario `shim`: how much the agent shim costs. For each run: the time from the runner being
 * handed a claimed task to the Claude Code process running (and to its first stream-json line),
 * and the shim's own memory, next to spawning the same claude command directly, in the same run,
 * against the local mock Messages API (only the model is fake).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execa } from "execa";
import { buildClaudeArgs, parseShimJob } from "../agent-shim/index.js";
import { ClaudeRunner, validateTaskSpec } from "../daemon/index.js";
import { answer, FAKE_API_KEY, isolatedClaudeEnv, startMockAnthropic } from "../test/mock-anthropic/index.js";
import { REPO_ROOT } from "../test/support/mesh.js";
import { percentile, round, rssMb } from "./stats.js";

const CLAUDE = join(REPO_ROOT, "node_modules", ".bin", "claude");

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

async function viaShim(runs: number, mockUrl: string, root: string) {
  process.env.MESH_BENCH_KEY = FAKE_API_KEY;
  const toRunning: number[] = [];
  const toInit: number[] = [];
  const shimRss: number[] = [];
  // One runner for all runs, as in a daemon: after the first task it keeps a shim pre-started.
  let t0 = 0;
  let tRunning = 0;
  let tInit = 0;
  let shimPid: number | undefined;
  const runner = new ClaudeRunner({
    claudeCommand: [CLAUDE],
    configRoot: join(root, "claude-state"),
    extraEnv: { ANTHROPIC_BASE_URL: mockUrl },
    apiKey: { env: "MESH_BENCH_KEY" },
    maxRetries: 0,
    onShimLine: (stream, line) => {
      if (stream !== "stdout") return;
      const msg = JSON.parse(line) as { type: string; pid?: number; event?: { kind?: string } };
      if (msg.type === "started" && !tRunning) {
        tRunning = performance.now();
        shimPid = msg.pid ? parentPid(msg.pid) : undefined;
        if (shimPid) shimRss.push(rssMb(shimPid));
      }
      if (msg.type === "event" && msg.event?.kind === "session_started" && !tInit) {
        tInit = performance.now();
        if (shimPid) shimRss.push(rssMb(shimPid));
      }
    },
  });
  for (let i = 0; i < runs; i++) {
    const work = join(root, `shim-${i}`);
    await mkdir(work, { recursive: true });
    tRunning = 0;
    tInit = 0;
    shimPid = undefined;
    const spec = validateTaskSpec({ id: `bench-shim-${i}`, prompt: "say ok" });
    t0 = performance.now();
    const out = await runner.run({
      spec,
      attempt: 1,
      workerId: "bench",
      pool: "default",
      workdir: work,
      scratchDir: work,
      signal: new AbortController().signal,
      emit: () => {},
    });
    if (out.status !== "succeeded") throw new Error(`shim run ${i} ${out.status}: ${out.reason}`);
    toRunning.push(tRunning - t0);
    toInit.push(tInit - t0);
    // The next claim arrives a moment later in a real mesh; let the pre-start finish.
    await new Promise((r) => setTimeout(r, 300));
  }
  await runner.close();
  return { toRunning, toInit, shimRss };
}

async function direct(runs: number, mockUrl: string, root: string) {
  const toRunning: number[] = [];
  const toInit: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = join(root, `direct-${i}`);
    await mkdir(dir, { recursive: true });
    const env = await isolatedClaudeEnv(dir, mockUrl);
    const t0 = performance.now();
    // Exactly the command line the shim builds, started straight from here.
    const job = parseShimJob({
      v: 1,
      taskId: `direct-${i}`,
      attempt: 1,
      prompt: "say ok",
      workdir: dir,
      claudeCommand: [CLAUDE],
      configDir: env.CLAUDE_CONFIG_DIR,
      tmpDir: env.CLAUDE_CODE_TMPDIR,
      runtimeDir: env.XDG_RUNTIME_DIR,
    });
    const child = execa(CLAUDE, buildClaudeArgs(job, { sessionId: randomUUID() }), {
      cwd: dir,
      env,
      extendEnv: false,
      stdin: "pipe",
      reject: false,
    });
    let tRunning = 0;
    let tInit = 0;
    child.once("spawn", () => {
      tRunning = performance.now();
    });
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (line) => {
      const m = JSON.parse(line) as { type: string; subtype?: string };
      if (m.type === "system" && m.subtype === "init" && !tInit) tInit = performance.now();
      if (m.type === "result") child.stdin?.end();
    });
    child.stdin?.write(`${JSON.stringify({ type: "user", message: { role: "user", content: "say ok" } })}\n`);
    await child;
    toRunning.push(tRunning - t0);
    toInit.push(tInit - t0);
  }
  return { toRunning, toInit };
}

export async function shimScenario(opts: { runs: number }) {
  const mock = await startMockAnthropic({ script: () => answer("ok") });
  const root = join(tmpdir(), `mesh-bench-shim-${process.pid}`);
  try {
    process.stderr.write(`shim: ${opts.runs} direct claude runs...\n`);
    const d = await direct(opts.runs, mock.url, root);
    process.stderr.write(`shim: ${opts.runs} runs through mesh-shim...\n`);
    const s = await viaShim(opts.runs, mock.url, root);
    const row = (name: string, running: number[], init: number[]) => ({
      path: name,
      runs: running.length,
      toProcessRunningP50Ms: round(percentile(running, 50)),
      toProcessRunningP99Ms: round(percentile(running, 99)),
      toFirstStreamLineP50Ms: round(percentile(init, 50)),
      toFirstStreamLineP99Ms: round(percentile(init, 99)),
    });
    const rows = [row("claude direct", d.toRunning, d.toInit), row("mesh-shim", s.toRunning, s.toInit)];
    const overheadP50 = round(percentile(s.toRunning, 50) - percentile(d.toRunning, 50));
    const shimRssMaxMb = round(Math.max(...s.shimRss.filter(Number.isFinite)));
    return {
      scenario: "shim",
      rows,
      shimOverheadToRunningP50Ms: overheadP50,
      shimOverheadToFirstLineP50Ms: round(percentile(s.toInit, 50) - percentile(d.toInit, 50)),
      shimRssMaxMb,
      targets: { overheadP50Under150Ms: overheadP50 < 150, shimRssUnder80Mb: shimRssMaxMb < 80 },
    };
  } finally {
    await mock.close();
    await rm(root, { recursive: true, force: true });
  }
}
