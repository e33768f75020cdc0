/**
 * Plan proofs' support: a fleet of meshd processes on one pool, plan documents of command
 * tasks that log their runs (the chaos script), and an INDEPENDENT order checker that reads
 * only the side-effect log and the raw KV records.
 */
import { readFile } from "node:fs/promises";
import { waitFor } from "../harness/index.js";
import { readRecords } from "./chaos.js";
import { type MeshClient, type MeshdProcess, spawnMeshd } from "./mesh.js";

export const PLAN_POOL = "plans";

export class PlanFleet {
  private gen = 0;
  readonly members: Array<{ name: string; proc: MeshdProcess }> = [];
  readonly killed = new Set<string>();

  constructor(
    private readonly url: string,
    private readonly client: MeshClient,
    private readonly slots = 4,
  ) {}

  async startOne(): Promise<{ name: string; proc: MeshdProcess }> {
    const name = `plan${this.gen++}`;
    const proc = await spawnMeshd([
      "--nats",
      this.url,
      "--pools",
      PLAN_POOL,
      "--slots",
      String(this.slots),
      "--lease",
      "2s",
      "--name",
      name,
      "--runners",
      "command",
      "--no-http",
      "--log-level",
      "warn",
    ]);
    const m = { name, proc };
    this.members.push(m);
    await waitFor(
      () =>
        this.client.api.listWorkers().then(
          (ws) => ws.some((w) => w.workerId.startsWith(`${name}-`)),
          () => false,
        ),
      { name: `daemon ${name} up`, timeoutMs: 60_000, intervalMs: 100 },
    );
    return m;
  }

  /** SIGKILLs the daemon whose worker id is `workerId` (or the first) and starts another. */
  async killAndReplace(workerId?: string): Promise<string> {
    const i = Math.max(
      0,
      this.members.findIndex((m) => workerId?.startsWith(`${m.name}-`)),
    );
    const [victim] = this.members.splice(i, 1);
    if (!victim) throw new Error("no daemon to kill");
    this.killed.add(victim.name);
    victim.proc.kill("SIGKILL");
    await victim.proc.exited;
    await this.startOne();
    return victim.name;
  }

  wasKilled(workerId: string): boolean {
    return this.killed.has(workerId.slice(0, workerId.lastIndexOf("-")));
  }

  async stopAll(): Promise<void> {
    for (const m of this.members) m.proc.kill("SIGTERM");
    await Promise.all(this.members.map((m) => m.proc.exited));
  }

  killAll(): void {
    for (const m of this.members) m.proc.kill("SIGKILL");
  }
}

/** Waits until every task of `ids` is terminal; returns the raw records. */
export async function untilAllTerminal(url: string, ids: string[], timeoutMs = 120_000) {
  let open: string[] = [];
  return waitFor(
    async () => {
      const recs = await readRecords([url], ids).catch(() => undefined);
      if (!recs) return false;
      open = ids.filter(
        (id) => !["succeeded", "failed", "dead", "cancelled"].includes(recs.get(id)?.state ?? ""),
      );
      return open.length === 0 ? recs : false;
    },
    { name: "every task of the plans terminal", timeoutMs, intervalMs: 250 },
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; still open: ${open.slice(0, 8).join(", ")}`);
  });
}

interface LoggedRun {
  task: string;
  attempt: number;
  worker: string;
  start: number;
  last: number;
  ended: boolean;
}

/** The runs in a chaos-script side-effect log (lines `kind task attempt worker ms`). */
export async function loggedRuns(logFile: string): Promise<LoggedRun[]> {
  const runs = new Map<string, LoggedRun>();
  const text = await readFile(logFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [kind, task, attempt, worker, ms] = line.split(" ");
    if (!kind || !task || !attempt || !worker || !ms) continue;
    const key = `${task} ${attempt} ${worker}`;
    let r = runs.get(key);
    if (!r) {
      r = { task, attempt: Number(attempt), worker, start: Number.POSITIVE_INFINITY, last: 0, ended: false };
      runs.set(key, r);
    }
    if (kind === "start") r.start = Math.min(r.start, Number(ms));
    r.last = Math.max(r.last, Number(ms));
    if (kind === "end") r.ended = true;
  }
  return [...runs.values()];
}

/**
 * Order problems: a run of a task that began before one of its needs had completed its
 * (only) successful run; a task of `ids` that never completed a run.
 */
export function orderProblems(
  runs: LoggedRun[],
  needs: Map<string, string[]>,
  records: Map<string, { attempts: Array<{ attempt: number; workerId: string; outcome?: string }> }>,
): string[] {
  const problems: string[] = [];
  const byTask = new Map<string, LoggedRun[]>();
  for (const r of runs) byTask.set(r.task, [...(byTask.get(r.task) ?? []), r]);
  for (const [task, ns] of needs) {
    const mine = byTask.get(task) ?? [];
    if (!mine.some((r) => r.ended)) problems.push(`${task}: no completed run`);
    for (const n of ns) {
      // The need's recorded success: its run of that attempt on that worker.
      const win = records.get(n)?.attempts.find((a) => a.outcome === "succeeded");
      const done = (byTask.get(n) ?? []).filter(
        (r) => r.ended && r.attempt === win?.attempt && r.worker === win.workerId,
      );
      const doneAt = done.length === 1 ? done[0]!.last : Number.POSITIVE_INFINITY;
      for (const r of mine) {
        if (!(r.start > doneAt)) {
          problems.push(
            `${task}: attempt ${r.attempt} started at ${r.start}, before its need ${n} completed (${Number.isFinite(doneAt) ? doneAt : "never"})`,
          );
        }
      }
    }
  }
  return problems;
}
