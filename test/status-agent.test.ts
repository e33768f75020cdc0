/**
 * The status model fed by a real agent: the real Claude Code CLI (through mesh-shim) against
 * the mock Messages API runs a Bash tool that blocks until the test opens a gate. While it runs
 * the task is "tool" (Bash), on the daemon running it and on another daemon alike (a remote task
 * looks exactly like a local one: both fold the same events from the bus); then it succeeds.
 */
import { writeFileSync } from "node:fs";
import { writeFile as writeFs } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../daemon/index.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  startMockAnthropic,
} from "./mock-anthropic/index.js";
import { startDaemon } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

let nats: NatsServer;
let mock: MockAnthropic;
let keyFile: string;
let gate: string;
const daemons: Daemon[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  const dir = await makeTempDir("status-agent-");
  gate = join(dir, "gate");
  keyFile = join(dir, "anthropic-key");
  writeFileSync(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
  mock = await startMockAnthropic({
    script: ({ turn }) =>
      turn === 0
        ? bash(`while [ ! -e ${gate} ]; do sleep 0.1; done; echo opened`)
        : answer("The gate opened."),
  });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(daemons.map((d) => d.stop(2000)));
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

async function origin(): Promise<string> {
  const dir = await makeTempDir("status-agent-origin-");
  const g = (...a: string[]) =>
    execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...a], { cwd: dir });
  await g("init", "--quiet", "-b", "main");
  await writeFs(join(dir, "README.md"), "a repo\n");
  await g("add", "README.md");
  await g("commit", "--quiet", "-m", "first");
  return dir;
}

describe("status from a real agent's events", () => {
  it("is 'tool' while the agent's Bash call runs, the same on a remote daemon, then succeeded", async () => {
    const pool = "status-agent";
    const worker = await startDaemon(nats.url, {
      name: "runs-it",
      pools: [pool],
      runners: ["claude"],
      slots: 1,
      claude: {
        command: [CLAUDE_BIN],
        env: { ANTHROPIC_BASE_URL: mock.url },
        apiKeyFile: keyFile,
        allowedTools: ["Bash"],
      },
    });
    const other = await startDaemon(nats.url, {
      name: "elsewhere",
      pools: ["status-agent-other"],
      runners: ["noop"],
    });
    daemons.push(worker, other);
    const spec = validateTaskSpec({
      id: uniqueId("agent"),
      prompt: "open the gate",
      repo: await origin(),
      pool,
    });
    await worker.api.submit([spec]);

    for (const d of [worker, other]) {
      const s = await waitFor(
        async () => {
          const v = await d.api.getTask(spec.id);
          return v.status?.kind === "tool" ? v.status : undefined;
        },
        { name: `${d.workerId} shows the tool call`, timeoutMs: 60_000, intervalMs: 100 },
      );
      expect(s).toMatchObject({ kind: "tool", detail: "Bash", attention: false, workerId: worker.workerId });
    }
    await writeFs(gate, "open");
    for (const d of [worker, other])
      await waitFor(async () => (await d.api.getTask(spec.id)).status?.kind === "succeeded", {
        name: `${d.workerId} shows it succeeded`,
        timeoutMs: 60_000,
      });
  }, 120_000);
});
