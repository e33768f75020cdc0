/**
 * A running task adds a task to its own plan (issue 14 §5), asked through its per-task port
 * (`mesh-task add`). The plan record is the commit point: the new name is appended by
 * compare-and-set (a concurrent add re-reads and decides again, so two siblings that overlap
 * cannot both get in), then the task's record is created waiting or queued, once: a repeat of
 * the same request (the agent retrying, a later attempt of the parent) finds the name and, if
 * the record is missing because the first request stopped half-way, creates it.
 */
import { MeshError } from "./errors.js";
import type { Logger } from "./log.js";
import {
  type ChildRequest,
  decideChild,
  type DelegationLimits,
  MAX_PLAN_RECORD_BYTES,
  type PlanRecord,
  type PlanScheduler,
  type PlanStore,
  planTaskIds,
  sameChild,
} from "./plans/index.js";
import {
  type Step,
  submit,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TaskStore,
  type VersionedRecord,
} from "./tasks/index.js";

export interface DelegateDeps {
  store: TaskStore;
  plans: PlanStore;
  scheduler: PlanScheduler;
  limits: DelegationLimits;
  log: Logger;
  announce(written: TaskRecord, step: Step): void;
  ring(v: VersionedRecord, dedupKey: string): Promise<void>;
  onSubmitted?(spec: TaskSpec): void;
}

export interface AddedTask {
  taskId: string;
  created: boolean;
  state: TaskState;
  depth: number;
}

const CAS_TRIES = 8;

async function planSpecs(store: TaskStore, plan: PlanRecord): Promise<Map<string, TaskSpec>> {
  const read = await store.readSome(planTaskIds(plan));
  return new Map(read.map((v) => [v.record.id, v.record.spec]));
}

export async function addToPlan(d: DelegateDeps, parent: TaskSpec, req: ChildRequest): Promise<AddedTask> {
  for (let i = 0; i < CAS_TRIES; i++) {
    const cur = parent.plan ? await d.plans.getVersioned(parent.plan) : undefined;
    const specs = cur ? await planSpecs(d.store, cur.record) : new Map<string, TaskSpec>();
    const decision = decideChild(parent, cur?.record, specs, req, d.limits);
    if (decision.kind === "new") {
      const p = cur!.record;
      const next: PlanRecord = {
        ...p,
        tasks: [...p.tasks, req.name],
        needs: [...p.needs, decision.needs],
        delegated: { ...p.delegated, [req.name]: { parent: parent.id, owns: decision.spec.owns ?? [] } },
      };
      if (Buffer.byteLength(JSON.stringify(next)) > MAX_PLAN_RECORD_BYTES)
        throw new MeshError(
          "RESOURCE_EXHAUSTED",
          `plan ${p.id}: its record is full; it cannot hold more tasks`,
          {
            field: "plan",
          },
        );
      try {
        await d.plans.update(next, cur!.revision);
      } catch (err) {
        if (err instanceof MeshError && err.code === "CONFLICT") continue;
        throw err;
      }
      d.log.info(
        { plan: p.id, taskId: decision.spec.id, parent: parent.id, depth: decision.spec.depth },
        "task added to its plan by delegation",
      );
    }
    return ensureRecord(d, decision.spec);
  }
  throw new MeshError("CONFLICT", `plan ${parent.plan} kept changing while adding ${req.name}; try again`);
}

/** The child's record, created once; a created waiting one is released at once if its needs are done. */
async function ensureRecord(d: DelegateDeps, spec: TaskSpec): Promise<AddedTask> {
  const depth = spec.depth ?? 0;
  const step = submit(spec, new Date());
  const created = await d.store.create(step.record);
  if (!created) {
    const existing = await d.store.get(spec.id);
    if (!existing) throw new MeshError("CONFLICT", `task ${spec.id} exists but cannot be read; try again`);
    if (!sameChild(existing.record.spec, spec))
      throw new MeshError(
        "ALREADY_EXISTS",
        `task ${spec.id} exists already with other work; pick another --name`,
        {
          field: "name",
        },
      );
    return { taskId: spec.id, created: false, state: existing.record.state, depth };
  }
  d.onSubmitted?.(spec);
  d.announce(created.record, step);
  let state = created.record.state;
  if (state === "queued") await d.ring(created, `${spec.id}#submit`);
  else {
    // Its needs may all have succeeded before it existed: nobody else would release it.
    const res = await d.scheduler.reconcile(created);
    if (res.kind === "released" || res.kind === "blocked") state = res.written.record.state;
  }
  return { taskId: spec.id, created: true, state, depth };
}
