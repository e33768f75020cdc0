/**
 * The ownership hook with the real Claude Code against the mock API: ClaudeRunner -> mesh-shim
 * (installs the hook through inline --settings) -> Claude Code -> the hook program. A write
 * owned by another task of the plan is refused with that task named (in the task's events), a
 * write inside owns lands, a symlink inside owns leading out is refused, a `..` path is
 * resolved, a Bash redirect outside owns is refused, and a hook that fails refuses.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, realpath, rm, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { RunContext } from "../daemon/claim/index.js";
import { ClaudeRunner, type PlanOwners } from "../daemon/runner/index.js";
import type { RunnerEvent } from "../daemon/tasks/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockReply,
  REPO_ROOT,
  startMockAnthropic,
  steps,
  writeFile,
} from "./mock-anthropic/index.js";

const KEY_ENV = "MESH_TEST_ANTHROPIC_KEY";
process.env[KEY_ENV] = FAKE_API_KEY;
const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const SHIM = [process.execPath, "--import", TSX, join(REPO_ROOT, "agent-shim", "main.ts")];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.allSettled(
    cleanups
      .splice(0)
      .reverse()
      .map((c) => c()),
  );
});

type AgentEvt = Extract<RunnerEvent, { type: "agent" }>;
const ofKind = (events: RunnerEvent[], kind: string): AgentEvt[] =>
  events.filter((e): e is AgentEvt => e.type === "agent" && e.kind === kind);

async function runTask(opts: {
  script: (workdir: string) => MockReply[];
  owns: string[];
  planOwners?: PlanOwners;
  prepare?: (workdir: string, root: string) => Promise<void>;
}) {
  const root = await realpath(await mkdtemp(join(tmpdir(), "owns-hook-")));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const workdir = join(root, "wt");
  const scratchDir = join(root, "scratch");
  await mkdir(join(workdir, "src", "api"), { recursive: true });
  await mkdir(scratchDir);
  await opts.prepare?.(workdir, root);
  const mock = await startMockAnthropic({ script: steps(...opts.script(workdir)) });
  cleanups.push(() => mock.close());
  const runner = new ClaudeRunner({
    claudeCommand: [CLAUDE_BIN],
    shimCommand: SHIM,
    configRoot: join(root, "claude-state"),
    extraEnv: { ANTHROPIC_BASE_URL: mock.url },
    apiKey: { env: KEY_ENV },
    maxRetries: 0,
    heartbeatMs: 1_000,
    prewarm: false,
    // Bash runs without asking, so only the hook stands between it and a write.
    allowedTools: ["Bash"],
    ...(opts.planOwners ? { planOwners: opts.planOwners } : {}),
  });
  cleanups.push(() => runner.close());
  const spec = validateTaskSpec({ id: "t-api", plan: "p1", prompt: "Work on the API.", owns: opts.owns });
  const events: RunnerEvent[] = [];
  const ctx: RunContext = {
    spec,
    attempt: 1,
    workerId: "w-test",
    pool: "default",
    workdir,
    scratchDir,
    signal: new AbortController().signal,
    emit: (e) => events.push(e),
  };
  const outcome = await runner.run(ctx);
  return { outcome, events, workdir, root, scratchDir };
}

describe("the ownership hook with the real Claude Code", () => {
  it("refuses another task's file (naming it), a symlink out and a Bash redirect; lets owned writes through", async () => {
    const owners: PlanOwners = async (spec) => {
      expect(spec.plan).toBe("p1");
      return { "t-docs": ["docs/**"] };
    };
    const { outcome, events, workdir, root } = await runTask({
      owns: ["src/api/"],
      planOwners: owners,
      prepare: async (wt, r) => {
        await mkdir(join(r, "outside"));
        await symlink(join(r, "outside"), join(wt, "src", "api", "escape"));
      },
      script: (wt) => [
        writeFile("docs/guide.md", "not mine\n"),
        writeFile("src/api/handler.ts", "export {};\n"),
        writeFile("src/api/escape/evil.txt", "out\n"),
        // Written with `..` on purpose (absolute paths reach Claude Code untouched).
        writeFile(`${wt}/src/api/../api/dots.ts`, "ok\n"),
        bash("echo hi > docs/from-bash.md"),
        // Writes the hook cannot tell are let through with a note; the result-time gate judges them.
        bash("eval 'mkdir -p docs; echo hi > docs/evaded.md'"),
        answer("done"),
      ],
    });
    expect(outcome.status, outcome.reason).toBe("succeeded");

    expect(await readFile(join(workdir, "src/api/handler.ts"), "utf8")).toBe("export {};\n");
    expect(await readFile(join(workdir, "src/api/dots.ts"), "utf8")).toBe("ok\n");
    expect(existsSync(join(workdir, "docs/guide.md"))).toBe(false);
    expect(existsSync(join(root, "outside", "evil.txt"))).toBe(false);
    expect(existsSync(join(workdir, "docs/from-bash.md"))).toBe(false);
    expect(existsSync(join(workdir, "docs/evaded.md"))).toBe(true);
    const notes = ofKind(events, "hook_note").map((e) => e.data as { tool: string; note: string });
    expect(notes).toEqual([{ tool: "Bash", note: expect.stringMatching(/could not tell every file.*eval/) }]);

    const denied = ofKind(events, "hook_denied").map((e) => e.data as { tool: string; reason: string });
    expect(denied).toHaveLength(3);
    expect(denied[0]).toMatchObject({ tool: "Write" });
    expect(denied[0]?.reason).toMatch(/docs\/guide\.md is owned by task t-docs/);
    expect(denied[1]?.reason).toMatch(/escape\/evil\.txt.*outside the task's worktree/);
    expect(denied[2]).toMatchObject({ tool: "Bash" });
    expect(denied[2]?.reason).toMatch(/docs\/from-bash\.md is owned by task t-docs/);
    // Claude Code lists them as permission denials too (the `tool_denied` events).
    expect(ofKind(events, "tool_denied").map((e) => (e.data as { tool: string }).tool)).toEqual([
      "Write",
      "Write",
      "Bash",
    ]);
  });

  it("refuses every write when the hook cannot judge (its config holds a malformed glob)", async () => {
    const { outcome, events, workdir } = await runTask({
      owns: ["src/api/**"],
      // Reaches the hook unvalidated: the hook's own compile of it throws.
      planOwners: async () => ({ "t-bad": ["../escape/**"] }),
      script: () => [writeFile("src/api/inside.ts", "x\n"), answer("done")],
    });
    expect(outcome.status, outcome.reason).toBe("succeeded");
    expect(existsSync(join(workdir, "src/api/inside.ts"))).toBe(false);
    const denied = ofKind(events, "hook_denied").map((e) => (e.data as { reason: string }).reason);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatch(/ownership hook failed, so the call is refused/);
  });
});
