/**
 * The plan record kept in KV (bucket `mesh-plans`, key = plan id), written once at submit: the
 * plan's tasks and what needs what. The graph is stored compactly (plan-local names, needs as
 * indices) so that a 5,000-task plan stays far below one NATS message; the tasks' states live
 * in their own records.
 */
import { MeshError } from "../errors.js";
import type { PlanSpec } from "./plan-submit-doc.js";

export const PLAN_RECORD_VERSION = 1;
/** A plan record is one NATS message (max_payload is 1 MiB by default). */
export const MAX_PLAN_RECORD_BYTES = 960 * 1024;

export interface PlanRecord {
  v: 1;
  id: string;
  title?: string;
  createdAt: string;
  /** Who submitted it: `user@host` as the submitting daemon saw it. */
  submitter: string;
  /** Plan-local task names in topological order; task i's id is `<id>-<tasks[i]>`. */
  tasks: string[];
  /** needs[i]: the indices (into `tasks`) of what task i needs. */
  needs: number[][];
  /** SHA-256 of the submitted specs: a re-submit of the same plan is recognised by it. */
  digest: string;
  /**
   * Tasks added by delegation (name -> the task that added it and its owns), written with the
   * name in the same compare-and-set: the next add decides on them even before their records exist.
   */
  delegated?: Record<string, { parent: string; owns: string[] }>;
}

/** The task id of a plan's task `i`. */
export const planTask = (p: PlanRecord, i: number): string => `${p.id}-${p.tasks[i]}`;

export function planTaskIds(p: PlanRecord): string[] {
  return p.tasks.map((_, i) => planTask(p, i));
}

/** What needs each task (task id -> dependents' ids). */
export function planDependents(p: PlanRecord): Map<string, string[]> {
  const out = new Map<string, string[]>();
  p.needs.forEach((ns, i) => {
    for (const n of ns) {
      const key = planTask(p, n);
      const list = out.get(key) ?? [];
      out.set(key, list);
      list.push(planTask(p, i));
    }
  });
  return out;
}

/** Each task's needs as task ids (task id -> ids). */
export function planNeeds(p: PlanRecord): Map<string, string[]> {
  return new Map(p.needs.map((ns, i) => [planTask(p, i), ns.map((n) => planTask(p, n))]));
}

/** The record of a validated plan; throws RESOURCE_EXHAUSTED when it would not fit one message. */
export function buildPlanRecord(spec: PlanSpec, now: Date, submitter: string, digest: string): PlanRecord {
  const prefix = `${spec.id}-`;
  const index = new Map(spec.order.map((id, i) => [id, i]));
  const byId = new Map(spec.tasks.map((t) => [t.id, t]));
  const rec: PlanRecord = {
    v: PLAN_RECORD_VERSION,
    id: spec.id,
    ...(spec.title ? { title: spec.title } : {}),
    createdAt: now.toISOString(),
    submitter,
    tasks: spec.order.map((id) => id.slice(prefix.length)),
    needs: spec.order.map((id) => (byId.get(id)?.needs ?? []).map((n) => index.get(n)!)),
    digest,
  };
  const bytes = Buffer.byteLength(JSON.stringify(rec));
  if (bytes > MAX_PLAN_RECORD_BYTES) {
    throw new MeshError(
      "RESOURCE_EXHAUSTED",
      `plan ${spec.id}: its record would be ${Math.ceil(bytes / 1024)} KiB, over ${MAX_PLAN_RECORD_BYTES / 1024} KiB (too many tasks or needs); nothing was submitted. Split the plan`,
      { field: "tasks" },
    );
  }
  return rec;
}

const dec = new TextDecoder("utf-8", { fatal: true });

/** The plan record stored under `key`; throws DATA_LOSS naming the key when it cannot be read. */
export function parsePlanRecord(data: Uint8Array, key: string): PlanRecord {
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(data));
  } catch {
    v = undefined;
  }
  const r = v as PlanRecord | undefined;
  const ok =
    r !== undefined &&
    r !== null &&
    r.v === PLAN_RECORD_VERSION &&
    r.id === key &&
    typeof r.createdAt === "string" &&
    typeof r.submitter === "string" &&
    typeof r.digest === "string" &&
    Array.isArray(r.tasks) &&
    r.tasks.every((t) => typeof t === "string") &&
    Array.isArray(r.needs) &&
    r.needs.length === r.tasks.length &&
    r.needs.every(
      (ns) => Array.isArray(ns) && ns.every((n) => Number.isSafeInteger(n) && n >= 0 && n < r.tasks.length),
    ) &&
    (r.delegated === undefined ||
      (typeof r.delegated === "object" &&
        r.delegated !== null &&
        Object.values(r.delegated).every(
          (e) =>
            typeof e?.parent === "string" &&
            Array.isArray(e.owns) &&
            e.owns.every((g) => typeof g === "string"),
        )));
  if (!ok) {
    throw new MeshError(
      "DATA_LOSS",
      `plan record "${key}" is unreadable (not a version-${PLAN_RECORD_VERSION} plan record); inspect it with \`nats kv get mesh-plans ${key}\``,
    );
  }
  return r;
}
