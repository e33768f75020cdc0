/**
 * `npm run bench -- transfer [--size-mb 50] [--rounds 20]`: code and results over the bus
 * between network-namespace hosts (test/support/hosts.ts: one namespace per host on a bridge),
 * against git's own transport between the same hosts, in one run:
 *
 * - first sync of a generated repository (bench/repo-gen.ts) from the laptop host to the
 *   worker host: the mesh path (the laptop ships with the daemon's shipRepo into the bundle
 *   store of the hub host's NATS, the worker imports with ensureCommit: bench/transfer-agent.ts,
 *   connected as meshd connects after `mesh join`) against `git clone --bare git://laptop/repo`
 *   (`git daemon` on the laptop), alternating, fresh each round; MB/s of the repo's pack;
 * - an incremental hand-off through meshd on both hosts (`mesh up` after `mesh join`, as users
 *   do it): a small commit on the laptop, `mesh submit --wait --fetch` of a `repo: .` command
 *   task that runs on the worker and changes a file, until the result is fetched as
 *   mesh/<id> on the laptop; wall time of that command, p50/p99;
 * - bytes: each hand-off's stored bundles (out and back) against the thin pack `git push`
 *   would send for the same range (`git pack-objects --thin --stdout --revs`), and the bytes
 *   that crossed the worker's veth during each first sync.
 *
 * Needs root and iproute2 (network namespaces); skipped with the reason elsewhere.
 */
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, release } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { makeTempDir, removeTempDirs, waitFor } from "../test/harness/index.js";
import { type Host, type HostProcess, hostsUnavailable, makeHosts } from "../test/support/hosts.js";
import { type Hub, inviteAndJoin, type Machine, mesh, meshUp, startHub } from "../test/support/hub-hosts.js";
import { REPO_ROOT } from "../test/support/mesh.js";
import { generatedPath, generatedRepo } from "./repo-gen.js";
import { percentile, round } from "./stats.js";

export interface TransferOptions {
  sizeMb: number;
  /** Measured hand-off rounds (after one unmeasured warm-up). */
  rounds: number;
  /** First-sync rounds per system. */
  syncRounds: number;
}

const AGENT = fileURLToPath(new URL("./transfer-agent.js", import.meta.url));
const FILES = 3000;
const COMMITS = 300;
const GIT_PORT = 9418;

type Json = Record<string, unknown>;

async function agent(host: Host, op: string, arg: Json): Promise<Json> {
  const r = await host.run([process.execPath, AGENT, op, JSON.stringify(arg)]);
  if (r.code !== 0) throw new Error(`transfer-agent ${op} on ${host.name} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Json;
}

/** Bytes received and sent on the host's link so far. */
async function link(host: Host): Promise<{ rx: number; tx: number }> {
  const r = await host.run(["ip", "-j", "-s", "link", "show", "dev", "eth0"], {
    env: { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` },
  });
  if (r.code !== 0) throw new Error(`ip -s link on ${host.name}: ${r.stderr}`);
  const s = (JSON.parse(r.stdout) as Array<{ stats64: { rx: { bytes: number }; tx: { bytes: number } } }>)[0]!
    .stats64;
  return { rx: s.rx.bytes, tx: s.tx.bytes };
}

async function gitOk(host: Host, argv: string[]): Promise<string> {
  const r = await host.run(["git", ...argv]);
  if (r.code !== 0) throw new Error(`git ${argv.join(" ")} on ${host.name}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Size of the thin pack `git push` would send for `tip` over `base` (in `dir`). */
async function thinPack(dir: string, tip: string, base: string): Promise<number> {
  const r = await execa("git", ["pack-objects", "--thin", "--stdout", "--revs", "-q"], {
    cwd: dir,
    input: `${tip}\n^${base}\n`,
    encoding: "buffer",
  });
  return r.stdout.length;
}

interface SyncRound {
  system: "mesh" | "git";
  ms: number;
  /** Bytes the worker's link received meanwhile (the hub's or the laptop's sends to it). */
  workerRxBytes: number;
  /** Bytes the laptop's link sent meanwhile. */
  laptopTxBytes: number;
  shipMs?: number;
  importMs?: number;
  bundleBytes?: number;
}

async function firstSync(
  h: { laptop: Host; worker: Host },
  repoDir: string,
  head: string,
  rounds: number,
): Promise<SyncRound[]> {
  const out: SyncRound[] = [];
  let repoId = "";
  const mesh1 = async (i: number, keep: boolean): Promise<SyncRound> => {
    const [l0, w0] = [await link(h.laptop), await link(h.worker)];
    const s = await agent(h.laptop, "ship", { path: repoDir });
    repoId = s.repoId as string;
    if (s.commit !== head || !s.uploaded)
      throw new Error(`mesh ship did not upload ${head}: ${JSON.stringify(s)}`);
    const gitDir = join(h.worker.stateDir, `sync-mesh-${i}.git`);
    const imp = await agent(h.worker, "import", { gitDir, repoId, commit: head });
    const [l1, w1] = [await link(h.laptop), await link(h.worker)];
    const got = await gitOk(h.worker, ["--git-dir", gitDir, "rev-parse", `refs/mesh/have/${head}`]);
    if (got !== head) throw new Error(`the worker imported ${got}, not ${head}`);
    await rm(gitDir, { recursive: true, force: true });
    if (!keep) await agent(h.laptop, "forget", { repoId, commit: head });
    return {
      system: "mesh",
      ms: (s.ms as number) + (imp.ms as number),
      shipMs: round(s.ms as number),
      importMs: round(imp.ms as number),
      bundleBytes: s.bytes as number,
      workerRxBytes: w1.rx - w0.rx,
      laptopTxBytes: l1.tx - l0.tx,
    };
  };
  const git1 = async (i: number): Promise<SyncRound> => {
    const dir = join(h.worker.stateDir, `sync-git-${i}.git`);
    const [l0, w0] = [await link(h.laptop), await link(h.worker)];
    const t = performance.now();
    await gitOk(h.worker, ["clone", "--bare", "--quiet", `git://${h.laptop.ip}:${GIT_PORT}/repo`, dir]);
    const ms = performance.now() - t;
    const [l1, w1] = [await link(h.laptop), await link(h.worker)];
    const got = await gitOk(h.worker, ["--git-dir", dir, "rev-parse", "refs/heads/main"]);
    if (got !== head) throw new Error(`git clone got ${got}, not ${head}`);
    await rm(dir, { recursive: true, force: true });
    return { system: "git", ms, workerRxBytes: w1.rx - w0.rx, laptopTxBytes: l1.tx - l0.tx };
  };
  for (let i = 0; i < rounds; i++) {
    process.stderr.write(`transfer: first sync, round ${i + 1}/${rounds}...\n`);
    // Alternating which goes first; the last mesh round's bundle stays (the hand-off builds on it).
    const last = i === rounds - 1;
    if (i % 2 === 0) {
      out.push(await git1(i));
      out.push(await mesh1(i, last));
    } else {
      out.push(await mesh1(i, last));
      out.push(await git1(i));
    }
  }
  return out;
}

interface HandoffRound {
  id: string;
  /** `mesh submit --wait --fetch` wall time, on the laptop. */
  ms: number;
  /** From the record: CLI start (incl. ship) -> submitted -> running -> finished -> CLI exit. */
  shipAndSubmitMs: number;
  submittedToRunningMs: number;
  runningToFinishedMs: number;
  finishedToFetchedMs: number;
  laptopCommit: string;
  previousCommit: string;
  resultBase: string;
  resultHead: string;
  resultBundleBytes: number;
  resultThinPackBytes: number;
  outThinPackBytes: number;
  laptopWireBytes: number;
}

async function handoff(
  laptop: Host,
  laptopDir: string,
  repoDir: string,
  i: number,
  tag: string,
): Promise<HandoffRound> {
  const id = `xfer-${tag}-${i}`;
  const g = (args: string[]) =>
    execa("git", ["-c", "user.name=laptop", "-c", "user.email=laptop@localhost", ...args], { cwd: repoDir });
  const previousCommit = (await g(["rev-parse", "HEAD"])).stdout.trim();
  // A small change of the developer's, shipped with the task (round 0 ships nothing new).
  if (i > 0) {
    const f = join(repoDir, generatedPath(i * 7));
    await writeFile(f, `laptop edit ${i}\n`, { flag: "a" });
    await g(["commit", "-q", "-am", `laptop change ${i}`]);
  }
  const laptopCommit = (await g(["rev-parse", "HEAD"])).stdout.trim();
  const spec = join(laptopDir, "specs", `${id}.json`);
  const script = `require("fs").appendFileSync(${JSON.stringify(generatedPath(i * 7 + 1))}, "worker result ${i}\\n")`;
  await writeFile(
    spec,
    JSON.stringify({
      id,
      runner: "command",
      prompt: `hand-off round ${i}`,
      repo: "../repo",
      labels: { host: "worker" },
      command: [process.execPath, "-e", script],
    }),
  );
  const w0 = await link(laptop);
  const t0 = Date.now();
  const r = await mesh(laptop, [
    "submit",
    spec,
    "--wait",
    "--fetch",
    "--json",
    "--unschedulable-timeout",
    "60s",
  ]);
  const t1 = Date.now();
  const w1 = await link(laptop);
  if (r.code !== 0)
    throw new Error(`mesh submit --wait --fetch (${id}) exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  const sub = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    tasks: Array<{ state: string; fetch: { outcome: string; head: string; branch: string } | null }>;
  };
  const t = sub.tasks[0]!;
  if (t.state !== "succeeded" || t.fetch?.outcome !== "created") {
    throw new Error(`hand-off ${id}: ${JSON.stringify(t)}`);
  }
  const branchHead = (await g(["rev-parse", `refs/heads/mesh/${id}`])).stdout.trim();
  const shown = await mesh(laptop, ["task", id, "--json"]);
  const rec = (
    JSON.parse(shown.stdout) as {
      task: {
        record: {
          submittedAt: string;
          finishedAt: string;
          attempts: Array<{ startedAt: string }>;
          result: { bundle: { base: string; head: string; size: number } };
        };
      };
    }
  ).task.record;
  const b = rec.result.bundle;
  if (branchHead !== b.head || t.fetch.head !== b.head || b.base !== laptopCommit) {
    throw new Error(
      `hand-off ${id}: fetched ${branchHead}, result ${b.base}..${b.head}, shipped ${laptopCommit}`,
    );
  }
  const at = (s: string) => Date.parse(s);
  return {
    id,
    ms: t1 - t0,
    shipAndSubmitMs: at(rec.submittedAt) - t0,
    submittedToRunningMs: at(rec.attempts[0]!.startedAt) - at(rec.submittedAt),
    runningToFinishedMs: at(rec.finishedAt) - at(rec.attempts[0]!.startedAt),
    finishedToFetchedMs: t1 - at(rec.finishedAt),
    laptopCommit,
    previousCommit,
    resultBase: b.base,
    resultHead: b.head,
    resultBundleBytes: b.size,
    resultThinPackBytes: await thinPack(repoDir, b.head, b.base),
    outThinPackBytes: i > 0 ? await thinPack(repoDir, laptopCommit, previousCommit) : 0,
    laptopWireBytes: w1.rx - w0.rx + (w1.tx - w0.tx),
  };
}

async function versions(): Promise<Json> {
  const v = async (cmd: string, args: string[]) =>
    (await execa(cmd, args, { reject: false })).stdout.trim().split("\n")[0] ?? "";
  return {
    node: process.version,
    git: await v("git", ["--version"]),
    natsServer: await v("/usr/sbin/nats-server", ["--version"]),
    kernel: release(),
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    loadAverage1mAtEnd: round(loadavg()[0]!, 2),
  };
}

/**
 * Where the mesh's first sync spends its time on git's side, on this machine without a network:
 * the bundle as shipRepo makes it, `git bundle verify` and the import (`git fetch` from it).
 */
async function localGitPhases(repoDir: string): Promise<Json> {
  const dir = await makeTempDir("bench-phases-");
  const file = join(dir, "all.bundle");
  const bare = join(dir, "bare.git");
  await execa("git", ["init", "--quiet", "--bare", bare]);
  const time = async (f: () => Promise<unknown>) => {
    const t = performance.now();
    await f();
    return round(performance.now() - t, 0);
  };
  const bundleCreateMs = await time(() =>
    execa("git", ["bundle", "create", "--quiet", file, "--stdin"], {
      cwd: repoDir,
      input: "refs/heads/main\n",
    }),
  );
  const bundleVerifyMs = await time(() => execa("git", ["bundle", "verify", "--quiet", file], { cwd: bare }));
  const fetchFromBundleMs = await time(() =>
    execa(
      "git",
      ["fetch", "--quiet", "--no-write-fetch-head", "--no-tags", "--", file, "+refs/heads/main:refs/x"],
      {
        cwd: bare,
      },
    ),
  );
  await rm(dir, { recursive: true, force: true });
  return { bundleCreateMs, bundleVerifyMs, fetchFromBundleMs };
}

const med = (xs: number[]) => percentile(xs, 50);
const mb = (bytes: number) => bytes / 1e6;

export async function transferScenario(o: TransferOptions): Promise<{ rows: object[] } & Json> {
  const unavailable = hostsUnavailable();
  if (unavailable) return { scenario: "transfer", skipped: unavailable, rows: [] };
  const repo = await generatedRepo(join(REPO_ROOT, "bench", ".cache"), {
    sizeMb: o.sizeMb,
    files: FILES,
    commits: COMMITS,
  });
  process.stderr.write(
    `transfer: repository of ${repo.files} files, ${repo.commits} commits, a ${round(mb(repo.packBytes))} MB pack\n`,
  );
  const net = await makeHosts(["hub", "laptop", "worker"]);
  const h = net.hosts as Record<"hub" | "laptop" | "worker", Host>;
  // Ctrl-C or a crash must not leave the namespaces behind.
  const bail = (why: unknown) => {
    process.stderr.write(`transfer: stopped (${String(why)}); removing the hosts\n`);
    net.remove();
    process.exit(1);
  };
  process.once("SIGINT", bail).once("SIGTERM", bail).once("uncaughtException", bail);
  let hub: Hub | undefined;
  let daemon: HostProcess | undefined;
  const machines: Machine[] = [];
  try {
    process.stderr.write("transfer: hub, mesh join and mesh up on the laptop and worker hosts...\n");
    hub = await startHub(h.hub);
    for (const m of [h.laptop, h.worker]) await inviteAndJoin(hub, m);
    machines.push(
      ...(await Promise.all(
        [h.laptop, h.worker].map((m) => meshUp(m, { lease: "15s", extra: ["--log-level", "warn"] })),
      )),
    );
    const laptopDir = await makeTempDir("bench-laptop-");
    const repoDir = join(laptopDir, "repo");
    await cp(repo.dir, repoDir, { recursive: true });
    // A copy's index no longer matches its files' inodes: refresh it, as a working checkout's is.
    await execa("git", ["update-index", "-q", "--refresh"], { cwd: repoDir });
    await mkdir(join(laptopDir, "specs"));
    daemon = h.laptop.spawn([
      "git",
      "daemon",
      "--export-all",
      "--reuseaddr",
      "--verbose",
      `--base-path=${laptopDir}`,
      `--listen=${h.laptop.ip}`,
      `--port=${GIT_PORT}`,
    ]);
    await waitFor(() => daemon!.stderr().includes("Ready to rumble") || daemon!.child.exitCode !== null, {
      name: "git daemon ready",
      timeoutMs: 10_000,
    });
    if (daemon.child.exitCode !== null) throw new Error(`git daemon exited:\n${daemon.stderr()}`);

    const loadAtStart = round(loadavg()[0]!, 2);
    const sync = await firstSync(h, repoDir, repo.head, o.syncRounds);
    const gitPhases = await localGitPhases(repoDir);
    const meshSync = sync.filter((s) => s.system === "mesh");
    const gitSync = sync.filter((s) => s.system === "git");
    const mbps = (rs: SyncRound[]) => mb(repo.packBytes) / (med(rs.map((r) => r.ms)) / 1000);

    const tag = Date.now().toString(36);
    process.stderr.write("transfer: hand-off warm-up (the worker's daemon imports the repository)...\n");
    const warm = await handoff(h.laptop, laptopDir, repoDir, 0, tag);
    const rounds: HandoffRound[] = [];
    for (let i = 1; i <= o.rounds; i++) {
      if (i === 1 || i % 5 === 0) process.stderr.write(`transfer: hand-off round ${i}/${o.rounds}...\n`);
      rounds.push(await handoff(h.laptop, laptopDir, repoDir, i, tag));
    }
    const { sizes } = (await agent(h.laptop, "sizes", {
      repoId: await rootCommit(repoDir),
      commits: rounds.map((r) => r.laptopCommit),
    })) as { sizes: Record<string, number> };
    const out = rounds.map((r) => ({ ...r, outBundleBytes: sizes[r.laptopCommit] ?? 0 }));
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const outRatio = sum(out.map((r) => r.outBundleBytes)) / sum(out.map((r) => r.outThinPackBytes));
    const backRatio = sum(out.map((r) => r.resultBundleBytes)) / sum(out.map((r) => r.resultThinPackBytes));
    const ms = rounds.map((r) => r.ms);
    const syncRatio = mbps(meshSync) / mbps(gitSync);
    const rxRatio = med(meshSync.map((r) => r.workerRxBytes)) / med(gitSync.map((r) => r.workerRxBytes));
    const p50 = med(ms);
    const p99 = percentile(ms, 99);
    const yes = (b: boolean) => (b ? "yes" : "NO");
    const rows = [
      {
        measure: `first sync, MB/s of a ${round(mb(repo.packBytes))} MB pack (median of ${o.syncRounds})`,
        mesh: round(mbps(meshSync)),
        git: round(mbps(gitSync)),
        ratio: round(syncRatio, 2),
        target: ">= 0.5",
        met: yes(syncRatio >= 0.5),
      },
      {
        measure: "first sync, MB into the worker's veth (median)",
        mesh: round(mb(med(meshSync.map((r) => r.workerRxBytes))), 2),
        git: round(mb(med(gitSync.map((r) => r.workerRxBytes))), 2),
        ratio: round(rxRatio, 2),
        target: "",
        met: "",
      },
      {
        measure: `hand-off submit -> fetched, p50 ms (${o.rounds} rounds)`,
        mesh: round(p50, 0),
        git: "",
        ratio: "",
        target: "< 2000",
        met: yes(p50 < 2000),
      },
      {
        measure: "hand-off submit -> fetched, p99 ms",
        mesh: round(p99, 0),
        git: "",
        ratio: "",
        target: "",
        met: "",
      },
      {
        measure: "bytes out (laptop commit): bundle vs thin pack, per round",
        mesh: round(med(out.map((r) => r.outBundleBytes)), 0),
        git: round(med(out.map((r) => r.outThinPackBytes)), 0),
        ratio: round(outRatio, 2),
        target: "<= 1.5",
        met: yes(outRatio <= 1.5),
      },
      {
        measure: "bytes back (task result): bundle vs thin pack, per round",
        mesh: round(med(out.map((r) => r.resultBundleBytes)), 0),
        git: round(med(out.map((r) => r.resultThinPackBytes)), 0),
        ratio: round(backRatio, 2),
        target: "<= 1.5",
        met: yes(backRatio <= 1.5),
      },
    ];
    const phase = (k: keyof HandoffRound) => round(med(rounds.map((r) => r[k] as number)), 0);
    return {
      scenario: "transfer",
      machine: { ...(await versions()), loadAverage1mAtStart: loadAtStart },
      hosts: "network namespaces on a bridge: hub (nats-server via mesh hub start, TLS), laptop, worker",
      repo: { files: repo.files, commits: repo.commits, packBytes: repo.packBytes, head: repo.head },
      rows,
      ratios: {
        firstSyncMeshOverGit: round(syncRatio, 2),
        bytesOutBundleOverThinPack: round(outRatio, 2),
        bytesBackBundleOverThinPack: round(backRatio, 2),
      },
      handoff: {
        rounds: o.rounds,
        p50Ms: round(p50, 0),
        p99Ms: round(p99, 0),
        medianPhasesMs: {
          cliStartShipAndSubmit: phase("shipAndSubmitMs"),
          submittedToRunning: phase("submittedToRunningMs"),
          runningToFinished: phase("runningToFinishedMs"),
          finishedToFetched: phase("finishedToFetchedMs"),
        },
        medianLaptopWireBytes: phase("laptopWireBytes"),
        warmUp: warm,
      },
      targets: {
        firstSyncAtLeastHalfOfGit: syncRatio >= 0.5,
        handoffP50Under2s: p50 < 2000,
        bundleBytesAtMost1_5xThinPack: outRatio <= 1.5 && backRatio <= 1.5,
      },
      firstSyncRounds: sync,
      firstSyncLocalGitPhasesMs: gitPhases,
      handoffRounds: out,
    };
  } finally {
    process.off("SIGINT", bail).off("SIGTERM", bail).off("uncaughtException", bail);
    await daemon?.stop();
    await Promise.allSettled(machines.map((m) => m.up.stop()));
    await hub?.server.stop();
    net.remove();
    await removeTempDirs();
  }
}

async function rootCommit(dir: string): Promise<string> {
  const out = (
    await execa("git", ["rev-list", "--first-parent", "--max-parents=0", "HEAD"], { cwd: dir })
  ).stdout
    .trim()
    .split("\n");
  return out[out.length - 1]!;
}
