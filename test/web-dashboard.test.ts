/**
 * The web dashboard (`/ui` on the daemon's HTTP side) in headless Chromium (Debian's, driven by
 * playwright-core): it loads from the daemon alone, updates live as tasks run on two daemons
 * (server-sent events), draws a plan as a graph, refuses write actions without the write token
 * and performs them with it. Renews docs/dashboard.png (the README's picture) when run with MESH_UPDATE_DOCS=1.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  compileConfig,
  type Daemon,
  type DaemonOptions,
  startDaemon as startFullDaemon,
} from "../daemon/index.js";
import { newTaskRecord, type TaskRecord } from "../daemon/tasks/index.js";
import { makeTempDir, waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { FAST, REPO_ROOT, startDaemon, waitForState } from "./support/mesh.js";
import { nodeTask, uniqueId } from "./support/tasks.js";

const CHROMIUM = "/usr/bin/chromium";
const mesh = useMesh();
const WRITE_TOKEN = "write-token-for-the-test-0123456789";
let a: Daemon;
let b: Daemon;
let browser: Browser;
let page: Page;
let gate: string;
const pool = "web";

const urlOf = (d: Daemon) => {
  const u = d.snapshot().httpUrl;
  if (!u) throw new Error("no httpUrl");
  return u;
};

/** A task that runs until the test creates `file`. */
const untilFile = (file: string, extra: Record<string, unknown> = {}) =>
  nodeTask(
    `const fs=require("fs");const t=setInterval(()=>{if(fs.existsSync(${JSON.stringify(file)})){clearInterval(t);process.exit(0)}},50)`,
    { pool, ...extra },
  );

async function statusOnPage(id: string): Promise<string | null> {
  return page
    .locator(`#tasks tr[data-id="${id}"]`)
    .getAttribute("data-status", { timeout: 500 })
    .catch(() => null);
}

async function waitOnPage(id: string, kind: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => (await statusOnPage(id)) === kind, {
    name: `page shows ${id} ${kind}`,
    timeoutMs,
  });
}

/** A finished plan's records, planted as they would be left (the plan fields come with issue 14). */
async function plantPlan(plan: string): Promise<string[]> {
  const ids = ["design", "api", "ui", "docs"].map((s) => `${plan}-${s}`);
  const needs: Record<string, string[]> = {
    design: [],
    api: ["design"],
    ui: ["design"],
    docs: ["api", "ui"],
  };
  for (const [i, id] of ids.entries()) {
    const step = id.slice(plan.length + 1);
    const spec = {
      ...nodeTask("process.exit(0)", { pool }),
      id,
      title: step,
      plan,
      needs: needs[step]!.map((n) => `${plan}-${n}`),
    };
    const rec: TaskRecord = newTaskRecord(spec, new Date());
    rec.attempt = 1;
    rec.attempts = [
      { attempt: 1, workerId: a.workerId, host: "box", claimedAt: rec.submittedAt, endedAt: rec.submittedAt },
    ];
    rec.state = i === 2 ? "failed" : "succeeded";
    rec.finishedAt = rec.submittedAt;
    rec.result = {
      costUsd: 0.0125 * (i + 1),
      tokens: { input: 1200 * (i + 1), output: 300 * (i + 1), cacheRead: 0, cacheCreation: 0 },
    };
    if (rec.state === "failed") rec.reason = "exit code 1";
    if (!(await mesh.client.store.create(rec))) throw new Error(`${id} exists`);
  }
  return ids;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  const dir = await makeTempDir("web-");
  const tokenFile = join(dir, "write.token");
  await writeFile(tokenFile, `${WRITE_TOKEN}\n`, { mode: 0o600 });
  gate = join(dir, "gate");
  // The daemon with its HTTP side (the plugins), as `meshd` runs it.
  const opts: Partial<DaemonOptions> = {
    ...FAST,
    logLevel: "silent",
    name: "laptop",
    pools: [pool],
    slots: 3,
    http: { enabled: true, port: 0, writeTokenFile: tokenFile },
    nats: { servers: [mesh.nats.url] },
    stateDir: dir,
  };
  a = await startFullDaemon(compileConfig(opts));
  b = await startDaemon(mesh.nats.url, { name: "build-box", pools: [pool], slots: 3 });
  mesh.daemons.push(a, b);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe("web dashboard in headless Chromium", () => {
  it("loads from the daemon alone, lists both workers, and updates live as tasks run", async () => {
    const blocked: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(urlOf(a))) blocked.push(r.url());
    });
    await page.goto(`${urlOf(a)}/ui`);
    await waitFor(async () => (await page.locator("#workers tbody tr").count()) === 2, {
      name: "two workers on the page",
      timeoutMs: 20_000,
    });
    expect(await page.locator("#conn").textContent()).toBe("live");

    const hang = untilFile(gate, { title: "waits for the gate" });
    const quick = nodeTask("process.exit(0)", { pool, title: "quick" });
    const crash = nodeTask("process.exit(3)", { pool, title: "crashes", maxAttempts: 1 });
    await mesh.client.api.submit([hang, quick, crash]);
    await waitOnPage(hang.id, "working");
    await waitOnPage(quick.id, "succeeded");
    await waitOnPage(crash.id, "failed");
    // Live events reached the page too (state changes as they happened).
    await waitFor(async () => (await page.locator("#events li").count()) > 0, { name: "live events listed" });
    await writeFile(gate, "go");
    await waitOnPage(hang.id, "succeeded");
    expect(blocked).toEqual([]); // no CDN, nothing from another origin
  }, 60_000);

  it("refuses a write action without the write token and performs it with the token", async () => {
    const task = untilFile(`${gate}-never`, { title: "to be cancelled" });
    await mesh.client.api.submit([task]);
    await waitOnPage(task.id, "working");

    // Without the token: the page's own button, refused (401), and nothing changed.
    await page.fill("#token", "");
    await page.locator(`#tasks tr[data-id="${task.id}"] button.cancel`).click();
    await waitFor(async () => (await page.locator("#msg").getAttribute("data-status")) === "401", {
      name: "cancel refused",
    });
    expect(await page.locator("#msg").textContent()).toContain("write token");
    expect((await mesh.client.api.getTask(task.id)).record.state).toBe("running");
    // A wrong token, straight over HTTP: refused as well.
    const wrong = await fetch(`${urlOf(a)}/api/tasks/${task.id}/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer not-the-token" },
    });
    expect(wrong.status).toBe(401);
    // The daemon without a write token configured refuses writes whatever is sent.
    expect(b.snapshot().httpUrl).toBeUndefined();

    await page.fill("#token", WRITE_TOKEN);
    await page.locator(`#tasks tr[data-id="${task.id}"] button.cancel`).click();
    await waitFor(async () => (await page.locator("#msg").getAttribute("data-status")) === "200", {
      name: "cancel accepted",
    });
    await waitForState(mesh.client.api, task.id, ["cancelled"]);
    await waitOnPage(task.id, "cancelled");
  }, 60_000);

  it("draws a plan as a graph from its needs, retries a failed task with the token, and keeps a screenshot", async () => {
    const plan = uniqueId("plan").slice(0, 24);
    const ids = await plantPlan(plan);
    await waitFor(async () => (await page.locator(`svg[data-plan="${plan}"] g[data-id]`).count()) === 4, {
      name: "plan graph drawn",
      timeoutMs: 20_000,
    });
    expect(await page.locator(`svg[data-plan="${plan}"] line`).count()).toBe(4);
    await waitOnPage(ids[2]!, "failed");
    // A task that fails on its first run and succeeds on the next: retried from the page.
    const marker = `${gate}-flaky`;
    const flaky = nodeTask(
      `const fs=require("fs");if(fs.existsSync(${JSON.stringify(marker)}))process.exit(0);fs.writeFileSync(${JSON.stringify(marker)},"1");process.exit(1)`,
      { pool, title: "flaky", maxAttempts: 1 },
    );
    await mesh.client.api.submit([flaky]);
    await waitOnPage(flaky.id, "failed");
    await page.locator(`#tasks tr[data-id="${flaky.id}"] button.retry`).click();
    await waitForState(mesh.client.api, flaky.id, ["succeeded"]);
    await waitOnPage(flaky.id, "succeeded");
    // Cost from the records' results, summed.
    expect(await page.locator("#k-cost").textContent()).toMatch(/^\$0\.1[23]$/);

    // Something live for the picture: one working task next to the finished ones.
    const live = untilFile(`${gate}-shot`, { title: "refactor the parser" });
    await mesh.client.api.submit([live]);
    await waitOnPage(live.id, "working");
    // The README's picture is renewed on request (MESH_UPDATE_DOCS=1); otherwise the shot goes to
    // a temp dir, so a test run leaves the tracked file alone. Either way it is a real PNG.
    const shotDir =
      process.env.MESH_UPDATE_DOCS === "1" ? join(REPO_ROOT, "docs") : await makeTempDir("web-shot-");
    await mkdir(shotDir, { recursive: true });
    const shot = await page.screenshot({ path: join(shotDir, "dashboard.png") });
    expect(shot.subarray(1, 4).toString("latin1")).toBe("PNG");
    await writeFile(`${gate}-shot`, "go");
    await waitOnPage(live.id, "succeeded");
  }, 60_000);

  it("behind a read token: the page's data needs it (header or ?token=); a write token equal to it is refused at start", async () => {
    const dir = await makeTempDir("web-read-");
    const readFile = join(dir, "read.token");
    await writeFile(readFile, "read-token-0123456789abcdef\n", { mode: 0o600 });
    const config = (extra: Record<string, unknown>) =>
      compileConfig({
        ...FAST,
        logLevel: "silent",
        name: "reader",
        pools: ["web-read"],
        nats: { servers: [mesh.nats.url] },
        stateDir: dir,
        http: { enabled: true, port: 0, tokenFile: readFile, ...extra },
      } as Partial<DaemonOptions>);
    const same = await startFullDaemon(config({ writeTokenFile: readFile })).catch((e: unknown) => e);
    expect(same).toMatchObject({ code: "INVALID_ARGUMENT", field: "http.writeTokenFile" });

    const d = await startFullDaemon(config({}));
    mesh.daemons.push(d);
    const u = urlOf(d);
    expect((await fetch(`${u}/ui`)).status).toBe(200); // the page itself holds no data
    // DNS rebinding: another site's name pointing at loopback is refused.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${u}/api/overview`, { headers: { host: "evil.example:80" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(rebound).toBe(403);
    expect((await fetch(`${u}/api/overview`)).status).toBe(401);
    const ok = await fetch(`${u}/api/overview`, {
      headers: { authorization: "Bearer read-token-0123456789abcdef" },
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { workers: unknown[] }).workers.length).toBeGreaterThan(0);
    const sse = await fetch(`${u}/api/events?token=read-token-0123456789abcdef`);
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toContain("text/event-stream");
    await sse.body?.cancel();
    // This daemon has no write token: writes are off, whatever is sent.
    const w = await fetch(`${u}/api/tasks/x/cancel`, {
      method: "POST",
      headers: { authorization: "Bearer read-token-0123456789abcdef" },
    });
    expect(w.status).toBe(403);
  }, 60_000);
});
