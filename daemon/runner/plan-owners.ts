/**
 * Who owns what in a task's plan: the `owns` of the plan's other tasks, so the ownership hook
 * can name the task that owns a path it refuses. For now read from the task records with the
 * same `spec.plan`; the coordinator can switch this one function to the plan record.
 */
import type { TaskSpec, TaskStore } from "../tasks/index.js";

export type PlanOwners = (spec: TaskSpec) => Promise<Record<string, string[]>>;

export function planOwnersFromStore(store: Pick<TaskStore, "list">): PlanOwners {
  return async (spec) => {
    const out: Record<string, string[]> = {};
    if (!spec.plan) return out;
    for (const v of await store.list()) {
      const s = v.record.spec;
      if (s.plan === spec.plan && s.id !== spec.id && s.owns) out[s.id] = s.owns;
    }
    return out;
  };
}
