/**
 * File leases for tasks without `owns`, end to end: a real nats-server, a daemon with two slots,
 * the real Claude Code through mesh-shim against the mock API, git worktrees of a real repo.
 * The hook asks the per-task port, the port takes first-come leases in KV `mesh-file-leases`:
 * the second task writing a file is refused naming the first while it runs, and gets the file
 * once the first has ended; a lease left by a task that is not running is taken over.
 */
import { writeFileSync } from "node:fs";
import { writeFile as writeFs } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileLeaseKey } from "../daemon/claim/index.js";
import type { Daemon, TaskEvent } from "../daemon/index.js";
import { FILE_LEASES_BUCKET } from "../daemon/nats/names.js";
import { validateTaskSpec } from "../daemon/tasks/spec.js";
import { Deferred, makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  FAKE_API_KEY,
  type MockAnthropic,
  type MockReply,
  startMockAnthropic,
  type TurnContext,
  writeFile,
} from "./mock-anthropic/index.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

type Script = (ctx: TurnContext) => MockReply | Promise<MockReply>;
const WORKDIR_RE = /\/work\/([^/]+)\/a(\d+)$/;
/** The daemons' lease (FAST: 2s): a file lease not renewed for this long is free. */
const LEASE_MS = 2_000;
const scripts = new Map<string, Script>();
let nats: NatsServer;
let client: MeshClient;
let mock: MockAnthropic;
let keyFile: string;
let daemon: Daemon;

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  mock = await startMockAnthropic({
    script: (ctx) => {
      const m = ctx.workdir ? WORKDIR_RE.exec(ctx.workdir) : null;
      const s = m ? scripts.get(m[1] as string) : undefined;
      return s ? s(ctx) : answer("no script for this conversation");
    },
  });
  keyFile = join(await makeTempDir("leases-key-"), "anthropic-key");
  writeFileSync(keyFile, `${FAKE_API_KEY}\n`, { mode: 0o600 });
  daemon = await startDaemon(nats.url, {
    pools: ["leases"],
    runners: ["claude"],
    slots: 2,
    claude: { command: [CLAUDE_BIN], env: { ANTHROPIC_BASE_URL: mock.url }, apiKeyFile: keyFile },
  });
});

afterAll(async () => {
  await daemon?.stop(2_000);
  await client?.close();
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

const ID = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"];
async function makeOrigin(): Promise<string> {
  const dir = await makeTempDir("leases-origin-");
  const git = (...a: string[]) => execa("git", [...ID, ...a], { cwd: dir, env: { LC_ALL: "C" } });
  await git("init", "--quiet", "-b", "main");
  await writeFs(join(dir, "README.md"), "shared repo\n");
  await git("add", "README.md");
  await git("commit", "--quiet", "-m", "first");
  return dir;
}

function watch(id: string): { events: TaskEvent[]; done: Promise<void> } {
  const events: TaskEvent[] = [];
  const done = (async () => {
    for await (const e of client.api.watchTask(id, new AbortController().signal)) events.push(e);
  })();
  return { events, done };
}
const agent = (events: TaskEvent[], kind: string) =>
  events.filter((e): e is Extract<TaskEvent, { type: "agent" }> => e.type === "agent" && e.kind === kind);

describe("file leases for tasks without owns", { timeout: 180_000 }, () => {
  it("refuses the second writer naming the first while it runs, grants it after; takes over a dead lease", async () => {
    const origin = await makeOrigin();
    // A lease left behind by a task that is not running (no record at all): free to take over.
    const nc = await connect({ servers: nats.url });
    const kv = await new Kvm(jetstream(nc)).create(FILE_LEASES_BUCKET, { history: 1 });
    const ghost = { taskId: "ghost", attempt: 1, workerId: "w-gone", at: new Date().toISOString() };
    await kv.put(
      fileLeaseKey(origin, "ghost.txt"),
      JSON.stringify({ ...ghost, repo: origin, path: "ghost.txt" }),
    );

    const a = validateTaskSpec({ id: uniqueId("lease-a"), prompt: "A", repo: origin, pool: "leases" });
    const b = validateTaskSpec({ id: uniqueId("lease-b"), prompt: "B", repo: origin, pool: "leases" });
    const aHolds = new Deferred<string>();
    const bRefused = new Deferred<string>();
    scripts.set(a.id, async ({ turn, lastToolResult }) => {
      if (turn === 0) return writeFile("ghost.txt", "taken over\n");
      if (turn === 1) {
        expect(lastToolResult?.isError).toBe(false);
        return writeFile("shared.txt", "from A\n");
      }
      expect(lastToolResult?.isError).toBe(false);
      const held = await kv.get(fileLeaseKey(origin, "shared.txt"));
      aHolds.resolve(held?.json<{ at: string }>().at ?? "");
      // Holds its lease (the attempt keeps running) until B has been refused.
      await bRefused.promise;
      return answer("A done");
    });
    scripts.set(b.id, async ({ turn, lastToolResult }) => {
      if (turn === 0) {
        // Past one lease time since A took it: only A's renewals keep it A's.
        const takenAt = Date.parse(await aHolds.promise);
        await waitFor(() => Date.now() - takenAt > 2 * LEASE_MS, { timeoutMs: 30_000, name: "a lease time" });
        return writeFile("shared.txt", "from B\n");
      }
      if (turn === 1) {
        bRefused.resolve(lastToolResult?.text ?? "");
        await waitForState(client.api, a.id, ["succeeded"], 60_000);
        return writeFile("shared.txt", "from B\n");
      }
      return answer(lastToolResult?.isError ? "B failed again" : "B done");
    });

    await client.api.submit([a, b]);
    const wa = watch(a.id);
    const wb = watch(b.id);
    expect(
      (await waitForState(client.api, a.id, ["succeeded", "failed", "dead"], 120_000)).record.state,
    ).toBe("succeeded");
    const rb = (await waitForState(client.api, b.id, ["succeeded", "failed", "dead"], 120_000)).record;
    expect(rb.state).toBe("succeeded");
    await Promise.all([wa.done, wb.done]);

    // B was refused with A named, in its events and in what the agent was told.
    expect(await bRefused.promise).toContain(`leased by running task ${a.id}`);
    const denied = agent(wb.events, "hook_denied").map((e) => (e.data as { reason: string }).reason);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatch(new RegExp(`shared\\.txt is leased by running task ${a.id} \\(attempt 1`));
    // ... and its second write, after A ended, went through.
    const results = agent(wb.events, "tool_result").map((e) => (e.data as { isError: boolean }).isError);
    expect(results).toEqual([true, false]);
    expect(rb.result?.summary).toBe("B done");
    // A was never refused (the ghost lease was free), and its leases are gone with its attempt.
    expect(agent(wa.events, "hook_denied")).toEqual([]);
    const left = await kv.get(fileLeaseKey(origin, "ghost.txt"));
    expect(left?.operation === "PUT" ? left.json() : undefined).toBeUndefined();
    // B's lease on shared.txt is released once B ended too.
    const shared = await kv.get(fileLeaseKey(origin, "shared.txt"));
    expect(shared?.operation).not.toBe("PUT");
    await nc.close();
  });
});
