// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output is asserted field by field
/**
 * Code goes out and results come home across real hosts (issue 13 §4): a hub host, two worker
 * hosts and a laptop host, each a network namespace with its own host name. The laptop accepts
 * no inbound connection (nftables drops it) and its repository lives on a tmpfs that only the
 * laptop's processes see (a mount namespace of their own): the workers cannot read it, only the
 * bundles the laptop ships over the bus. Tasks submitted there with `repo: .` run on a worker
 * host and `mesh fetch` brings their branches home, also after the laptop was offline while they
 * ran, and after a worker was cut off mid-task (its late result is fenced, never fetched).
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheDirFor, parseRepo } from "../daemon/workspace/index.js";
import { makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { checkChaos } from "./support/chaos.js";
import {
  type Host,
  type Hosts,
  hostsUnavailable,
  makeHosts,
  nftUnavailable,
  privateNsUnavailable,
} from "./support/hosts.js";
import {
  type Hub,
  inviteAndJoin,
  type Machine,
  mesh,
  meshUp,
  rawRecords,
  startHub,
} from "./support/hub-hosts.js";
import { MESH_BIN } from "./support/mesh.js";

const unavailable = hostsUnavailable() ?? nftUnavailable() ?? privateNsUnavailable();
if (unavailable) console.warn(`hosts-transfer: skipped: ${unavailable}`);

const LONG = 120_000;
const ID = ["-c", "user.name=Laptop User", "-c", "user.email=laptop@example.com"];

/** A task's JSON spec (JSON is YAML) for the repository of the current folder. */
const spec = (id: string, js: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id,
    prompt: "p",
    repo: ".",
    runner: "command",
    command: [process.execPath, "-e", js],
    maxAttempts: 1,
    ...extra,
  });

/** Waits for the file TASK_GATE, then writes result.txt (this host's name) into the worktree. */
const GATED = `
const fs = require("fs"), os = require("os");
console.log("started on " + os.hostname());
const t = setInterval(() => {
  if (!fs.existsSync(process.env.TASK_GATE)) return;
  clearInterval(t);
  fs.writeFileSync("result.txt", os.hostname() + "\\n");
  console.log("done on " + os.hostname());
}, 20);
`;

/** The chaos log's lines (start, a tick every 20 ms, end), ending once TASK_GO exists; the
 * worktree gets result.txt with the worker's id. */
const CHAOS = `
const fs = require("fs");
const log = process.env.TASK_CHAOS_LOG, go = process.env.TASK_GO;
const id = process.env.MESH_TASK_ID, a = process.env.MESH_ATTEMPT, w = process.env.MESH_WORKER_ID;
const line = (k) => fs.appendFileSync(log, k + " " + id + " " + a + " " + w + " " + Date.now() + "\\n");
line("start");
const t = setInterval(() => {
  line("tick");
  if (fs.existsSync(go)) {
    clearInterval(t);
    fs.writeFileSync("result.txt", w + "\\n");
    line("end");
    process.exit(0);
  }
}, 20);
`;

const uid = (p: string) => `${p}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

describe.skipIf(unavailable !== undefined)("code and results over the bus between real hosts", () => {
  let net: Hosts;
  let hub: Hub;
  let w1: Machine;
  let w2: Machine;
  let laptop: Machine;
  let repo: string;
  const h = () => net.hosts as Record<"hub" | "w1" | "w2" | "laptop", Host>;
  const workers = () => [w1, w2];

  /** A command on the laptop, in its repository, that must succeed. */
  async function onLaptop(argv: string[], input?: string): Promise<string> {
    const r = await h().laptop.run(argv, { cwd: repo, ...(input === undefined ? {} : { input }) });
    if (r.code !== 0) throw new Error(`${argv.join(" ")} on the laptop: exit ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  }
  const git = (...args: string[]) => onLaptop(["git", ...ID, ...args]);
  /** `mesh` in the laptop's repository (`repo: .` and `mesh fetch` name it). */
  const laptopMesh = async (args: string[], input?: string) => {
    const r = await h().laptop.run([process.execPath, MESH_BIN, ...args], {
      cwd: repo,
      ...(input === undefined ? {} : { input }),
    });
    return { ...r, json: () => JSON.parse(r.stdout) as any };
  };

  const task = async (host: Host, id: string): Promise<any> => {
    const r = await mesh(host, ["task", id, "--json"]);
    if (r.code !== 0) throw new Error(`mesh task ${id} on ${host.name}: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { task: any }).task;
  };
  const succeeded = (host: Host, id: string) =>
    waitFor(
      async () => {
        const t = await task(host, id);
        if (["failed", "dead", "cancelled"].includes(t.state))
          throw new Error(`task ${id} ended ${t.state}: ${JSON.stringify(t.attempts)}`);
        return t.state === "succeeded" ? t : undefined;
      },
      { name: `task ${id} succeeded (seen on ${host.name})`, timeoutMs: 60_000, intervalMs: 200 },
    );
  /** The task branch in a worker's repo cache, read on that worker's host. */
  async function cacheHead(m: Machine, repoId: string, id: string): Promise<string> {
    const cache = cacheDirFor(join(m.host.stateDir, "repos"), parseRepo(`mesh://${repoId}`));
    const r = await m.host.run(["git", "-C", cache, "rev-parse", "--verify", `refs/heads/mesh/${id}`]);
    if (r.code !== 0) throw new Error(`mesh/${id} in ${m.host.name}'s cache: ${r.stderr}`);
    return r.stdout.trim();
  }
  const machineOf = (workerId: string) => workers().find((m) => m.workerId === workerId);

  beforeAll(async () => {
    net = await makeHosts(["hub", "w1", "w2", "laptop"], { hostnames: true, privateDirs: ["laptop"] });
    hub = await startHub(h().hub);
    for (const m of [h().w1, h().w2, h().laptop]) await inviteAndJoin(hub, m);
    h().laptop.dropInbound();
    repo = join(h().laptop.privateDir!, "repo");
    await h().laptop.run(["mkdir", repo]);
    await git("init", "--quiet", "-b", "main");
    await onLaptop(["tee", "README.md"], "hello from the laptop\n");
    await git("add", ".");
    await git("commit", "--quiet", "-m", "first");
    await onLaptop(["tee", "lib.txt"], "v1\n");
    await git("add", ".");
    await git("commit", "--quiet", "-m", "second");
    // The laptop serves a pool no task uses: it submits, ships and fetches, and runs nothing.
    [w1, w2, laptop] = await Promise.all([
      meshUp(h().w1),
      meshUp(h().w2),
      meshUp(h().laptop, { extra: ["--pools", "laptop-only"] }),
    ]);
  }, LONG);

  afterAll(async () => {
    for (const host of Object.values(net?.hosts ?? {})) {
      try {
        host.heal();
      } catch {
        // the namespace is gone
      }
    }
    await Promise.allSettled([w1, w2, laptop].filter(Boolean).map((m) => m.up.stop()));
    await hub?.server.stop();
    net?.remove();
    await removeTempDirs();
  }, LONG);

  it(
    "a repo that exists only on the laptop runs on a worker host, and mesh fetch gets the worker's commit",
    async () => {
      // The repository is the laptop's alone: no worker host (nor this test process) sees it.
      expect(await onLaptop(["git", "rev-parse", "--is-inside-work-tree"])).toBe("true");
      expect(existsSync(join(repo, ".git"))).toBe(false);
      for (const w of [h().w1, h().w2]) {
        expect((await w.run(["test", "-e", repo])).code).not.toBe(0);
        expect((await w.run(["ls", "-A", h().laptop.privateDir!])).stdout).toBe("");
      }
      const id = uid("laptop-repo");
      const head = await git("rev-parse", "HEAD");
      const sub = await laptopMesh(
        ["submit", "-", "--json"],
        spec(id, "const os=require('os');require('fs').writeFileSync('result.txt', os.hostname()+'\\n')"),
      );
      expect(sub.code, sub.stderr).toBe(0);
      const done = await succeeded(h().laptop, id);
      expect(done.record.spec.repo).toMatch(/^mesh:\/\/[0-9a-f]{40}$/);
      expect(done.record.spec.ref).toBe(head);
      const repoId = String(done.record.spec.repo).slice("mesh://".length);

      // It ran on a worker host: the owner and its one attempt name that host and its daemon.
      expect(done.attempts).toHaveLength(1);
      const ran = machineOf(done.attempts[0].workerId)!;
      expect(ran, `ran on ${done.attempts[0].workerId}`).toBeDefined();
      expect(["w1", "w2"]).toContain(done.attempts[0].host);
      expect(done.attempts[0].host).toBe(ran.host.name);
      expect(done).toMatchObject({ workerId: ran.workerId, host: ran.host.name });
      const workerHead = await cacheHead(ran, repoId, id);
      expect(done.result.headCommit).toBe(workerHead);
      expect(done.result.bundle).toMatchObject({ repoId, base: head, head: workerHead });

      const f = await laptopMesh(["fetch", id, "--json"]);
      expect(f.code, f.stderr).toBe(0);
      expect(f.json().results).toEqual([
        expect.objectContaining({ id, outcome: "created", head: workerHead }),
      ]);
      expect(await git("rev-parse", `refs/heads/mesh/${id}`)).toBe(workerHead);
      expect(await git("show", `mesh/${id}:result.txt`)).toBe(ran.host.name);
      expect(await git("rev-parse", "HEAD")).toBe(head);
    },
    LONG,
  );

  /**
   * Two tasks are submitted on the laptop, which then goes offline: its link is cut (asleep), or
   * also its daemon stopped (shut down, and `mesh up` again on its return). The tasks finish on
   * the workers meanwhile; back online, `mesh watch` replays each from its submission and
   * `mesh fetch` gets both results from the store.
   */
  async function offlineRound(shutDown: boolean): Promise<void> {
    const gate = join(await makeTempDir("gate-"), "go");
    const ids = [uid("offline-a"), uid("offline-b")];
    for (const id of ids) {
      const sub = await laptopMesh(["submit", "-", "--json"], spec(id, GATED, { env: { TASK_GATE: gate } }));
      expect(sub.code, sub.stderr).toBe(0);
    }
    if (shutDown) await laptop.up.stop();
    h().laptop.cut();
    const finished: any[] = [];
    try {
      await writeFile(gate, "");
      for (const id of ids) finished.push(await succeeded(h().w1, id));
    } finally {
      h().laptop.heal();
    }
    if (shutDown) laptop = await meshUp(h().laptop, { extra: ["--pools", "laptop-only"] });
    for (const [i, id] of ids.entries()) {
      const t = finished[i];
      const ran = machineOf(t.workerId)!;
      expect(["w1", "w2"]).toContain(t.host);
      const w = await laptopMesh(["watch", id, "--json"]);
      expect(w.code, w.stderr).toBe(0);
      const events = w.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; state?: string; workerId?: string; line?: string });
      expect(events.filter((e) => e.type === "state").map((e) => e.state)).toEqual([
        "queued",
        "claimed",
        "running",
        "succeeded",
      ]);
      expect(events.find((e) => e.state === "succeeded")?.workerId).toBe(ran.workerId);
      const lines = events.filter((e) => e.type === "log").map((e) => e.line);
      expect(lines).toEqual(expect.arrayContaining([`started on ${t.host}`, `done on ${t.host}`]));
      expect(await cacheHead(ran, t.result.bundle.repoId, id)).toBe(t.result.headCommit);
    }
    const f = await laptopMesh(["fetch", ...ids, "--json"]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.json().results).toEqual(
      ids.map((id, i) =>
        expect.objectContaining({ id, outcome: "created", head: finished[i].result.headCommit }),
      ),
    );
    for (const [i, id] of ids.entries()) {
      expect(await git("rev-parse", `refs/heads/mesh/${id}`)).toBe(finished[i].result.headCommit);
      expect(await git("show", `mesh/${id}:result.txt`)).toBe(finished[i].host);
    }
  }

  it(
    "the laptop goes offline (link cut) after submitting; on return mesh watch replays what it missed and mesh fetch gets the results",
    () => offlineRound(false),
    LONG,
  );

  it(
    "the laptop shuts down (daemon stopped, link cut) after submitting; after mesh up again, watch replays and fetch gets the results",
    () => offlineRound(true),
    LONG,
  );

  it(
    "a worker cut off longer than the lease: the task re-runs on the other worker, whose result is the one fetched",
    async () => {
      const dir = await makeTempDir("xfer-partition-");
      const log = join(dir, "side-effects.log");
      const go = join(dir, "go");
      const id = uid("xfer-partition");
      const sub = await laptopMesh(
        ["submit", "-", "--json"],
        spec(id, CHAOS, { maxAttempts: 3, env: { TASK_CHAOS_LOG: log, TASK_GO: go } }),
      );
      expect(sub.code, sub.stderr).toBe(0);
      const owner = await waitFor(
        () => /^start \S+ 1 (\S+) /m.exec(existsSync(log) ? readFileSync(log, "utf8") : "")?.[1],
        { name: "the first run started", timeoutMs: 30_000 },
      );
      const cut = machineOf(owner)!;
      const other = workers().find((m) => m !== cut)!;
      expect(cut).toBeDefined();

      cut.host.cut();
      let done: any;
      try {
        // The run ends while its host is cut off: its result cannot be recorded.
        await writeFile(go, "");
        await waitFor(() => readFileSync(log, "utf8").includes(`end ${id} 1 ${cut.workerId} `), {
          name: "the cut worker's run ended (a late result)",
        });
        // After the lease the other worker takes the task over and runs it to the end.
        done = await succeeded(h().laptop, id);
      } finally {
        cut.host.heal();
      }
      expect(done.attempts.map((a: any) => [a.attempt, a.host, a.outcome])).toEqual([
        [1, cut.host.name, "lost"],
        [2, other.host.name, "succeeded"],
      ]);
      // Back on the network, the cut worker learns it lost the task and writes nothing.
      const meshdLog = join(cut.host.stateDir, "meshd.log");
      await waitFor(
        () =>
          readFileSync(meshdLog, "utf8")
            .split("\n")
            .some((l) => l.includes(`"taskId":"${id}"`) && /fenced out/.test(l)),
        { name: "the cut worker was fenced out", timeoutMs: 60_000, intervalMs: 200 },
      );
      const records = await rawRecords(other.host, [id]);
      const report = await checkChaos(log, [id], records, () => false, true);
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({
        tasks: 1,
        runs: 2,
        completedUnrecorded: 1,
        repeatedTasks: 1,
        takeovers: 1,
      });

      // The task's result is the other worker's, and stays so after the heal.
      const repoId = String(done.record.spec.repo).slice("mesh://".length);
      const otherHead = await cacheHead(other, repoId, id);
      const after = await task(h().laptop, id);
      expect(after.revision).toBe(done.revision);
      expect(after.result.headCommit).toBe(otherHead);
      expect(after.result.bundle).toMatchObject({ repoId, head: otherHead });
      const f = await laptopMesh(["fetch", id, "--json"]);
      expect(f.code, f.stderr).toBe(0);
      expect(f.json().results).toEqual([
        expect.objectContaining({ id, outcome: "created", head: otherHead }),
      ]);
      expect(await git("show", `mesh/${id}:result.txt`)).toBe(other.workerId);
      const cutCache = cacheDirFor(join(cut.host.stateDir, "repos"), parseRepo(`mesh://${repoId}`));
      const late = await cut.host.run([
        "git",
        "-C",
        cutCache,
        "rev-parse",
        "--verify",
        `refs/heads/mesh/${id}`,
      ]);
      // The cut worker committed its run in its own cache (a late result): never the task's,
      // never brought home.
      expect(late.code, late.stderr).toBe(0);
      const lateHead = late.stdout.trim();
      expect(lateHead).not.toBe(otherHead);
      const lateFile = await cut.host.run(["git", "-C", cutCache, "show", `${lateHead}:result.txt`]);
      expect(lateFile.stdout.trim()).toBe(cut.workerId);
      expect(
        (await h().laptop.run(["git", "cat-file", "-e", `${lateHead}^{commit}`], { cwd: repo })).code,
      ).not.toBe(0);
    },
    LONG,
  );
});
