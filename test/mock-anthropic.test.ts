/**
 * The mock Messages API: its wire format checked with fetch, then the real Claude Code CLI
 * (node_modules, 2.1.112) driven through it, offline, with a fake key.
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import {
  answer,
  bash,
  CLAUDE_BIN,
  editFile,
  FAKE_API_KEY,
  isolatedClaudeEnv,
  type MockAnthropic,
  rateLimited,
  readFile as readTool,
  stall,
  startMockAnthropic,
  steps,
  writeFile,
} from "./mock-anthropic/index.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  const all = cleanups.splice(0).reverse();
  await Promise.allSettled(all.map((c) => c()));
});

async function mock(opts: Parameters<typeof startMockAnthropic>[0]): Promise<MockAnthropic> {
  const m = await startMockAnthropic(opts);
  cleanups.push(() => m.close());
  return m;
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A request body shaped like Claude Code's: working directory in the system prompt. */
function body(workdir: string, messages: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model: "claude-test",
    max_tokens: 1000,
    stream: true,
    system: [{ type: "text", text: `You are an agent.\nPrimary working directory: ${workdir}\nIs git: no` }],
    tools: [{ name: "Write", input_schema: { type: "object" } }],
    messages,
    ...extra,
  });
}

function sseEvents(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split("\n\n")
    .filter((chunk) => chunk.trim())
    .map((chunk) => {
      const event = /^event: (.*)$/m.exec(chunk)?.[1] ?? "";
      const data = JSON.parse(/^data: (.*)$/m.exec(chunk)?.[1] ?? "{}") as Record<string, unknown>;
      return { event, data };
    });
}

describe("mock Anthropic API (wire format)", () => {
  it("answers the preconnect probe and count_tokens", async () => {
    const m = await mock({});
    expect((await fetch(`${m.url}/`, { method: "HEAD" })).status).toBe(200);
    const res = await fetch(`${m.url}/v1/messages/count_tokens?beta=true`, {
      method: "POST",
      body: body("/w", [{ role: "user", content: "hi" }]),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(0);
    expect(m.requests.map((r) => r.kind)).toEqual(["probe", "count_tokens"]);
  });

  it("streams a tool call as input_json_delta and reads turn, conversation and tool result", async () => {
    const m = await mock({ script: steps(writeFile("notes/a.txt", "hello"), answer("done")) });
    const first = await fetch(`${m.url}/v1/messages?beta=true`, {
      method: "POST",
      body: body("/work/x", [{ role: "user", content: [{ type: "text", text: "write it" }] }]),
    });
    expect(first.headers.get("content-type")).toContain("text/event-stream");
    const events = sseEvents(await first.text());
    expect(events.map((e) => e.event)).toEqual([
      "message_start",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    const start = events[0]!.data.message as { usage: { input_tokens: number } };
    expect(start.usage.input_tokens).toBeGreaterThan(0);
    const block = events[1]!.data.content_block as { type: string; name: string; id: string };
    expect(block).toMatchObject({ type: "tool_use", name: "Write" });
    const json = events
      .filter((e) => e.event === "content_block_delta")
      .map((e) => (e.data.delta as { partial_json: string }).partial_json)
      .join("");
    // A relative path is resolved against the conversation's working directory.
    expect(JSON.parse(json)).toEqual({ file_path: "/work/x/notes/a.txt", content: "hello" });
    expect(events[5]!.data.delta).toMatchObject({ stop_reason: "tool_use" });

    const second = await fetch(`${m.url}/v1/messages?beta=true`, {
      method: "POST",
      body: body("/work/x", [
        { role: "user", content: [{ type: "text", text: "write it" }] },
        { role: "assistant", content: [{ type: "tool_use", id: block.id, name: "Write", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: block.id, content: "File created" }] },
      ]),
    });
    const texts = sseEvents(await second.text())
      .filter((e) => e.event === "content_block_delta")
      .map((e) => (e.data.delta as { text: string }).text)
      .join("");
    expect(texts).toBe("done");
    const [r1, r2] = m.messages();
    expect(r1).toMatchObject({ conversation: "/work/x", turn: 0, attempt: 0 });
    expect(r2).toMatchObject({ conversation: "/work/x", turn: 1, attempt: 0 });
    expect(r2!.view?.lastToolResult).toEqual({ toolUseId: block.id, isError: false, text: "File created" });
  });

  it("fails with status and retry-after, counting attempts of the same turn", async () => {
    const m = await mock({ script: ({ attempt }) => (attempt === 0 ? rateLimited(7) : answer("ok")) });
    const req = { method: "POST", body: body("/w", [{ role: "user", content: "hi" }]) };
    const res = await fetch(`${m.url}/v1/messages`, req);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(await res.json()).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
    expect((await fetch(`${m.url}/v1/messages`, req)).status).toBe(200);
    expect(m.messages().map((r) => r.attempt)).toEqual([0, 1]);
  });

  it("answers side requests (no workdir, no tools) without using the script, with JSON when a schema is asked", async () => {
    const m = await mock({
      script: () => {
        throw new Error("the script must not see side requests");
      },
    });
    const res = await fetch(`${m.url}/v1/messages?beta=true`, {
      method: "POST",
      body: JSON.stringify({
        model: "claude-haiku",
        max_tokens: 100,
        tools: [],
        messages: [{ role: "user", content: "do the thing" }],
        output_config: {
          format: {
            type: "json_schema",
            schema: { type: "object", properties: { title: { type: "string" } } },
          },
        },
      }),
    });
    const json = await res.json();
    expect(res.status).toBe(200);
    expect(JSON.parse((json as { content: Array<{ text: string }> }).content[0]!.text)).toEqual({
      title: "Mock title",
    });
    expect(m.requests.map((r) => r.kind)).toEqual(["side"]);
  });

  it("stalls until the client gives up, and records that it left", async () => {
    const m = await mock({ script: () => stall() });
    const ac = new AbortController();
    const pending = fetch(`${m.url}/v1/messages`, {
      method: "POST",
      body: body("/w", [{ role: "user", content: "hi" }]),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    await m.waitForRequest((r) => r.reply === "stall", { name: "stalled request" });
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await m.waitForRequest((r) => r.clientClosed, { name: "client to close the stalled request" });
  });
});

describe("real Claude Code against the mock", () => {
  async function runClaude(m: MockAnthropic, prompt: string) {
    const root = await tempDir("mesh-mock-claude-");
    const workdir = join(root, "work");
    await mkdir(workdir);
    const env = await isolatedClaudeEnv(root, m.url);
    const res = await execa(
      CLAUDE_BIN,
      ["-p", prompt, "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"],
      { cwd: workdir, env, extendEnv: false, reject: false, timeout: 90_000, stdin: "ignore" },
    );
    const lines = res.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { res, lines, workdir };
  }

  it("writes a file through the mock and reports cost and tokens on the result line", async () => {
    const m = await mock({
      script: steps(writeFile("hello.txt", "hello from the mock\n"), answer("Wrote it.")),
    });
    const { res, lines, workdir } = await runClaude(m, "create hello.txt");
    expect(res.exitCode, res.stderr).toBe(0);
    expect(await readFile(join(workdir, "hello.txt"), "utf8")).toBe("hello from the mock\n");

    const init = lines.find((l) => l.type === "system" && l.subtype === "init");
    expect(init).toMatchObject({ cwd: workdir, permissionMode: "acceptEdits" });
    const result = lines.find((l) => l.type === "result");
    expect(result).toMatchObject({ subtype: "success", is_error: false, num_turns: 2, result: "Wrote it." });
    expect(result?.total_cost_usd).toBeGreaterThan(0);
    // Two scripted calls of the default usage (100 in, 20 out).
    expect(result?.usage).toMatchObject({ input_tokens: 200, output_tokens: 40 });

    const calls = m.messages();
    expect(calls.map((r) => r.turn)).toEqual([0, 1]);
    expect(calls[0]!.conversation).toBe(workdir);
    expect(calls[0]!.headers["x-api-key"]).toBe(FAKE_API_KEY);
    expect(calls[0]!.url).toBe("/v1/messages?beta=true");
    expect(calls[1]!.view?.lastToolResult?.text).toContain("File created successfully");
    expect(m.requests.some((r) => r.kind === "probe")).toBe(true);
  });

  it("reads, edits and runs Bash as scripted", async () => {
    const m = await mock({
      script: steps(
        writeFile("a.txt", "one two\n"),
        readTool("a.txt"),
        editFile("a.txt", "two", "three"),
        bash("echo from-bash > b.txt"),
        answer("done"),
      ),
    });
    const { res, lines, workdir } = await runClaude(m, "edit things");
    expect(res.exitCode, res.stderr).toBe(0);
    expect(await readFile(join(workdir, "a.txt"), "utf8")).toBe("one three\n");
    expect(await readFile(join(workdir, "b.txt"), "utf8")).toBe("from-bash\n");
    expect(lines.find((l) => l.type === "result")).toMatchObject({ is_error: false, num_turns: 5 });
    expect(m.messages().every((r) => !r.view?.lastToolResult?.isError)).toBe(true);
  });
});
