/**
 * The plan as submit writes it: plan-doc.ts checks the document whole (names, needs, cycles with
 * their path, one repo per linked tasks, owns overlap between concurrent tasks); here its tasks
 * become the specs the records hold (`depth` 0 for a plan's own tasks, `needs` only when there
 * are some).
 */
import type { TaskSpec } from "../tasks/index.js";
import { type PlanSpec as CheckedPlan, parsePlan, validatePlan } from "./plan-doc.js";

export { newPlanId, planTaskId } from "./plan-doc.js";

export interface PlanSpec {
  id: string;
  title?: string;
  /** Validated specs with full ids; `plan`, `needs` (full ids, when any) and `depth` set. */
  tasks: TaskSpec[];
  /** Task id -> the ids of the tasks that need it. */
  dependents: Record<string, string[]>;
  /** Task ids, every task after its needs. */
  order: string[];
}

function forSubmit(p: CheckedPlan): PlanSpec {
  const tasks = p.tasks.map((t): TaskSpec => {
    const { needs, ...rest } = t;
    return { ...rest, depth: 0, ...(needs.length > 0 ? { needs } : {}) };
  });
  return {
    id: p.id,
    ...(p.title !== undefined ? { title: p.title } : {}),
    tasks,
    dependents: p.dependents,
    order: p.order,
  };
}

/** Parses the YAML/JSON text of a plan document and checks it whole. */
export function parsePlanSubmitDocument(text: string, source = "input"): PlanSpec {
  return forSubmit(parsePlan(text, source));
}

/** Checks a plan document already parsed; all or nothing, INVALID_ARGUMENT naming the field. */
export function validatePlanSubmit(input: unknown): PlanSpec {
  return forSubmit(validatePlan(input));
}
