/**
 * Status accuracy, measured: 20 command agents on two `meshd` children (half pinned to each),
 * some finishing, some crashing, some hanging; the second daemon SIGKILLed with its hung tasks
 * on it; the first daemon's hung tasks cancelled. Three views are sampled all along: the API
 * (MeshService, as the gRPC and HTTP servers answer), `mesh top` in real tmux (capture-pane), and
 * the web dashboard in headless Chromium. Each sample is compared with the test's own log of what
 * it did and saw (a task's process announces its start in a file; the test opens gates, kills,
 * cancels): a sample agrees when it shows what the log says was true at some moment of the 2 s
 * before it. Every change must show in every view within 2 s. The figures are printed.
 *
 * Not covered here yet (they come with other parts of issues 14-16): a denied tool (the hook
 * helper's PreToolUse denial, folded by foldActivity as "attention") and parked on quota
 * (record.parked, issue 15). The model's handling of both is unit-tested in status-model.test.ts.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN, openClient, type MeshClient } from "./support/mesh.js";
import { type Box, mesh, startBox, statusIn, submit, Tmux } from "./support/views.js";

const CHROMIUM = "/usr/bin/chromium";
const WINDOW_MS = 2000;
const TIMING = { lease: "1s", presenceInterval: "300ms" };

let nats: NatsServer;
let work: string;
let tmux: Tmux;
let client: MeshClient;
let browser: Browser;
const boxes: Box[] = [];

type Kind = "finish" | "crash" | "hang";
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
  await nats?.cleanup();
  await removeTempDirs();
});

describe("status accuracy", () => {
  it("every view agrees with the ground truth at least 99% of the time and is never more than 2 s stale", async () => {
    const a = await startBox(nats, work, "acc-a", { ...TIMING, slots: 10, http: { enabled: true, port: 0 } });
    const b = await startBox(nats, work, "acc-b", { ...TIMING, slots: 10 });
    boxes.push(a, b);
    const workers = JSON.parse((await mesh(a.socket, ["workers", "--json"])).stdout).workers as Array<{
      name: string;
      httpUrl: string | null;
    }>;
    const url = workers.find((w) => w.name === "acc-a")?.httpUrl;
    if (!url) throw new Error("acc-a has no HTTP side");

    // 20 tasks: per daemon 4 finish, 3 crash, 3 hang.
    const plan: Planned[] = [];
    const kinds: Kind[] = [
      "finish",
      "finish",
      "finish",
      "finish",
      "crash",
      "crash",
      "crash",
      "hang",
      "hang",
      "hang",
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
      truth.set(id, line);
    };

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
        if (got) for (const id of ids) if (truth.has(id)) samples.push({ view, at, id, kind: got.get(id) ?? "-" });
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const samplers = Promise.all([
      loop("api", async () => {
        const list = await client.api.listTasks();
        return new Map(list.tasks.map((t) => [t.record.id, t.status?.kind]));
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

    // Submit: queued or already working until the task's own process says it started.
    const specs = plan.map((p) => ({
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
    }));
    // Not listed before the submit; while it is under way, listed or not yet; queued (or already
    // working) once it is answered.
    for (const p of plan) log(p.id, ["-"]);
    for (const p of plan) log(p.id, ["-", "queued", "working"]);
    await submit(a.socket, work, specs);
    for (const p of plan) log(p.id, ["queued", "working"]);
    const seen = new Set<string>();
    await waitFor(
      () => {
        for (const p of plan)
          if (!seen.has(p.id) && existsSync(p.started)) {
            seen.add(p.id);
            log(p.id, ["working"]);
          }
        return seen.size === plan.length;
      },
      { name: "all 20 started", timeoutMs: 30_000, intervalMs: 20 },
    );
    // Let every view settle on "working" for a while, then the endings.
    await new Promise((r) => setTimeout(r, 2500));
    for (const p of plan.filter((x) => x.kind !== "hang")) {
      log(p.id, [p.kind === "crash" ? "failed" : "succeeded"]);
      await writeFile(p.gate, "go");
    }
    await new Promise((r) => setTimeout(r, 3000));
    // One daemon dies with its hung tasks on it: lost (or, once the sweeper hands them back to a
    // queue no live worker serves, needs attention).
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
    console.log(`status accuracy (20 tasks, 2 daemons, one SIGKILLed):\n  ${report.join("\n  ")}`);
    await page.close();
  }, 150_000);
});
