/**
 * Who owns what in a task's plan: the `owns` of the plan's other tasks, so the ownership hook
 * can name the task that owns a path it refuses. The plan record names the plan's tasks (those
 * added by delegation with their owns); their records are read by key, never by a scan of the
 * task bucket (a Claude task of a plan starts with this read).
 */
import { type PlanRecord, planTaskIds } from "../plans/index.js";
import type { TaskSpec, TaskStore } from "../tasks/index.js";

export type PlanOwners = (spec: TaskSpec) => Promise<Record<string, string[]>>;

export interface PlanOwnersDeps {
  store: Pick<TaskStore, "getMany">;
  /** The plan's record (cached by the plan store), or undefined when there is none. */
  plan: (id: string) => Promise<PlanRecord | undefined>;
}

export function planOwners(d: PlanOwnersDeps): PlanOwners {
  return async (spec) => {
    const out: Record<string, string[]> = {};
    if (!spec.plan) return out;
    const plan = await d.plan(spec.plan);
    if (!plan) return out;
    const delegated = Object.keys(plan.delegated ?? {}).map((name) => `${plan.id}-${name}`);
    const ids = [...planTaskIds(plan), ...delegated].filter((id) => id !== spec.id);
    const { records } = await d.store.getMany([...new Set(ids)]);
    for (const v of records) {
      const s = v.record.spec;
      if (s.plan === spec.plan && s.id !== spec.id && s.owns) out[s.id] = s.owns;
    }
    // A delegated task whose record is not written yet owns what the plan record says.
    for (const [name, e] of Object.entries(plan.delegated ?? {})) {
      const id = `${plan.id}-${name}`;
      if (id !== spec.id && !out[id] && e.owns.length > 0) out[id] = e.owns;
    }
    return out;
  };
}
