/**
 * The plan side of MeshService: submit a plan (all or nothing, idempotent), read one, list them.
 * Scheduling after submit (release, dependency failures, re-opens) is plans/scheduler.ts.
 */
import { createHash } from "node:crypto";
import type { PlanSubmitResult, PlanSummary, PlanView, SubmitResult, TaskView } from "./api/index.js";
import { MeshError } from "./errors.js";
import type { Logger } from "./log.js";
import {
  buildPlanRecord,
  type PlanConflict,
  type PlanRecord,
  type PlanSpec,
  type PlanStore,
  planTaskIds,
} from "./plans/index.js";
import {
  checkBatchPolicy,
  type Step,
  submit,
  type TaskPolicy,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TaskStore,
  type VersionedRecord,
} from "./tasks/index.js";

/** Records created at once while submitting a plan. */
const CREATE_CONCURRENCY = 64;

export interface PlanServiceDeps {
  store: TaskStore;
  plans: PlanStore;
  log: Logger;
  policy?: TaskPolicy;
  capacity?: { admit(bytes: number): Promise<void> };
  /** Publishes a created record's state events. */
  announce(written: TaskRecord, step: Step): void;
  /** Rings a queued task's doorbell. */
  ring(v: VersionedRecord, dedupKey: string): Promise<void>;
  /** Refuses (ALREADY_EXISTS) a spec that differs from the one stored under its id. */
  refuseDifferentSpec(stored: TaskSpec, next: TaskSpec, field: string): void;
  stableJson(v: unknown): string;
  onSubmitted?(spec: TaskSpec): void;
}

export async function submitPlan(
  d: PlanServiceDeps,
  plan: PlanSpec,
  submitter = "unknown",
): Promise<PlanSubmitResult> {
  if (d.policy) checkBatchPolicy(plan.tasks, d.policy);
  const digest = createHash("sha256")
    .update(d.stableJson({ id: plan.id, title: plan.title ?? null, tasks: plan.tasks }))
    .digest("hex");
  const now = new Date();
  const rec = buildPlanRecord(plan, now, submitter, digest);
  const differs = async (p: PlanRecord) =>
    new MeshError(
      "ALREADY_EXISTS",
      `plan ${plan.id} was already submitted with different tasks (submitted ${p.createdAt} by ${p.submitter}; ${await whatDiffers(d, p, plan)}); nothing was submitted. Give the new plan another id (plan: ...), or leave it out to get a generated one`,
      { field: "plan" },
    );
  const before = await d.plans.get(plan.id);
  if (before && before.digest !== digest) throw await differs(before);
  const byId = new Map(plan.tasks.map((t) => [t.id, t]));
  const specs = plan.order.map((id) => byId.get(id)!);
  const steps = specs.map((s) => submit(s, now));
  if (!before) {
    await d.capacity?.admit(
      steps.reduce((n, s) => n + Buffer.byteLength(JSON.stringify(s.record)) + 128, 0) +
        Buffer.byteLength(JSON.stringify(rec)),
    );
  }
  let planCreated = false;
  if (!before) {
    const { record, created } = await d.plans.create(rec);
    if (!created && record.digest !== digest) throw await differs(record);
    planCreated = created;
  }
  // Every record first, then the roots' doorbells: nothing runs before the whole plan is
  // written, and a refusal part-way takes back what this submit made (no doorbell rang yet).
  const made: Array<VersionedRecord | undefined> = new Array(steps.length);
  const existing = new Map<number, VersionedRecord>();
  try {
    // CREATE_CONCURRENCY creates in flight all the time (not batches that wait for their
    // slowest); the first failure stops the rest, and every create started has ended before
    // the undo below.
    let next = 0;
    let failure: { err: unknown } | undefined;
    const creator = async () => {
      while (!failure && next < steps.length) {
        const i = next++;
        try {
          made[i] = await d.store.create(steps[i]!.record);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CREATE_CONCURRENCY, steps.length) }, creator));
    if (failure) throw failure.err;
    for (const [i, spec] of specs.entries()) {
      if (made[i]) continue;
      const e = await d.store.get(spec.id);
      if (!e) throw new MeshError("CONFLICT", `task ${spec.id} exists but cannot be read; try again`);
      d.refuseDifferentSpec(e.record.spec, spec, `tasks[${plan.tasks.indexOf(spec)}].id`);
      existing.set(i, e);
    }
  } catch (err) {
    const undo = made.filter((v): v is VersionedRecord => v !== undefined);
    await Promise.allSettled(undo.map((v) => d.store.purge(v)));
    if (planCreated) await d.plans.remove(plan.id).catch(() => undefined);
    throw err;
  }
  const tasks: SubmitResult[] = [];
  for (const [i, spec] of specs.entries()) {
    const created = made[i];
    const cur = created ?? existing.get(i)!;
    if (created) {
      d.onSubmitted?.(spec);
      d.announce(created.record, steps[i]!);
    }
    // Only roots have doorbells; a re-submit rings a still-queued one again (deduplicated).
    if (cur.record.state === "queued") await d.ring(cur, `${spec.id}#submit`);
    tasks.push({ id: spec.id, created: created !== undefined, state: cur.record.state });
  }
  d.log.info({ plan: plan.id, tasks: specs.length, created: planCreated }, "plan submitted");
  return { planId: plan.id, created: !before && planCreated, tasks };
}

/**
 * How a re-submitted plan differs from the stored one, for the refusal: tasks added or gone,
 * the first task whose spec changed (and its field), or the same tasks in another order.
 */
async function whatDiffers(
  d: Pick<PlanServiceDeps, "store" | "stableJson">,
  stored: PlanRecord,
  plan: PlanSpec,
): Promise<string> {
  const old = planTaskIds(stored);
  const oldSet = new Set(old);
  const names = (ids: string[]) =>
    ids.slice(0, 3).join(", ") + (ids.length > 3 ? ` and ${ids.length - 3} more` : "");
  const added = plan.tasks.map((t) => t.id).filter((id) => !oldSet.has(id));
  if (added.length > 0) return `new tasks: ${names(added)}`;
  const newSet = new Set(plan.tasks.map((t) => t.id));
  const gone = old.filter((id) => !newSet.has(id));
  if (gone.length > 0) return `tasks no longer in it: ${names(gone)}`;
  for (const spec of plan.tasks) {
    const e = await d.store.get(spec.id).catch(() => undefined);
    if (!e) continue;
    const was = e.record.spec as Record<string, unknown>;
    const now = spec as Record<string, unknown>;
    const fields = Object.keys({ ...was, ...now }).filter(
      (k) => d.stableJson(was[k]) !== d.stableJson(now[k]),
    );
    if (fields.length > 0) return `task ${spec.id} differs in ${fields.join(", ")}`;
  }
  if (old.some((id, i) => plan.tasks[i]?.id !== id)) return "the same tasks in another order";
  return "its title or a task differs";
}

export async function getPlan(
  d: Pick<PlanServiceDeps, "store" | "plans">,
  id: string,
  view: (v: VersionedRecord) => TaskView,
  conflicts: (plan: string) => Promise<PlanConflict[]>,
): Promise<PlanView> {
  const plan = await d.plans.get(id);
  if (!plan) throw new MeshError("NOT_FOUND", `no plan with id "${id}"; list them with \`mesh plan list\``);
  const ids = planTaskIds(plan);
  const all = new Map((await d.store.readSome(ids)).map((v) => [v.record.id, v]));
  const read = ids.map((t) => all.get(t));
  const tasks: TaskView[] = [];
  const missing: string[] = [];
  read.forEach((v, i) => {
    if (v) tasks.push(view(v));
    else missing.push(ids[i]!);
  });
  return { plan, tasks, missing, conflicts: await conflicts(id) };
}

/** The needs (task ids) that have not succeeded, in their order; a need without a record counts. */
export async function unmetNeeds(store: TaskStore, needs: readonly string[]): Promise<string[]> {
  // Read by key (never the whole bucket: `mesh task <id>` stays a few gets however big it is).
  const states = new Map<string, TaskState>();
  for (const v of (await store.getMany(needs)).records) states.set(v.record.id, v.record.state);
  return needs.filter((n) => states.get(n) !== "succeeded");
}

/** Every plan with its tasks' states: their records read by key, or in one pass when they are most of the bucket. */
export async function listPlans(d: Pick<PlanServiceDeps, "store" | "plans">): Promise<PlanSummary[]> {
  const plans = await d.plans.list();
  const records = await d.store.readSome(plans.flatMap((p) => planTaskIds(p)));
  const states = new Map<string, Partial<Record<TaskState, number>>>();
  for (const { record: r } of records) {
    if (!r.spec.plan) continue;
    const s = states.get(r.spec.plan) ?? {};
    states.set(r.spec.plan, s);
    s[r.state] = (s[r.state] ?? 0) + 1;
  }
  return plans
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id))
    .map((plan) => ({ plan, states: states.get(plan.id) ?? {} }));
}
