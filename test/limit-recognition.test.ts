/**
 * The shim recognises every way Claude Code reports a usage limit. Each case is stream-json
 * recorded from Claude Code 2.1.112 against the mock at its limits (test/mock-anthropic/
 * limits.ts), replayed by a real child process through the real shim (runShim), and judged
 * on the outcome's typed fields and the agent events, never on text.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentEvent } from "../agent-shim/events.js";
import { parseShimJob } from "../agent-shim/job.js";
import type { ShimLine, ShimOutcome } from "../agent-shim/protocol.js";
import { runShim } from "../agent-shim/run-shim.js";
import {
  answer,
  apiKeyLimited,
  CLAUDE_BIN,
  isolatedClaudeEnv,
  type MockAnthropic,
  REPO_ROOT,
  startMockAnthropic,
  subscriptionRejected,
} from "./mock-anthropic/index.js";

const REPLAY = join(REPO_ROOT, "test", "fixtures", "limits", "replay.mjs");
const SID = "82dd0a0d-2641-472d-b528-688908305029";
const INIT = {
  type: "system",
  subtype: "init",
  cwd: "/w",
  session_id: SID,
  model: "claude-sonnet-4-6",
  tools: [],
  permissionMode: "acceptEdits",
  claude_code_version: "2.1.112",
};
const RESET_S = 1796137041;
const synthetic = (text: string) => ({
  type: "assistant",
  message: { model: "<synthetic>", role: "assistant", content: [{ type: "text", text }] },
  session_id: SID,
});
const result = (over: Record<string, unknown>) => ({
  type: "result",
  subtype: "success",
  is_error: true,
  api_error_status: 429,
  duration_ms: 185,
  duration_api_ms: 0,
  num_turns: 1,
  result: "You've hit your session limit · resets 2:57pm (UTC)",
  session_id: SID,
  total_cost_usd: 0,
  usage: { input_tokens: 0, output_tokens: 0 },
  modelUsage: {},
  permission_denials: [],
  terminal_reason: "completed",
  ...over,
});
const retry = (attempt: number) => ({
  type: "system",
  subtype: "api_retry",
  attempt,
  max_retries: 2,
  retry_delay_ms: 2000,
  error_status: 429,
  error: "rate_limit",
  session_id: SID,
});

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function replay(
  lines: unknown[],
  exitCode: number,
): Promise<{ outcome: ShimOutcome; events: AgentEvent[] }> {
  const dir = await mkdtemp(join(tmpdir(), "mesh-limits-"));
  dirs.push(dir);
  const file = join(dir, "lines.jsonl");
  await writeFile(file, lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
  return runJob(dir, [process.execPath, REPLAY, file, String(exitCode)], { PATH: process.env.PATH });
}

/** Runs one job through the real shim code with `claudeCommand` as Claude Code. */
async function runJob(
  dir: string,
  claudeCommand: string[],
  env: Record<string, string | undefined>,
  maxRetries?: number,
): Promise<{ outcome: ShimOutcome; events: AgentEvent[] }> {
  const job = parseShimJob({
    v: 1,
    taskId: "t1",
    attempt: 1,
    prompt: "hi",
    workdir: dir,
    claudeCommand,
    configDir: join(dir, "config"),
    tmpDir: join(dir, "tmp"),
    runtimeDir: join(dir, "run"),
    ...(maxRetries !== undefined ? { maxRetries } : {}),
  });
  const events: AgentEvent[] = [];
  const outcome = await runShim(job, {
    log: pino({ level: "silent" }),
    redact: (s) => s,
    write: (l: ShimLine) => {
      if (l.type === "event") events.push(l.event);
    },
    env,
    signal: new AbortController().signal,
  });
  return { outcome, events };
}

describe("limit recognition", () => {
  it("a rejected rate_limit_event: rate limited until resetsAt, with its window", async () => {
    const { outcome, events } = await replay(
      [
        INIT,
        {
          type: "rate_limit_event",
          rate_limit_info: {
            status: "rejected",
            resetsAt: RESET_S,
            rateLimitType: "five_hour",
            isUsingOverage: false,
          },
          uuid: "de6b95c7",
          session_id: SID,
        },
        synthetic("You've hit your session limit · resets 2:57pm (UTC)"),
        result({}),
      ],
      1,
    );
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toEqual({
      state: "rejected",
      source: "rate_limit_event",
      resetsAt: RESET_S * 1000,
      window: "five_hour",
    });
    expect(events).toContainEqual({
      kind: "rate_limit",
      status: "rejected",
      resetsAt: RESET_S * 1000,
      window: "five_hour",
    });
  });

  it("a 429 result alone (API key): rejected, without a reset time", async () => {
    const { outcome } = await replay(
      [
        INIT,
        synthetic(
          "API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit",
        ),
        result({ result: "API Error: Request rejected (429)" }),
      ],
      1,
    );
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toEqual({ state: "rejected", source: "api_error" });
  });

  it("exhausted api_retry lines with error rate_limit: rejected, with the retry delay", async () => {
    const { outcome, events } = await replay(
      [INIT, retry(1), retry(2), result({ result: "API Error: Request rejected (429)" })],
      1,
    );
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toMatchObject({ state: "rejected", source: "api_error", retryAfterMs: 2000 });
    expect(events.filter((e) => e.kind === "api_retry")).toHaveLength(2);
  });

  it("exhausted api_retry lines and no result line: still a limit, not a crash", async () => {
    const { outcome } = await replay([INIT, retry(1), retry(2)], 1);
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toEqual({ state: "rejected", source: "api_retry", retryAfterMs: 2000 });
  });

  it("an api_retry that recovered is no limit", async () => {
    const { outcome } = await replay(
      [INIT, retry(1), result({ is_error: false, api_error_status: null, result: "done" })],
      0,
    );
    expect(outcome.status).toBe("succeeded");
    expect(outcome.limit).toBeUndefined();
  });

  it("the old text 'Claude AI usage limit reached|<epoch>': rejected until that epoch", async () => {
    const { outcome } = await replay(
      [INIT, result({ api_error_status: null, result: `Claude AI usage limit reached|${RESET_S}` })],
      1,
    );
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toEqual({
      state: "rejected",
      source: "usage_limit_text",
      resetsAt: RESET_S * 1000,
    });
  });

  it("an allowed_warning with utilisation: a warning on a session that succeeded", async () => {
    const { outcome, events } = await replay(
      [
        INIT,
        synthetic("hi"),
        {
          type: "rate_limit_event",
          rate_limit_info: {
            status: "allowed_warning",
            resetsAt: 1796153235,
            rateLimitType: "five_hour",
            utilization: 0.95,
            isUsingOverage: false,
          },
          session_id: SID,
        },
        result({ is_error: false, api_error_status: null, result: "hi" }),
      ],
      0,
    );
    expect(outcome.status).toBe("succeeded");
    expect(outcome.limit).toBeUndefined();
    expect(outcome.warning).toEqual({
      state: "warning",
      source: "rate_limit_event",
      resetsAt: 1796153235000,
      window: "five_hour",
      utilization: 0.95,
    });
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "rate_limit", status: "allowed_warning", utilization: 0.95 }),
    );
  });

  it("a 529 (overloaded) is retried later but is no account limit", async () => {
    const { outcome } = await replay([INIT, result({ api_error_status: 529, result: "Overloaded" })], 1);
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toBeUndefined();
  });

  it("other failures stay failures", async () => {
    const { outcome } = await replay([INIT, result({ api_error_status: 500, result: "API Error: 500" })], 1);
    expect(outcome.status).toBe("failed");
    expect(outcome.limit).toBeUndefined();
  });
});

describe("the real Claude Code against the mock at its limits", { timeout: 120_000 }, () => {
  let mock: MockAnthropic;
  let reply = (): ReturnType<typeof answer> => answer("ok");
  afterAll(async () => {
    await mock?.close();
  });

  async function run(oauth: boolean, maxRetries: number) {
    mock ??= await startMockAnthropic({ script: () => reply() });
    const dir = await mkdtemp(join(tmpdir(), "mesh-limits-real-"));
    dirs.push(dir);
    const env: Record<string, string | undefined> = await isolatedClaudeEnv(dir, mock.url);
    if (oauth) {
      delete env.ANTHROPIC_API_KEY;
      env.CLAUDE_CODE_OAUTH_TOKEN = "sk-ant-oat01-FAKE-mesh-limits-token";
    }
    return runJob(dir, [CLAUDE_BIN], env, maxRetries);
  }

  it("a subscription's 429 with the unified headers: rate_limit_event rejected, reset and window", async () => {
    const resetAt = Date.now() + 3_600_000;
    reply = () => subscriptionRejected({ resetAt, window: "five_hour" });
    const { outcome, events } = await run(true, 0);
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.apiErrorStatus).toBe(429);
    expect(outcome.limit).toEqual({
      state: "rejected",
      source: "rate_limit_event",
      resetsAt: Math.ceil(resetAt / 1000) * 1000,
      window: "five_hour",
    });
    expect(events).toContainEqual(expect.objectContaining({ kind: "rate_limit", status: "rejected" }));
  });

  it("an API key's 429 with retry-after: retried, then rejected with the retry delay", async () => {
    reply = () => apiKeyLimited({ retryAfterSeconds: 1 });
    const { outcome, events } = await run(false, 1);
    expect(outcome.status).toBe("rate_limited");
    expect(outcome.limit).toMatchObject({ state: "rejected", source: "api_error", retryAfterMs: 1000 });
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "api_retry", status: 429, error: "rate_limit" }),
    );
    expect(events.some((e) => e.kind === "rate_limit")).toBe(false);
    const last = mock.messages().at(-1)!;
    expect(last.status).toBe(429);
  });
});
