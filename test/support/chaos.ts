/**
 * Chaos run support: a side-effect-logging task script, a driver that kills and restarts meshd
 * processes, and an INDEPENDENT checker that reads only the side-effect log and the raw KV
 * records (its own JSON parsing, not the daemon's store code).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { TASKS_BUCKET } from "../../daemon/nats/names.js";
import { waitFor } from "../harness/index.js";

/** Each run appends `start`, a `tick` every 20 ms, then `end` lines: task attempt worker ms. */
export const CHAOS_TASK_SCRIPT = `
const fs = require("fs");
const log = process.env.TASK_CHAOS_LOG;
const id = process.env.MESH_TASK_ID, a = process.env.MESH_ATTEMPT, w = process.env.MESH_WORKER_ID;
const line = (k) => fs.appendFileSync(log, k + " " + id + " " + a + " " + w + " " + Date.now() + "\\n");
line("start");
const ms = Number(process.env.TASK_CHAOS_MS || 300);
const t = setInterval(() => line("tick"), 20);
setTimeout(() => { clearInterval(t); line("end"); process.exit(0); }, ms);
`;

export async function writeChaosScript(dir: string): Promise<string> {
  const file = join(dir, "chaos-task.cjs");
  await writeFile(file, CHAOS_TASK_SCRIPT);
  return file;
}

interface Run {
  task: string;
  attempt: number;
  worker: string;
  start: number;
  last: number;
  ended: boolean;
}

export interface ChaosReport {
  tasks: number;
  runs: number;
  /** Runs that completed but whose worker was killed before recording the result. */
  completedUnrecorded: number;
  /**
   * Of those, runs on a worker that was not killed: finished runs thrown away and repeated
   * although their worker lived (e.g. its outcome write met a NATS outage). Must be 0.
   */
  fencedCompleted: number;
  /** Tasks whose log shows more than one completed run (a finished run was repeated). */
  repeatedTasks: number;
  /** Runs cut short (their worker was killed or fenced). */
  interrupted: number;
  takeovers: number;
  problems: string[];
}

interface RawRecord {
  id: string;
  state: string;
  attempts: Array<{ attempt: number; workerId: string; outcome?: string; reason?: string }>;
}

/** Reads every record of `ids` straight from the KV bucket. */
export async function readRecords(servers: string[], ids: string[]): Promise<Map<string, RawRecord>> {
  const nc = await connect({ servers });
  try {
    const kv = await new Kvm(nc).open(TASKS_BUCKET);
    const out = new Map<string, RawRecord>();
    for (const id of ids) {
      const e = await kv.get(id);
      if (e && e.operation === "PUT") out.set(id, JSON.parse(new TextDecoder().decode(e.value)) as RawRecord);
    }
    return out;
  } finally {
    await nc.close();
  }
}

const TERMINAL = ["succeeded", "failed", "dead", "cancelled"];

/** The records of `ids` once every one of them is terminal (read straight from the bucket). */
export function waitAllTerminal(
  servers: string[],
  ids: string[],
  timeoutMs: number,
): Promise<Map<string, RawRecord>> {
  return waitFor(
    async () => {
      const recs = await readRecords(servers, ids);
      return ids.every((id) => TERMINAL.includes(recs.get(id)?.state ?? "")) && recs;
    },
    { name: "every task terminal", timeoutMs, intervalMs: 250 },
  );
}

/** The first run in the log that has started and not ended, with the worker running it. */
export async function openRun(
  logFile: string,
  onWorker: (worker: string) => boolean = () => true,
): Promise<{ taskId: string; workerId: string } | undefined> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l.startsWith("start ") && onWorker(l.split(" ")[3] ?? ""))
    .map((l) => ({ taskId: l.split(" ")[1]!, workerId: l.split(" ")[3]! }))
    .find((r) => !text.includes(`end ${r.taskId} `));
}

/**
 * The checker: every task terminal and succeeded exactly once (one succeeded attempt in the
 * record, backed by a completed run of that attempt and worker in the log); no two runs of a
 * task overlapped in time; none lost. A run that completed without being recorded is allowed
 * only for a worker the driver killed.
 */
export async function checkChaos(
  logFile: string,
  ids: string[],
  records: Map<string, RawRecord>,
  killedWorkers: (workerId: string) => boolean,
  /**
   * Where the disruption can cut a live worker off for longer than its lease (a killed cluster
   * node): its finished but unrecorded run may be repeated once its fence is really gone.
   */
  allowFenceLoss = false,
): Promise<ChaosReport> {
  const runs = new Map<string, Run>();
  const text = await readFile(logFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [kind, task, attempt, worker, ms] = line.split(" ");
    if (!kind || !task || !attempt || !worker || !ms) continue;
    const key = `${task} ${attempt} ${worker}`;
    const t = Number(ms);
    let r = runs.get(key);
    if (!r) {
      r = { task, attempt: Number(attempt), worker, start: Number.POSITIVE_INFINITY, last: 0, ended: false };
      runs.set(key, r);
    }
    if (kind === "start") r.start = Math.min(r.start, t);
    r.last = Math.max(r.last, t);
    if (kind === "end") r.ended = true;
  }
  const byTask = new Map<string, Run[]>();
  for (const r of runs.values()) byTask.set(r.task, [...(byTask.get(r.task) ?? []), r]);
  const problems: string[] = [];
  let completedUnrecorded = 0;
  let interrupted = 0;
  let takeovers = 0;
  let fencedCompleted = 0;
  let repeatedTasks = 0;
  for (const id of ids) {
    if ((byTask.get(id) ?? []).filter((r) => r.ended).length > 1) repeatedTasks++;
    const rec = records.get(id);
    if (!rec) {
      problems.push(`${id}: lost (no record)`);
      continue;
    }
    if (rec.state !== "succeeded") {
      problems.push(`${id}: ended ${rec.state}, not succeeded`);
      continue;
    }
    takeovers += rec.attempts.filter((a) => a.outcome === "lost").length;
    const ok = rec.attempts.filter((a) => a.outcome === "succeeded");
    if (ok.length !== 1) {
      problems.push(`${id}: ${ok.length} succeeded attempts in the record`);
      continue;
    }
    const win = ok[0]!;
    const list = (byTask.get(id) ?? []).sort((a, b) => a.start - b.start);
    if (!list.some((r) => r.attempt === win.attempt && r.worker === win.workerId && r.ended)) {
      problems.push(
        `${id}: succeeded attempt ${win.attempt} on ${win.workerId} has no completed run in the log`,
      );
    }
    for (const r of list) {
      if (r.attempt === win.attempt && r.worker === win.workerId) continue;
      if (r.ended) {
        // Allowed only where the record itself says the attempt was lost (its worker died or
        // was cut off before it could record the result), and the worker really was killed
        // or fenced: never a second "success".
        const att = rec.attempts.find((a) => a.attempt === r.attempt && a.workerId === r.worker);
        // Its fence was really gone: the others saw the lease expire (lost), or the worker,
        // cut off from NATS for most of the lease, stopped itself (self-fenced, interrupted).
        const selfFenced = att?.outcome === "interrupted" && /^self-fenced/.test(att.reason ?? "");
        const fenceGone = selfFenced || (att?.outcome === "lost" && /lease expired/.test(att.reason ?? ""));
        if (att?.outcome !== "lost" && !selfFenced) {
          problems.push(
            `${id}: attempt ${r.attempt} on ${r.worker} completed but the record says ${att?.outcome}`,
          );
        }
        if (!killedWorkers(r.worker) && !(allowFenceLoss && fenceGone)) {
          fencedCompleted++;
          problems.push(
            `${id}: attempt ${r.attempt} on ${r.worker} completed, was not recorded and ran again, although that worker was never killed (${att?.reason ?? "no reason"})`,
          );
        }
        completedUnrecorded++;
      } else interrupted++;
    }
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      const cur = list[i]!;
      if (cur.start < prev.last) {
        problems.push(
          `${id}: runs overlapped: attempt ${prev.attempt}@${prev.worker} until ${prev.last} and attempt ${cur.attempt}@${cur.worker} from ${cur.start}`,
        );
      }
    }
  }
  return {
    tasks: ids.length,
    runs: runs.size,
    completedUnrecorded,
    fencedCompleted,
    repeatedTasks,
    interrupted,
    takeovers,
    problems,
  };
}
