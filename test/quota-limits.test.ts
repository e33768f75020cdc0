/**
 * Issue 15 §3-4, end to end: a real nats-server, two daemons sharing one Claude account, the
 * real Claude Code (node_modules, logged in with a subscription token) through mesh-shim
 * against the mock Messages API, which answers like the real service at its limit: 429 with
 * the unified rate-limit headers until the reset. The first rejection pauses both daemons (KV
 * `mesh-accounts`, watched); no session started after the pause meets a 429 before the reset
 * (the mock's request log with timestamps decides); the parked task resumes its own session
 * after the reset, on the worker holding it; every task succeeds exactly once; command tasks
 * run through the pause.
 */
import { writeFileSync } from "node:fs";
import { writeFile as writeFs } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { execa } from "execa";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { taskJson } from "../cli/json.js";
import type { Daemon, TaskEvent, TaskRecord } from "../daemon/index.js";
import { MeshMetrics, metricsPlugin } from "../daemon/metrics/index.js";
import { ACCOUNTS_BUCKET, accountEventSubject } from "../daemon/nats/names.js";
import {
  AccountBook,
  type AccountBookOptions,
  type AccountState,
  parkedUntil,
  readAccountStates,
} from "../daemon/quota/index.js";
import { taskToProto } from "../daemon/servers/grpc/convert.js";
import { type TaskSpec, validateTaskSpec } from "../daemon/tasks/spec.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  CLAUDE_BIN,
  type MockAnthropic,
  type MockRequest,
  startMockAnthropic,
  writeFile,
} from "./mock-anthropic/index.js";
import { subscriptionRejected, subscriptionWarning } from "./mock-anthropic/limits.js";
import { type MeshClient, openClient, startDaemon, waitForState } from "./support/mesh.js";
import { uniqueId } from "./support/tasks.js";

const FAKE_OAUTH_TOKEN = "sk-ant-oat01-FAKE-mesh-limits-token-0123456789";
const POOL = "limits";
/** How far ahead of the first rejection the mock's window resets. */
const RESET_AHEAD_MS = 6_000;
/** The mesh promises every daemon stops starting sessions within this of the first rejection. */
const PAUSE_PROPAGATION_MS = 2_000;
const WARN_RESET_AT = Date.now() + 4 * 3_600_000;
const WORKDIR_RE = /\/work\/([^/]+)\/a(\d+)$/;

let nats: NatsServer;
let client: MeshClient;
let mock: MockAnthropic;
let tokenFile: string;
const daemons: Daemon[] = [];
/** When the mock's window resets (epoch ms), once the first session met the limit. */
let resetAt: number | undefined;
let firstConversation: string | undefined;

const taskOf = (r: MockRequest): { id: string; attempt: number } | undefined => {
  const m = r.conversation ? WORKDIR_RE.exec(r.conversation) : null;
  return m ? { id: m[1]!, attempt: Number(m[2]) } : undefined;
};

beforeAll(async () => {
  nats = await NatsServer.start();
  client = await openClient(nats.url);
  mock = await startMockAnthropic({
    // Like the service: the first session exhausts the window; until it resets every request
    // is refused with the unified headers; then each task writes a file and finishes.
    script: ({ conversation, lastToolResult }) => {
      // The warning case's tasks: allowed, but at 95% of a window that resets in 4 h.
      if (conversation.includes("/lwarn-"))
        return subscriptionWarning(answer("done"), { utilization: 0.95, resetAt: WARN_RESET_AT });
      if (resetAt === undefined && firstConversation === undefined) {
        firstConversation = conversation;
        resetAt = Date.now() + RESET_AHEAD_MS;
      }
      if (resetAt !== undefined && Date.now() < resetAt) return subscriptionRejected({ resetAt });
      return lastToolResult ? answer("done") : writeFile("limits.txt", "after the reset\n");
    },
  });
  tokenFile = join(await makeTempDir("limits-token-"), "oauth-token");
  writeFileSync(tokenFile, `${FAKE_OAUTH_TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await Promise.allSettled(daemons.splice(0).map((d) => d.stop(2_000)));
  await client?.close();
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

const ID = ["-c", "user.name=Test User", "-c", "user.email=test@example.com"];
async function makeOrigin(): Promise<string> {
  const dir = await makeTempDir("limits-origin-");
  const git = (...args: string[]) => execa("git", [...ID, ...args], { cwd: dir, env: { LC_ALL: "C" } });
  await git("init", "--quiet", "-b", "main");
  await writeFs(join(dir, "README.md"), "a repo for agents\n");
  await git("add", "README.md");
  await git("commit", "--quiet", "-m", "first");
  return dir;
}

async function daemon(claude: Record<string, unknown> = {}, pool = POOL): Promise<Daemon> {
  const observer = new MeshMetrics({ worker: `limits-${daemons.length}`, defaultMetrics: false });
  const d = await startDaemon(
    nats.url,
    {
      pools: [pool],
      runners: ["claude", "command"],
      slots: 2,
      claude: {
        command: [CLAUDE_BIN],
        env: { ANTHROPIC_BASE_URL: mock.url },
        apiKeyFile: tokenFile,
        credentialEnv: "CLAUDE_CODE_OAUTH_TOKEN",
        account: "team",
        resumeJitter: 1_000,
        ...claude,
      },
    },
    { observer },
    [metricsPlugin(observer)],
  );
  daemons.push(d);
  return d;
}

function claudeTask(repo: string, title: string): TaskSpec {
  return validateTaskSpec({
    id: uniqueId("lim"),
    title,
    prompt: "Please do the scripted work.",
    repo,
    pool: POOL,
    maxAttempts: 1,
  });
}

function watch(id: string): TaskEvent[] {
  const events: TaskEvent[] = [];
  void (async () => {
    for await (const e of client.api.watchTask(id, new AbortController().signal)) events.push(e);
  })();
  return events;
}

const agentEvents = (events: TaskEvent[], kind: string, attempt?: number) =>
  events.filter(
    (e): e is Extract<TaskEvent, { type: "agent" }> =>
      e.type === "agent" && e.kind === kind && (attempt === undefined || e.attempt === attempt),
  );

async function accountState(): Promise<AccountState | undefined> {
  const kv = await new Kvm(jetstream(client.nc)).open(ACCOUNTS_BUCKET);
  return (await readAccountStates(kv)).find((s) => s.account === "team");
}

describe("account usage limits across daemons", { timeout: 180_000 }, () => {
  it("the first rejection pauses both daemons; parked work resumes its session after the reset; none lost, none twice", async () => {
    const origin = await makeOrigin();
    const [a, b] = [await daemon(), await daemon()];
    const accountEvents: unknown[] = [];
    client.nc.subscribe(accountEventSubject("team"), {
      callback: (_err, m) => {
        accountEvents.push(m.json());
      },
    });

    // 1. The first session meets the limit.
    const first = claudeTask(origin, "first");
    await client.api.submit([first]);
    const firstEvents = watch(first.id);
    const state = await waitFor(accountState, {
      name: "the account's rejected state in KV",
      timeoutMs: 60_000,
    });
    expect(state).toMatchObject({
      account: "team",
      state: "rejected",
      window: "five_hour",
      source: "rate_limit_event",
    });
    expect([a.workerId, b.workerId]).toContain(state.by);
    const until = Date.parse(state.until);
    // Claude Code reports the reset in epoch seconds: the mock's, rounded up.
    expect(until).toBe(Math.ceil(resetAt! / 1000) * 1000);
    const pausedAt = Date.parse(state.since);
    // Both daemons hold new sessions of the account back (the other learned it from the watch).
    await waitFor(() => a.accountBook!.pausedMs("team") > 0 && b.accountBook!.pausedMs("team") > 0, {
      name: "both daemons paused",
      timeoutMs: PAUSE_PROPAGATION_MS,
    });

    // 2. Parked, not failed: queued with the parked field, nothing counted.
    const parked = await waitFor(
      async () => {
        const r = (await client.api.getTask(first.id)).record;
        return r.state === "queued" && r.parked ? r : undefined;
      },
      { name: "the first task parked", timeoutMs: 30_000 },
    );
    expect(parked.parked).toMatchObject({
      account: "team",
      until: state.until,
      workerId: parked.attempts[0]!.workerId,
    });
    expect(parked.countedFailures).toBe(0);
    expect(parked.attempts[0]).toMatchObject({ outcome: "rate_limited", parked: true });
    expect(Date.parse(parked.notBefore!)).toBe(parkedUntil(until, 1_000, parked.submittedAt));
    // Shown as parked by `mesh task`/`mesh tasks` (their JSON) and in the state event.
    expect(taskJson(taskToProto({ record: parked, revision: 1 })).parked).toMatchObject({
      account: "team",
      until: state.until,
    });
    await waitFor(
      () =>
        firstEvents.find((e) => e.type === "state" && e.state === "queued" && e.parked?.account === "team"),
      { name: "the parked state event", timeoutMs: 10_000 },
    );

    // Metrics: both daemons show the account rejected; the session's daemon counted the hit and the parking.
    const metric = async (d: Daemon, name: string, labels: string): Promise<number | undefined> => {
      const body = (await (d.observer as MeshMetrics).render()).body;
      const line = body.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
      return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : undefined;
    };
    for (const d of [a, b])
      expect(await metric(d, "agentmesh_account_state", 'account="team",state="rejected"')).toBe(1);
    const holder = parked.attempts[0]!.workerId === a.workerId ? a : b;
    expect(
      await metric(holder, "agentmesh_account_limit_hits_total", 'account="team",source="rate_limit_event"'),
    ).toBe(1);
    expect(await metric(holder, "agentmesh_tasks_parked_total", `pool="${POOL}",account="team"`)).toBe(1);
    // The gauge of tasks parked now: the daemon holding the session counts it, the other not.
    const other = holder === a ? b : a;
    expect(await metric(holder, "agentmesh_tasks_parked", `pool="${POOL}",account="team"`)).toBe(1);
    expect(await metric(other, "agentmesh_tasks_parked", `pool="${POOL}",account="team"`)).toBe(0);

    // 3. Work submitted during the pause: claude tasks wait, a command task runs at once.
    const later = [
      claudeTask(origin, "later-1"),
      claudeTask(origin, "later-2"),
      claudeTask(origin, "later-3"),
    ];
    const cmd = validateTaskSpec({
      id: uniqueId("lim-cmd"),
      runner: "command",
      command: ["true"],
      prompt: "x",
      pool: POOL,
    });
    await client.api.submit([...later, cmd]);
    const cmdDone = await waitForState(client.api, cmd.id, ["succeeded", "failed", "dead"], 30_000);
    expect(cmdDone.record.state).toBe("succeeded");
    expect(Date.parse(cmdDone.record.finishedAt!)).toBeLessThan(until);

    // 4. Everything succeeds, each exactly once, after the reset.
    const all = [first, ...later];
    const done: TaskRecord[] = [];
    for (const t of all)
      done.push(
        (await waitForState(client.api, t.id, ["succeeded", "failed", "dead", "cancelled"], 90_000)).record,
      );
    for (const r of done) {
      expect(r.state, JSON.stringify(r.attempts)).toBe("succeeded");
      expect(r.attempts.filter((x) => x.outcome === "succeeded")).toHaveLength(1);
      expect(r.countedFailures).toBe(0);
    }
    // No attempt of the account started between the pause's arrival everywhere and the reset
    // (Claude Code may take seconds to send its first request: the attempts' start times say
    // when sessions were started); the later tasks needed one attempt each.
    for (const r of done)
      for (const x of r.attempts) {
        const startedAt = Date.parse(x.startedAt!);
        expect(
          startedAt <= pausedAt + PAUSE_PROPAGATION_MS || startedAt >= until,
          `${r.id} a${x.attempt}`,
        ).toBe(true);
      }
    for (const r of done.slice(1)) expect(r.attempts).toHaveLength(1);
    // Nothing is parked any more: the gauge reads the records back at each scrape.
    for (const d of [a, b])
      expect(await metric(d, "agentmesh_tasks_parked", `pool="${POOL}",account="team"`)).toBe(0);

    // 5. The request log decides: no session started after the pause met a 429 before the reset.
    const msgs = mock.messages();
    const sessionStart = new Map<string, number>();
    for (const r of msgs) if (!sessionStart.has(r.conversation!)) sessionStart.set(r.conversation!, r.at);
    const refused = msgs.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.at).toBeLessThan(until);
      expect(sessionStart.get(r.conversation!)!).toBeLessThanOrEqual(pausedAt + PAUSE_PROPAGATION_MS);
    }
    // Only the first task's first attempt met the limit; every later request came after the reset.
    expect(new Set(refused.map((r) => r.conversation))).toEqual(new Set([firstConversation]));
    expect(taskOf(refused[0]!)).toEqual({ id: first.id, attempt: 1 });
    for (const r of msgs.filter((x) => x.conversation !== firstConversation))
      expect(r.at).toBeGreaterThanOrEqual(until);

    // 6. The parked task resumed its own session (--resume: the same id), on the worker holding it.
    const r1 = done[0]!;
    expect(r1.attempts[1]!.workerId).toBe(r1.attempts[0]!.workerId);
    const started1 = agentEvents(firstEvents, "shim_started", 1)[0]?.data;
    const started2 = agentEvents(firstEvents, "shim_started", 2)[0]?.data;
    expect(started2).toMatchObject({ resumed: true, sessionId: started1?.sessionId });
    expect(r1.result?.sessionId).toBe(started1?.sessionId);
    expect(agentEvents(firstEvents, "rate_limit", 1)[0]?.data).toMatchObject({
      status: "rejected",
      window: "five_hour",
      resetsAt: until,
    });

    // 7. The account's state changes were announced on the bus, the reopening too.
    await waitFor(() => accountEvents.some((e) => (e as { state: string }).state === "open"), {
      name: "the reopening event",
      timeoutMs: 10_000,
    });
    expect(accountEvents[0]).toMatchObject({ type: "account", account: "team", state: "rejected" });
  });
});

describe("utilisation warnings", { timeout: 120_000 }, () => {
  it("a reported utilisation past claude.warnUtilization stops new starts until the window's reset", async () => {
    const pool = "limits-warn";
    const origin = await makeOrigin();
    const d = await daemon({ account: "warned", warnUtilization: 0.9 }, pool);
    const spec = (title: string) =>
      validateTaskSpec({
        id: uniqueId("lwarn"),
        title,
        prompt: "Please do the scripted work.",
        repo: origin,
        pool,
      });
    const first = spec("warned");
    await client.api.submit([first]);
    const r = await waitForState(client.api, first.id, ["succeeded", "failed", "dead"], 60_000);
    // The session itself succeeds: a warning stops no running work.
    expect(r.record.state).toBe("succeeded");
    const kv = await new Kvm(jetstream(client.nc)).open(ACCOUNTS_BUCKET);
    const state = await waitFor(
      async () => (await readAccountStates(kv)).find((s) => s.account === "warned"),
      {
        name: "the warning state",
        timeoutMs: 10_000,
      },
    );
    expect(state).toMatchObject({ state: "warning", utilization: 0.95, window: "five_hour", by: d.workerId });
    expect(state.until).toBe(new Date(Math.ceil(WARN_RESET_AT / 1000) * 1000).toISOString());
    // A task submitted now does not start: a sleep only to prove that nothing happens.
    const second = spec("held back");
    await client.api.submit([second]);
    await new Promise((res) => setTimeout(res, 2_000));
    const held = (await client.api.getTask(second.id)).record;
    expect(held.state).toBe("queued");
    expect(held.attempts).toHaveLength(0);
    expect(mock.messages().filter((q) => q.conversation?.includes(`/${second.id}/`))).toHaveLength(0);
    await client.api.cancel(second.id);
  });

  it("a utilisation below claude.warnUtilization reaches the gauge and holds nothing back", async () => {
    const pool = "limits-calm";
    const origin = await makeOrigin();
    // The mock reports 95% for these tasks (their ids start with lwarn-); the threshold is above it.
    const d = await daemon({ account: "calm", warnUtilization: 0.99 }, pool);
    const spec = () =>
      validateTaskSpec({ id: uniqueId("lwarn"), prompt: "Please do the scripted work.", repo: origin, pool });
    const specs = [spec(), spec()];
    await client.api.submit([specs[0]!]);
    expect(
      (await waitForState(client.api, specs[0]!.id, ["succeeded", "failed", "dead"], 60_000)).record.state,
    ).toBe("succeeded");
    const body = (await (d.observer as MeshMetrics).render()).body;
    expect(body).toContain('agentmesh_account_utilization_ratio{account="calm",worker="limits-');
    const line = body
      .split("\n")
      .find((l) => l.startsWith('agentmesh_account_utilization_ratio{account="calm"'));
    expect(Number(line?.slice(line.lastIndexOf(" ") + 1))).toBe(0.95);
    expect(body).toMatch(/agentmesh_account_state\{account="calm",state="open"[^}]*\} 1/);
    // Below the threshold: no state recorded, the next session starts at once.
    const kv = await new Kvm(jetstream(client.nc)).open(ACCOUNTS_BUCKET);
    expect((await readAccountStates(kv)).find((s) => s.account === "calm")).toBeUndefined();
    await client.api.submit([specs[1]!]);
    expect(
      (await waitForState(client.api, specs[1]!.id, ["succeeded", "failed", "dead"], 60_000)).record.state,
    ).toBe("succeeded");
  });
});

describe("account limit state in KV (AccountBook against real NATS)", { timeout: 60_000 }, () => {
  const silent = pino({ level: "silent" });
  const book = (workerId: string, extra: Partial<AccountBookOptions> = {}) =>
    AccountBook.open(jetstream(client.nc), client.nc, {
      workerId,
      log: silent,
      jitterMs: 0,
      fallbackPauseMs: 60_000,
      ...extra,
    });

  it("concurrent rejections: one state, and a later reset wins over an earlier one", async () => {
    const account = `race-${Date.now()}`;
    const [x, y] = [await book("wx"), await book("wy")];
    try {
      const now = Date.now();
      const early = {
        state: "rejected" as const,
        source: "rate_limit_event",
        resetsAt: now + 30_000,
        window: "five_hour",
      };
      const late = { ...early, resetsAt: now + 90_000 };
      await Promise.all([x.report(account, late), y.report(account, early), x.report(account, early)]);
      await waitFor(() => x.state(account)?.until === y.state(account)?.until && y.state(account), {
        name: "both books agree",
        timeoutMs: 2_000,
      });
      expect(y.state(account)?.until).toBe(new Date(now + 90_000).toISOString());
      // An earlier reset reported now changes nothing.
      expect(await y.report(account, early)).toBeUndefined();
      expect(x.pausedMs(account)).toBeGreaterThan(60_000);
    } finally {
      x.stop();
      y.stop();
    }
  });

  it("a warning past warnUtilization stops new starts until the window resets; below it, nothing", async () => {
    const account = `warn-${Date.now()}`;
    const [x, y] = [await book("wx", { warnUtilization: 0.9 }), await book("wy", { warnUtilization: 0.9 })];
    try {
      const resetsAt = Date.now() + 4 * 3_600_000;
      const warning = {
        state: "warning" as const,
        source: "rate_limit_event",
        resetsAt,
        window: "five_hour",
      };
      expect(await x.report(account, { ...warning, utilization: 0.5 })).toBeUndefined();
      expect(y.pausedMs(account)).toBe(0);
      expect(await x.report(account, { ...warning, utilization: 0.93 })).toMatchObject({
        state: "warning",
        utilization: 0.93,
      });
      await waitFor(() => y.pausedMs(account) > 0, { name: "the other daemon holds back", timeoutMs: 2_000 });
      expect(y.stateName(account)).toBe("warning");
      // A rejection replaces the warning; a warning never replaces an active rejection.
      await x.report(account, { state: "rejected", source: "api_error", resetsAt: resetsAt + 1_000 });
      expect(
        await x.report(account, { ...warning, utilization: 0.99, resetsAt: resetsAt + 5_000 }),
      ).toBeUndefined();
      await waitFor(() => y.stateName(account) === "rejected", {
        name: "rejected everywhere",
        timeoutMs: 2_000,
      });
    } finally {
      x.stop();
      y.stop();
    }
  });

  it("parked tasks resume in submission order, after every daemon's jitter", () => {
    const until = Date.parse("2026-12-01T15:00:00.000Z");
    const times = ["14:00:00.000", "14:59:58.000", "14:59:58.100", "14:59:59.900"].map((t) =>
      parkedUntil(until, 3_000, `2026-12-01T${t}Z`),
    );
    for (const t of times) expect(t).toBeGreaterThan(until + 3_000);
    expect([...times].sort((p, q) => p - q)).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
  });
});
