/**
 * Delegation, decided on what is stored (issue 14 §5): may the running task `parent` add a task
 * named `name` to its plan, and what is that task's spec. Pure: the caller reads the plan record
 * and the plan's task specs, writes the result, and retries on a lost compare-and-set.
 *
 * Cycles are impossible by construction: a new task can only need tasks already in the plan,
 * and no stored task's needs ever change, so every edge points from a newer task to an older
 * one. Fan-out is bounded per parent (`maxChildren`) and per plan (MAX_PLAN_TASKS), and depth by
 * `maxDepth`, so a chain of agents delegating to each other ends.
 */
import { MeshError } from "../errors.js";
import { ID_RE, MAX_PLAN_TASKS, normaliseGlob, type TaskSpec, validateTaskSpec } from "../tasks/index.js";
import { ownsOverlap } from "./overlap.js";
import { type PlanRecord, planTask } from "./plan-record.js";
import { ownsOutside } from "./within.js";

export interface DelegationLimits {
  /** The deepest a delegated task may be (top-level tasks are depth 0). */
  maxDepth: number;
  /** Tasks one task may add. */
  maxChildren: number;
}

export const DELEGATION_DEFAULTS: DelegationLimits = { maxDepth: 2, maxChildren: 8 };

export interface ChildRequest {
  name: string;
  prompt: string;
  title?: string;
  owns: readonly string[];
  /** Plan-local names of tasks of the plan. */
  needs: readonly string[];
}

export type ChildDecision =
  /** The name is in the plan already, for this very request: nothing to add (idempotent). */
  | { kind: "exists"; spec: TaskSpec }
  /** A new task: append `name` with these needs (indices into the plan's tasks) to the record. */
  | { kind: "new"; spec: TaskSpec; needs: number[] };

/** The fields a repeat of the same request must match. */
const SAME_REQUEST: ReadonlyArray<keyof TaskSpec> = ["parent", "prompt", "title", "owns", "needs"];

export function sameChild(a: TaskSpec, b: TaskSpec): boolean {
  return SAME_REQUEST.every((k) => JSON.stringify(a[k] ?? null) === JSON.stringify(b[k] ?? null));
}

/**
 * The child's spec: everything the parent runs with (repo, ref, pool, labels, runner, agent
 * settings, timeout, attempts, env), so it can never get more than its parent; its own prompt,
 * owns and needs; plan, parent and depth set here, never by the agent.
 */
function childSpec(
  parent: TaskSpec,
  plan: string,
  req: ChildRequest,
  owns: string[],
  depth: number,
): TaskSpec {
  const { title: _title, needs: _needs, owns: _owns, parent: _parent, depth: _depth, ...inherited } = parent;
  const spec: TaskSpec = {
    ...inherited,
    id: `${plan}-${req.name}`,
    prompt: req.prompt,
    plan,
    parent: parent.id,
    depth,
    owns,
  };
  if (req.title) spec.title = req.title;
  if (req.needs.length) spec.needs = req.needs.map((n) => `${plan}-${n}`);
  return spec;
}

/**
 * Decides on a request of `parent` (as it runs) against its plan's record and the specs of the
 * plan's tasks (by id; a task whose record is missing is absent). Throws MeshError with the
 * reason the agent is told.
 */
export function decideChild(
  parent: TaskSpec,
  plan: PlanRecord | undefined,
  specs: ReadonlyMap<string, TaskSpec>,
  req: ChildRequest,
  limits: DelegationLimits,
): ChildDecision {
  if (!parent.plan || !plan) {
    throw new MeshError(
      "FAILED_PRECONDITION",
      `task ${parent.id} is not part of a plan, so it cannot add tasks: only tasks submitted with \`mesh plan submit\` can hand work on`,
      { field: "plan" },
    );
  }
  if (!parent.owns?.length) {
    throw new MeshError(
      "FAILED_PRECONDITION",
      `task ${parent.id} has no owns, so it has nothing to hand on: only a task with owns can delegate part of them; do the work here`,
      { field: "owns" },
    );
  }
  // The agent's text meets the same rules as a submitted spec's (one-line title, prompt size).
  validateTaskSpec({ prompt: req.prompt, ...(req.title ? { title: req.title } : {}) });
  if (!ID_RE.test(`${plan.id}-${req.name}`)) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `name: "${plan.id}-${req.name}" would be longer than a task id may be (128 characters); pick a shorter --name`,
      { field: "name" },
    );
  }
  const owns: string[] = [];
  req.owns.forEach((g, i) => {
    const n = normaliseGlob(g, `owns[${i}]`);
    if (!owns.includes(n)) owns.push(n);
  });
  const depth = (parent.depth ?? 0) + 1;
  const index = new Map(plan.tasks.map((name, i) => [name, i]));
  const id = `${plan.id}-${req.name}`;
  const wanted = childSpec(parent, plan.id, req, owns, depth);

  const delegated = plan.delegated ?? {};
  if (index.has(req.name)) {
    const stored = specs.get(id);
    if (stored && sameChild(stored, wanted)) return { kind: "exists", spec: stored };
    // Named in the plan but without a record yet (being made, or a request that stopped
    // half-way): the same request again ends it.
    const entry = delegated[req.name];
    if (!stored && entry?.parent === parent.id && JSON.stringify(entry.owns) === JSON.stringify(owns))
      return { kind: "exists", spec: wanted };
    throw new MeshError(
      "ALREADY_EXISTS",
      `plan ${plan.id} has a task named "${req.name}" already (${id}${stored?.parent ? `, added by ${stored.parent}` : ""}); pick another --name`,
      { field: "name" },
    );
  }

  if (depth > limits.maxDepth) {
    throw new MeshError(
      "RESOURCE_EXHAUSTED",
      `task ${parent.id} is at depth ${depth - 1} and the mesh allows delegation down to depth ${limits.maxDepth} (plans.maxDepth): it cannot add tasks; do the work here`,
      { field: "depth" },
    );
  }
  const children = Object.values(delegated).filter((e) => e.parent === parent.id).length;
  if (children >= limits.maxChildren) {
    throw new MeshError(
      "RESOURCE_EXHAUSTED",
      `task ${parent.id} has added ${children} tasks, the most one task may add (plans.maxChildren = ${limits.maxChildren}); do the rest here`,
      { field: "name" },
    );
  }
  if (plan.tasks.length + 1 > MAX_PLAN_TASKS) {
    throw new MeshError(
      "RESOURCE_EXHAUSTED",
      `plan ${plan.id} holds ${plan.tasks.length} tasks, the most a plan may hold (${MAX_PLAN_TASKS})`,
      { field: "plan" },
    );
  }

  const outside = ownsOutside(owns, parent.owns);
  if (outside !== undefined) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `owns: "${outside}" is not inside this task's owns [${parent.owns.join(", ")}]: a task can hand on only paths it owns; pick globs under them`,
      { field: "owns" },
    );
  }

  const needs: number[] = [];
  for (const n of req.needs) {
    const i = index.get(n);
    if (i === undefined) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `needs: plan ${plan.id} has no task named "${n}" (its tasks: ${plan.tasks.slice(0, 20).join(", ")}${plan.tasks.length > 20 ? ", ..." : ""})`,
        { field: "needs" },
      );
    }
    if (!needs.includes(i)) needs.push(i);
  }

  // Who may run at the same time as the child: every task of the plan but its lineage (whose
  // owns hold the child's by construction) and what it needs, directly or not.
  const before = new Set<number>();
  const stack = [...needs];
  for (let i = stack.pop(); i !== undefined; i = stack.pop()) {
    if (before.has(i)) continue;
    before.add(i);
    stack.push(...(plan.needs[i] ?? []));
  }
  const nameOf = (taskId: string) => taskId.slice(plan.id.length + 1);
  const lineage = new Set<string>();
  for (let at: string | undefined = parent.id; at && !lineage.has(at); ) {
    lineage.add(at);
    at = delegated[nameOf(at)]?.parent ?? specs.get(at)?.parent;
  }
  for (let i = 0; i < plan.tasks.length; i++) {
    const other = planTask(plan, i);
    if (before.has(i) || lineage.has(other)) continue;
    const theirs = specs.get(other)?.owns ?? delegated[plan.tasks[i]!]?.owns;
    if (!theirs?.length) continue;
    const hit = ownsOverlap(owns, theirs);
    if (hit) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `owns: "${hit.a}" overlaps "${hit.b}" of task ${other}, which may run at the same time (both match ${hit.example}); pick owns that do not overlap, or add --needs ${plan.tasks[i]} to start after it`,
        { field: "owns" },
      );
    }
  }
  return { kind: "new", spec: wanted, needs };
}
