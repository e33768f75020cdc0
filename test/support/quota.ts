/**
 * Quota proofs: an INDEPENDENT reading of the side-effect log the chaos task script writes
 * (test/support/chaos.ts: `start`, `tick` every 20 ms, `end`, each with a timestamp), and of
 * the raw `mesh-slots` records. Nothing here uses the daemon's quota code.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { SLOTS_BUCKET } from "../../daemon/nats/names.js";
import { makeTempDir, waitFor } from "../harness/index.js";
import { CLAUDE_BIN } from "../mock-anthropic/index.js";
import { openRun } from "./chaos.js";
import { type MeshdProcess, spawnMeshd } from "./mesh.js";

interface Span {
  task: string;
  from: number;
  to: number;
}

/** Each run's span, from its first line to its last (a killed run ends at its last tick). */
export async function runSpans(logFile: string): Promise<Span[]> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  const spans = new Map<string, Span>();
  for (const line of text.split("\n")) {
    const [kind, task, attempt, worker, ms] = line.split(" ");
    if (!kind || !task || !attempt || !worker || !ms) continue;
    const key = `${task} ${attempt} ${worker}`;
    const t = Number(ms);
    const s = spans.get(key) ?? { task, from: t, to: t };
    s.from = Math.min(s.from, t);
    s.to = Math.max(s.to, t);
    spans.set(key, s);
  }
  return [...spans.values()];
}

/**
 * The most units in use at any moment: each run weighs `units(task)` (1 by default) from its
 * start to its last line; at equal times an end counts before a start.
 */
export function peakUse(spans: readonly Span[], units: (task: string) => number = () => 1): number {
  const ev: Array<[number, number]> = [];
  for (const s of spans) {
    ev.push([s.from, units(s.task)]);
    ev.push([s.to, -units(s.task)]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let peak = 0;
  for (const [, d] of ev) {
    cur += d;
    peak = Math.max(peak, cur);
  }
  return peak;
}

/** The holders in a `mesh-slots` record, read straight from the bucket. */
export async function rawHolders(
  servers: string[],
  key: string,
): Promise<Array<{ taskId: string; workerId: string }>> {
  const nc = await connect({ servers });
  try {
    const kv = await new Kvm(nc).open(SLOTS_BUCKET);
    const e = await kv.get(key);
    if (e?.operation !== "PUT") return [];
    return (
      JSON.parse(new TextDecoder().decode(e.value)) as {
        holders: Array<{ taskId: string; workerId: string }>;
      }
    ).holders;
  } finally {
    await nc.close();
  }
}

/** meshd processes of pool `q` (3 local slots each, 2 s lease) sharing `quota` from one config file. */
export async function startQuotaFleet(
  url: string,
  quota: Record<string, unknown>,
  names = ["qa", "qb", "qc"],
): Promise<Map<string, MeshdProcess>> {
  const dir = await makeTempDir("quota-cfg-");
  const cfg = join(dir, "meshd.yaml");
  await writeFile(cfg, JSON.stringify({ quota }));
  const fleet = new Map<string, MeshdProcess>();
  for (const name of names) {
    const p = await spawnMeshd([
      "-c",
      cfg,
      "--nats",
      url,
      "--name",
      name,
      "--pools",
      "q",
      "--slots",
      "3",
      "--lease",
      "2s",
      "--presence-interval",
      "500ms",
      "--runners",
      "command",
      "--no-http",
      "--log-level",
      "warn",
    ]);
    fleet.set(name, p);
  }
  return fleet;
}

/**
 * meshd processes running the real Claude Code (against the mock API at `apiUrl`) on account
 * `team`, pool `qc`, 2 local slots each, 2 s lease, sharing `quota`. `allowedTools` lets a
 * scripted session run its tools (the Bash tool of a side-effect-logging session).
 */
export async function startClaudeFleet(
  url: string,
  opts: { quota: Record<string, unknown>; apiUrl: string; keyFile: string; allowedTools?: string[] },
  names = ["ca", "cb", "cc"],
): Promise<Map<string, MeshdProcess>> {
  const dir = await makeTempDir("quota-claude-cfg-");
  const cfg = join(dir, "meshd.json");
  await writeFile(
    cfg,
    JSON.stringify({
      pools: ["qc"],
      runners: ["claude"],
      slots: 2,
      lease: "2s",
      presenceInterval: "500ms",
      logLevel: "warn",
      http: { enabled: false },
      quota: opts.quota,
      claude: {
        command: [CLAUDE_BIN],
        env: { ANTHROPIC_BASE_URL: opts.apiUrl },
        apiKeyFile: opts.keyFile,
        account: "team",
        ...(opts.allowedTools ? { allowedTools: opts.allowedTools } : {}),
      },
    }),
  );
  const fleet = new Map<string, MeshdProcess>();
  for (const name of names) fleet.set(name, await spawnMeshd(["-c", cfg, "--nats", url, "--name", name]));
  return fleet;
}

/**
 * SIGKILLs the daemon of the first run the chaos log shows going (it holds a slot then): which
 * daemon wins the first slots is up to the claims. Its fleet name is its worker id's prefix.
 */
export async function killFirstRunning(
  logFile: string,
  fleet: Map<string, MeshdProcess>,
): Promise<{ taskId: string; name: string; onVictim: (workerId: string) => boolean }> {
  const open = await waitFor(() => openRun(logFile), {
    name: "a run going",
    timeoutMs: 60_000,
    intervalMs: 20,
  });
  const name = open.workerId.split("-")[0]!;
  const proc = fleet.get(name);
  if (!proc) throw new Error(`the log's worker ${open.workerId} is none of the fleet's`);
  proc.kill("SIGKILL");
  await proc.exited;
  return { taskId: open.taskId, name, onVictim: (w) => w.startsWith(`${name}-`) };
}
