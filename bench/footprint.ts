/**
 * Scenario `footprint`: what an idle daemon costs the machine it runs on. Several meshd
 * processes per variant start on one nats-server with the defaults a user gets (all runners,
 * the HTTP side on a random port), settle, and are then watched for `seconds`: RSS at the end and
 * CPU% of one core over the window, the median over the daemons. Next to them, a pre-started
 * ("warm") mesh-shim waiting for its job, as a daemon keeps one. Variants, all in the same run
 * and at the same time (so the machine's load is shared alike):
 *
 * - `current`: this tree's build, with the node flags of its bin's shebang (as users run it);
 * - `current-no-flags`: the same build under a plain `node` (what the flags alone change);
 * - `base` (with `--base <ref>`): that commit, exported with `git archive` and built into
 *   bench/.cache/ (once per commit);
 * - `current-try` (with `--flags "<node flags>"`): this build under those node flags instead of
 *   its shebang's, to weigh a candidate flag beside the others in the same run.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { makeTempDir, NatsServer, removeTempDir, waitFor } from "../test/harness/index.js";
import { REPO_ROOT, shebangNodeFlags } from "../test/support/mesh.js";
import { cpuMs, percentile, round, rssMb } from "./stats.js";

export interface FootprintOptions {
  /** Daemons per variant. */
  daemons: number;
  /** Length of the measured idle window. */
  seconds: number;
  /** A commit to compare against (built into bench/.cache/footprint-<sha>/). */
  base?: string;
  /** Node flags to try on this build (variant `current-try`). */
  tryFlags?: string[];
}

interface Variant {
  name: string;
  root: string;
  flags: string[];
}

interface Watched {
  variant: string;
  kind: "meshd" | "shim";
  child: ChildProcess;
  stateDir: string;
}

/** Builds `ref` once into bench/.cache/footprint-<sha>/ and returns its root. */
function buildBase(ref: string): { root: string; commit: string } {
  const commit = execFileSync("git", ["-C", REPO_ROOT, "rev-parse", "--verify", `${ref}^{commit}`], {
    encoding: "utf8",
  }).trim();
  const root = join(REPO_ROOT, "bench", ".cache", `footprint-${commit.slice(0, 12)}`);
  if (!existsSync(join(root, "dist", "daemon", "main.js"))) {
    process.stderr.write(`footprint: building ${commit.slice(0, 12)} into ${root}...\n`);
    if (!existsSync(root)) {
      // A plain export of the commit's files (no worktree registered in the repository).
      mkdirSync(root, { recursive: true });
      execFileSync("sh", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "sh", REPO_ROOT, commit, root]);
      symlinkSync(join(REPO_ROOT, "node_modules"), join(root, "node_modules"));
    }
    // Type errors in test files (a missing dev dependency) must not stop the build of the bins.
    try {
      execFileSync(process.execPath, [join(root, "node_modules", ".bin", "tsc"), "-p", "tsconfig.json"], {
        cwd: root,
        stdio: "ignore",
      });
    } catch {
      if (!existsSync(join(root, "dist", "daemon", "main.js"))) throw new Error(`could not build ${ref}`);
    }
  }
  return { root, commit };
}

function startMeshd(v: Variant, url: string, stateDir: string): ChildProcess {
  return spawn(
    process.execPath,
    [...v.flags, join(v.root, "dist", "daemon", "main.js"), "--nats", url, "--state-dir", stateDir, "--log-level", "warn"],
    { stdio: "ignore", env: { ...process.env, MESH_STATE_DIR: stateDir } },
  );
}

/** A pre-started shim: it loads everything, then waits on stdin for its job's path. */
function startShim(v: Variant): ChildProcess {
  const shim = join(v.root, "dist", "agent-shim", "main.js");
  return spawn(process.execPath, [...v.flags, shim, "-", "--parent-watch", "stdin"], {
    stdio: ["pipe", "ignore", "ignore"],
  });
}

export async function footprintScenario(opts: FootprintOptions) {
  const meshd = join(REPO_ROOT, "dist", "daemon", "main.js");
  const variants: Variant[] = [
    { name: "current", root: REPO_ROOT, flags: shebangNodeFlags(meshd) },
    { name: "current-no-flags", root: REPO_ROOT, flags: [] },
  ];
  if (opts.tryFlags) variants.push({ name: "current-try", root: REPO_ROOT, flags: opts.tryFlags });
  let baseCommit: string | undefined;
  if (opts.base) {
    const b = buildBase(opts.base);
    baseCommit = b.commit;
    variants.push({ name: "base", root: b.root, flags: shebangNodeFlags(join(b.root, "dist", "daemon", "main.js")) });
  }
  const server = await NatsServer.start();
  const watched: Watched[] = [];
  try {
    for (const v of variants) {
      for (let i = 0; i < opts.daemons; i++) {
        const stateDir = await makeTempDir("footprint-");
        watched.push({ variant: v.name, kind: "meshd", child: startMeshd(v, server.url, stateDir), stateDir });
      }
      watched.push({ variant: v.name, kind: "shim", child: startShim(v), stateDir: "" });
    }
    // Up: every daemon's gRPC socket is there (it is bound last, once the daemon serves).
    await waitFor(() => watched.every((w) => w.kind === "shim" || existsSync(join(w.stateDir, "meshd.sock"))), {
      name: "daemons up",
      timeoutMs: 60_000,
    });
    for (const w of watched) {
      if (w.child.exitCode !== null) throw new Error(`${w.variant} ${w.kind} exited with ${w.child.exitCode}`);
    }
    // Settle: start-up work (first presence, directory, JIT) is not idle work.
    await new Promise((r) => setTimeout(r, 5000));
    const cpu0 = watched.map((w) => cpuMs(w.child.pid!));
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, opts.seconds * 1000));
    const elapsed = performance.now() - t0;
    const samples = watched.map((w, i) => ({
      variant: w.variant,
      kind: w.kind,
      rssMb: rssMb(w.child.pid!),
      cpuPct: round(((cpuMs(w.child.pid!) - cpu0[i]!) / elapsed) * 100, 2),
    }));
    const median = (xs: number[]) => round(percentile(xs, 50), 2);
    const rows = variants.map((v) => {
      const d = samples.filter((s) => s.variant === v.name && s.kind === "meshd");
      const shim = samples.find((s) => s.variant === v.name && s.kind === "shim");
      return {
        variant: v.name,
        nodeFlags: v.flags.join(" ") || "-",
        idleRssMbMedian: median(d.map((s) => s.rssMb)),
        idleRssMbMax: Math.max(...d.map((s) => s.rssMb)),
        idleCpuPctMedian: median(d.map((s) => s.cpuPct)),
        idleCpuPctMax: Math.max(...d.map((s) => s.cpuPct)),
        warmShimRssMb: shim?.rssMb ?? Number.NaN,
      };
    });
    const cur = rows[0]!;
    const base = rows.find((r) => r.variant === "base");
    return {
      scenario: "footprint",
      daemons: opts.daemons,
      seconds: opts.seconds,
      ...(baseCommit ? { baseCommit } : {}),
      rows,
      samples,
      targets: {
        idleRssUnder70Mb: cur.idleRssMbMedian < 70,
        idleCpuUnderHalfPercent: cur.idleCpuPctMedian < 0.5,
        ...(base ? { shimUnchangedOrBetter: cur.warmShimRssMb <= base.warmShimRssMb + 1 } : {}),
      },
      machine: { loadAverage: loadavg().map((x) => round(x, 2)) },
    };
  } finally {
    for (const w of watched) w.child.kill("SIGTERM");
    await Promise.all(
      watched.map((w) =>
        w.child.exitCode !== null || w.child.signalCode !== null
          ? undefined
          : new Promise((r) => w.child.once("exit", r)),
      ),
    );
    await server.stop();
    for (const w of watched) if (w.stateDir) await removeTempDir(w.stateDir);
  }
}
