/**
 * Status accuracy, measured: 20 agents on two `meshd` children (half pinned to each). Per daemon
 * five are command agents (two finish, one crashes, two hang) and five are the real Claude Code
 * CLI (through mesh-shim) against the mock Messages API: two hang in a Bash tool until the test
 * opens a gate ("tool"), one is denied a write (permission mode `default`: attention once its
 * session reports the denial, then it ends), one meets a subscription's usage limit (parked:
 * attention until the reset, which lies beyond the run) and one crashes (the API refuses its
 * request). The second daemon is SIGKILLed with its hung command tasks on it; the first
 * daemon's hung command tasks are cancelled. Three views are sampled all along: the API
 * (MeshService, as the gRPC and HTTP servers answer), `mesh top` in real tmux (capture-pane),
 * and the web dashboard in headless Chromium. Each sample is compared with the test's own log of
 * what it did and saw (a task's process, or the agent's tool, announces its start in a file; the
 * mock's request log says when an agent asked for its next turn; the test opens gates, kills,
 * cancels; a task's end is the time its record says it ended): a sample agrees when it shows
 * what the log says was true at some moment of the 2 s before it. Every change must show in
 * every view within 2 s. The figures are printed.
 */
import { existsSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeshClient as GrpcClient } from "../cli/client.js";
import { parseDaemonTarget } from "../cli/target.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import {
  answer,
  bash,
  CLAUDE_BIN,
  type MockAnthropic,
  type MockReply,
  startMockAnthropic,
  writeFile as writeFileReply,
} from "./mock-anthropic/index.js";
import { subscriptionRejected } from "./mock-anthropic/limits.js";
import { MESH_BIN, type MeshClient, openClient } from "./support/mesh.js";
import { type Box, mesh, startBox, statusIn, submit, Tmux } from "./support/views.js";

const CHROMIUM = "/usr/bin/chromium";
const WINDOW_MS = 2000;
// The lease is long enough for a Claude session's start on a busy machine; a dead worker is shown lost
// by its presence, which goes much sooner.
const TIMING = { lease: "4s", presenceInterval: "300ms" };

let nats: NatsServer;
let work: string;
let tmux: Tmux;
let client: MeshClient;
let browser: Browser;
let mock: MockAnthropic;
let tokenFile: string;
let repo: string;
const boxes: Box[] = [];
/** Each Claude agent's worktree, as the mock learns it from the agent's requests. */
const workdirs = new Map<string, string>();
const FAKE_OAUTH_TOKEN = "sk-ant-oat01-FAKE-mesh-accuracy-token-0123456789";
/** The limited account's window resets long after the run: parked tasks stay parked. */
const RESET_AT = Date.now() + 3_600_000;

/** Command agents: finish, crash, hang. Claude agents: hang in a tool, denied a write, limited, crash. */
type Kind = "finish" | "crash" | "hang" | "c-tool" | "c-denied" | "c-limit" | "c-crash";
const isClaude = (k: Kind) => k.startsWith("c-");

/** The mock's answer for one agent, by the case its prompt names. */
function scripted(prompt: string, turn: number): MockReply {
  const m = /case:(\S+) gate:\S+gate-(\S+) started:/.exec(prompt);
  if (!m) return answer("done");
  const [, kind, id] = m;
  switch (kind) {
    case "c-tool":
      return turn === 0
        ? // Files of its own: a path another task of the repo wrote is leased to that task.
          bash(`touch started-${id}.txt; while [ ! -e gate-${id}.txt ]; do sleep 0.1; done; echo opened`)
        : answer("The gate opened.");
    case "c-denied":
      return turn === 0 ? writeFileReply("denied.txt", "no\n") : answer("I was not allowed to write.");
    case "c-limit":
      return subscriptionRejected({ resetAt: RESET_AT });
    case "c-crash":
      return { kind: "error", status: 400, errorType: "invalid_request_error", message: "scripted refusal" };
    default:
      return answer("done");
  }
}
interface Planned {
  id: string;
  box: "acc-a" | "acc-b";
  kind: Kind;
  gate: string;
  started: string;
}

/** What the test knows was true, per task: from `at` on, any of `ok`. */
type Truth = Map<string, Array<{ at: number; ok: Set<string> }>>;

function truthAt(truth: Truth, id: string, from: number, to: number): Set<string> {
  const out = new Set<string>();
  const line = truth.get(id) ?? [];
  for (const [i, e] of line.entries()) {
    const end = line[i + 1]?.at ?? Number.POSITIVE_INFINITY;
    if (e.at <= to && end >= from) for (const k of e.ok) out.add(k);
  }
  return out;
}

interface Sample {
  view: "api" | "top" | "web";
  at: number;
  id: string;
  /** The status kind shown; "-" when the task is not listed. */
  kind: string;
}

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error("run `npm run build` first");
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  nats = await NatsServer.start();
  work = await makeTempDir("accuracy-");
  tmux = await Tmux.start();
  client = await openClient(nats.url);
  mock = await startMockAnthropic({
    script: ({ firstUserText, turn, workdir }) => {
      const id = /case:\S+ gate:\S+gate-(\S+) /.exec(firstUserText)?.[1];
      if (id && workdir) workdirs.set(id, workdir);
      return scripted(firstUserText, turn);
    },
  });
  tokenFile = join(work, "oauth-token");
  writeFileSync(tokenFile, `${FAKE_OAUTH_TOKEN}\n`, { mode: 0o600 });
  repo = await makeTempDir("accuracy-origin-");
  const git = (...args: string[]) =>
    execa("git", ["-c", "user.name=T", "-c", "user.email=t@example.com", ...args], { cwd: repo });
  await git("init", "--quiet", "-b", "main");
  await writeFile(join(repo, "README.md"), "a repo for agents\n");
  await git("add", "README.md");
  await git("commit", "--quiet", "-m", "first");
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await tmux?.kill();
  await client?.close();
  await Promise.allSettled(boxes.map((b) => b.proc.stop(2000)));
  await mock?.close();
  await nats?.cleanup();
  await removeTempDirs();
});

describe("status accuracy", () => {
  it("every view agrees with the ground truth at least 99% of the time and is never more than 2 s stale", async () => {
    const claude = (name: string) => ({
      command: [CLAUDE_BIN],
      env: { ANTHROPIC_BASE_URL: mock.url },
      apiKeyFile: tokenFile,
      credentialEnv: "CLAUDE_CODE_OAUTH_TOKEN",
      account: `team-${name}`,
      allowedTools: ["Bash"],
    });
    const common = { ...TIMING, slots: 10, runners: ["command", "claude"] };
    // At info: a failed run's diagnostics quote what the daemons logged of the task (parking...).
    const a = await startBox(
      nats,
      work,
      "acc-a",
      { ...common, claude: claude("acc-a"), http: { enabled: true, port: 0 } },
      "info",
    );
    const b = await startBox(nats, work, "acc-b", { ...common, claude: claude("acc-b") }, "info");
    boxes.push(a, b);
    // The API view: the daemon's gRPC MeshService (what `mesh tasks --json` prints).
    const grpc = new GrpcClient({ target: parseDaemonTarget(a.socket), timeoutMs: 5000 });
    const workers = JSON.parse((await mesh(a.socket, ["workers", "--json"])).stdout).workers as Array<{
      name: string;
      httpUrl: string | null;
    }>;
    const url = workers.find((w) => w.name === "acc-a")?.httpUrl;
    if (!url) throw new Error("acc-a has no HTTP side");

    // 20 tasks, per daemon: command agents 2 finish, 1 crash, 2 hang; Claude agents 2 hang in a
    // tool, 1 denied, 1 limited, 1 crash.
    const plan: Planned[] = [];
    const kinds: Kind[] = [
      "finish",
      "finish",
      "crash",
      "hang",
      "hang",
      "c-tool",
      "c-tool",
      "c-denied",
      "c-limit",
      "c-crash",
    ];
    for (const box of ["acc-a", "acc-b"] as const)
      for (const [i, kind] of kinds.entries()) {
        const id = `${box}-${kind}-${i}`;
        plan.push({ id, box, kind, gate: join(work, `gate-${id}`), started: join(work, `started-${id}`) });
      }
    const truth: Truth = new Map();
    const log = (id: string, ok: string[], at = Date.now()) => {
      const line = truth.get(id) ?? [];
      line.push({ at, ok: new Set(ok) });
      line.sort((x, y) => x.at - y.at);
      truth.set(id, line);
    };
    const ofKind = (...k: Kind[]) => plan.filter((p) => k.includes(p.kind));

    // The views, sampling from before the first submit to the end.
    await tmux.run([
      "new-session",
      "-d",
      "-s",
      "acc",
      "-x",
      "160",
      "-y",
      "60",
      "-e",
      `MESH_DAEMON=${a.socket}`,
      process.execPath,
      MESH_BIN,
      "top",
      "--interval",
      "250",
    ]);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    await page.goto(`${url}/ui`);
    await waitFor(async () => (await page.locator("#conn").textContent()) === "live", { name: "page live" });
    await waitFor(async () => (await tmux.capture("acc")).includes("WORKERS"), {
      name: "top drawn",
      timeoutMs: 20_000,
    });

    const samples: Sample[] = [];
    let sampling = true;
    const ids = plan.map((p) => p.id);
    const loop = async (view: Sample["view"], read: () => Promise<Map<string, string | undefined>>) => {
      while (sampling) {
        const got = await read().catch(() => undefined);
        const at = Date.now();
        if (got)
          for (const id of ids) if (truth.has(id)) samples.push({ view, at, id, kind: got.get(id) ?? "-" });
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const samplers = Promise.all([
      loop("api", async () => {
        const list = await grpc.listTasks({ states: [], pool: "", workerId: "", limit: 0, plan: "" });
        return new Map(list.tasks.map((t) => [t.id, t.status?.kind]));
      }),
      loop("top", async () => {
        const cap = await tmux.capture("acc");
        return new Map(ids.map((id) => [id, statusIn(cap, id)]));
      }),
      loop("web", async () => {
        const rows = await page.$$eval("#tasks tr[data-id]", (trs) =>
          trs.map((tr) => [tr.getAttribute("data-id") ?? "", tr.getAttribute("data-status") ?? ""] as const),
        );
        return new Map(rows);
      }),
    ]);

    const specOf = (p: Planned) =>
      isClaude(p.kind)
        ? {
            id: p.id,
            runner: "claude",
            prompt: `case:${p.kind} gate:${p.gate} started:${p.started}`,
            repo,
            labels: { box: p.box },
            maxAttempts: 1,
            ...(p.kind === "c-denied" ? { agent: { permissionMode: "default" } } : {}),
          }
        : {
            id: p.id,
            runner: "command",
            prompt: p.kind,
            labels: { box: p.box },
            maxAttempts: 1,
            command: [
              process.execPath,
              "-e",
              `const fs=require("fs");fs.writeFileSync(${JSON.stringify(p.started)},"1");setInterval(()=>{if(fs.existsSync(${JSON.stringify(p.gate)}))process.exit(${p.kind === "crash" ? 3 : 0})},50)`,
            ],
          };
    /** Logs a submit: not listed before; listed or not while under way; then queued or working. */
    const submitLogged = async (ps: Planned[], after: string[]) => {
      for (const p of ps) log(p.id, ["-"]);
      for (const p of ps) log(p.id, ["-", "queued", "working", ...after]);
      await submit(a.socket, work, ps.map(specOf));
      for (const p of ps) log(p.id, ["queued", "working", ...after]);
    };
    /** The end of a task as its record says (the daemon's own clock), once it ended. */
    const endOf = async (p: Planned, shown: string) => {
      const v = await waitFor(
        async () => {
          const t = await client.api.getTask(p.id);
          return t.record.finishedAt ? t.record : undefined;
        },
        { name: `${p.id} ended`, timeoutMs: 60_000 },
      );
      log(p.id, [shown], Date.parse(v.finishedAt!));
      return v;
    };

    // Everything but the limited agents (they would pause their account for new sessions).
    const first = plan.filter((p) => p.kind !== "c-limit");
    await submitLogged(
      first.filter((p) => !isClaude(p.kind) || p.kind === "c-tool"),
      [],
    );
    // A denied agent is working, then (once its session reports the denial) attention, then succeeded.
    await submitLogged(ofKind("c-denied"), ["attention", "succeeded"]);
    await submitLogged(ofKind("c-crash"), ["failed"]);
    // A command agent writes its own file; a Claude agent's Bash call writes one in its worktree.
    const startedFile = (p: Planned) =>
      p.kind === "c-tool" ? join(workdirs.get(p.id) ?? "/nonexistent", `started-${p.id}.txt`) : p.started;
    const seen = new Set<string>();
    const startedOnes = first.filter((p) => !isClaude(p.kind) || p.kind === "c-tool");
    await waitFor(
      async () => {
        for (const p of startedOnes)
          if (!seen.has(p.id) && existsSync(startedFile(p))) {
            seen.add(p.id);
            // A command agent's process is running; a Claude agent's Bash call is.
            log(p.id, [p.kind === "c-tool" ? "tool" : "working"]);
          }
        if (seen.size === startedOnes.length) return true;
        const late = startedOnes.filter((p) => !seen.has(p.id));
        const why = await Promise.all(
          late.map(async (p) => {
            const r = (await client.api.getTask(p.id)).record;
            return `${p.id} ${r.state} in ${workdirs.get(p.id)} (${r.attempts.map((x) => `${x.outcome ?? "now"} ${x.reason ?? ""}`).join("; ")})`;
          }),
        );
        throw new Error(`not started: ${why.join(", ")}`);
      },
      {
        name: "all started",
        timeoutMs: 60_000,
        intervalMs: 20,
      },
    );
    for (const p of ofKind("c-denied")) await endOf(p, "succeeded");
    for (const p of ofKind("c-crash")) await endOf(p, "failed");

    // The limited agents: the mock refuses their first request; parked (attention) from the
    // moment their record says they parked, until long after the run.
    const limited = ofKind("c-limit");
    await submitLogged(limited, ["attention"]);
    for (const p of limited) {
      const r = await waitFor(
        async () => {
          const t = await client.api.getTask(p.id);
          if (t.record.parked && t.record.state === "queued") return t.record;
          // Says where it is if it never parks: its state, attempts, and what the mock was asked.
          const asked = mock.requests.filter((q) => q.conversation?.includes(`/${p.id}/`)).length;
          const tries = t.record.attempts.map((x) => `${x.outcome ?? "now"} ${x.reason ?? ""}`).join("; ");
          const logged = [a, b].flatMap((x) =>
            x.proc
              .stderr()
              .split("\n")
              .filter((l) => l.includes(p.id))
              .slice(-5)
              .map((l) => `${x.name}: ${l}`),
          );
          throw new Error(
            `${p.id} is ${t.record.state} (${tries}); the mock had ${asked} requests from it; the daemons logged of it: ${logged.join(" | ") || "nothing"}`,
          );
        },
        { name: `${p.id} parked`, timeoutMs: 120_000 },
      );
      log(p.id, ["attention"], Date.parse(r.updatedAt));
    }

    // Let every view settle for a while, then the endings.
    await new Promise((r) => setTimeout(r, 2500));
    for (const p of ofKind("finish", "crash")) {
      log(p.id, [p.kind === "crash" ? "failed" : "succeeded"]);
      await writeFile(p.gate, "go");
    }
    for (const p of ofKind("c-tool")) {
      // The tool returns; the agent asks for its next turn and ends.
      log(p.id, ["tool", "working", "succeeded"]);
      await writeFile(join(workdirs.get(p.id)!, `gate-${p.id}.txt`), "go");
    }
    for (const p of ofKind("c-tool")) await endOf(p, "succeeded");
    await new Promise((r) => setTimeout(r, 3000));
    // One daemon dies with its hung tasks on it: lost (or, once the sweeper hands them back to a
    // queue no live worker serves, needs attention). Its parked agent stays parked.
    const killedAt = Date.now();
    b.proc.kill("SIGKILL");
    for (const p of plan.filter((x) => x.kind === "hang" && x.box === "acc-b"))
      log(p.id, ["lost", "attention"], killedAt);
    await new Promise((r) => setTimeout(r, 3500));
    // The other daemon's hung tasks are cancelled.
    for (const p of plan.filter((x) => x.kind === "hang" && x.box === "acc-a")) {
      log(p.id, ["cancelled"]);
      await client.api.cancel(p.id);
    }
    await new Promise((r) => setTimeout(r, 3000));
    sampling = false;
    await samplers;
    grpc.close();
    // The mock's log: from its answer to an agent's first turn (the Bash call; the Write call
    // that is then denied), "tool" may show.
    for (const p of ofKind("c-denied")) {
      const r = mock.requests.find(
        (q) => q.kind === "messages" && q.turn === 0 && q.conversation?.includes(`/${p.id}/`),
      );
      const end = truth.get(p.id)?.at(-1)?.at ?? Number.POSITIVE_INFINITY;
      if (r && r.at < end) log(p.id, ["queued", "working", "tool", "attention", "succeeded"], r.at);
    }
    for (const p of ofKind("c-tool")) {
      const r = mock.requests.find(
        (q) => q.kind === "messages" && q.turn === 0 && q.conversation?.includes(`/${p.id}/`),
      );
      if (r) log(p.id, ["queued", "working", "tool"], r.at);
    }
    // The agents' own cases happened as scripted (the mock's request log and the records).
    expect(mock.requests.filter((r) => r.kind === "messages").length).toBeGreaterThanOrEqual(10);

    // Agreement and staleness, per view.
    const report: string[] = [];
    for (const view of ["api", "top", "web"] as const) {
      const mine = samples.filter((s) => s.view === view);
      let agree = 0;
      const wrong: string[] = [];
      for (const s of mine) {
        const ok = truthAt(truth, s.id, s.at - WINDOW_MS, s.at);
        if (ok.has(s.kind)) agree++;
        else if (wrong.length < 5)
          wrong.push(`${s.id}@${s.at - killedAt}ms: ${s.kind} not in ${[...ok].join("|")}`);
      }
      // Staleness: from each logged change to the first sample of this view that shows it.
      let worst = 0;
      let worstWhat = "";
      for (const [id, line] of truth) {
        for (const change of line.slice(1)) {
          const shown = mine.find((s) => s.id === id && s.at >= change.at && change.ok.has(s.kind));
          const lag = (shown?.at ?? Number.POSITIVE_INFINITY) - change.at;
          if (lag > worst) {
            worst = lag;
            worstWhat = `${id} -> ${[...change.ok].join("|")}`;
          }
        }
      }
      const pct = (100 * agree) / Math.max(1, mine.length);
      report.push(
        `${view}: ${agree}/${mine.length} samples agree (${pct.toFixed(2)}%), worst staleness ${worst} ms (${worstWhat})${wrong.length ? `; e.g. ${wrong.join("; ")}` : ""}`,
      );
      expect.soft(mine.length, `${view} sampled`).toBeGreaterThan(200);
      expect.soft(pct, `${view} agreement`).toBeGreaterThanOrEqual(99);
      expect.soft(worst, `${view} staleness (ms)`).toBeLessThanOrEqual(WINDOW_MS);
    }
    const deniedSeen = samples.filter((x) => x.kind === "attention" && x.id.includes("c-denied")).length;
    console.log(
      `status accuracy (20 agents, 10 of them Claude Code, 2 daemons, one SIGKILLed):\n  ${report.join("\n  ")}\n  denied agents sampled as attention ${deniedSeen} times (the denial shows from the session's result until the task ends)`,
    );
    await page.close();
  }, 240_000);
});
