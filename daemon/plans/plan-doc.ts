/**
 * A plan document: many tasks, each with a plan-local name (`id`), `needs` (names of tasks it
 * waits for) and `owns` (globs of what it may change). Parsed and checked whole, before
 * anything is written: a refusal is one MeshError INVALID_ARGUMENT naming the field and the fix.
 *
 * ```yaml
 * plan: auth-rework          # optional; generated p-<time>-<rand> when absent
 * title: Rework auth         # optional
 * defaults: { repo: ., pool: default }   # fields every task gets unless it sets them
 * tasks:
 *   - id: schema
 *     prompt: ...
 *     owns: [db/**]
 *   - id: api
 *     needs: [schema]
 *     owns: [src/api/**]
 * ```
 */
import { MeshError } from "../errors.js";
import {
  hasControlChars,
  ID_RE,
  MAX_PLAN_TASKS,
  NAME_RE,
  type TaskSpec,
  validateTaskSpec,
} from "../tasks/index.js";

export { MAX_PLAN_TASKS };
import { findConcurrentOverlap } from "./concurrent-owns.js";
import { findCycle, Reachability, topologicalOrder } from "./graph.js";
import { parsePlanDocument } from "./plan-text.js";

/** The most tasks one task may need directly. */
export const MAX_NEEDS = MAX_PLAN_TASKS;
const MAX_TITLE = 200;

export type DependencyFailure = "cancel" | "wait";

/** One task of a validated plan: a task spec with its full id, its plan, and needs as task ids. */
export type PlanTaskSpec = TaskSpec & {
  plan: string;
  /** Full task ids of the same plan, each once. */
  needs: string[];
  dependencyFailure?: DependencyFailure;
};

export interface PlanSpec {
  id: string;
  title?: string;
  /** In document order. */
  tasks: PlanTaskSpec[];
  /** Task ids, every task after all it needs (ties in document order). */
  order: string[];
  /** Task id -> the ids of the tasks that need it directly (every task has an entry). */
  dependents: Record<string, string[]>;
}

const TOP_FIELDS = new Set(["plan", "title", "defaults", "tasks"]);
/** Fields the plan itself sets on its tasks. */
const SET_BY_PLAN: Record<string, string> = {
  plan: "the plan sets it (write plan: at the top of the document)",
  parent: "the mesh sets it for tasks an agent adds",
  depth: "the mesh sets it for tasks an agent adds",
};
/** Fields a plan's `defaults` cannot give every task. */
const NOT_A_DEFAULT: Record<string, string> = {
  id: "each task names itself",
  needs: "each task says what it needs",
  owns: "tasks running side by side would all own the same paths; give each task its own",
  ...SET_BY_PLAN,
};

const invalid = (field: string, message: string): MeshError =>
  new MeshError("INVALID_ARGUMENT", `${field}: ${message}`, { field });

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The mesh task id of a plan's task. */
export function planTaskId(planId: string, name: string): string {
  return `${planId}-${name}`;
}

export function newPlanId(): string {
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => (b % 36).toString(36)).join("");
  return `p-${Date.now().toString(36)}-${rand}`;
}

/**
 * A plan's `defaults`: a mapping without the fields each task sets itself (`id`, `needs`,
 * `owns`) or the mesh sets (`plan`, `parent`, `depth`). The CLI checks it before it folds the
 * defaults into the tasks to ship their repos, so both sides refuse the same documents.
 */
export function checkPlanDefaults(value: unknown): Record<string, unknown> {
  const defaults = value ?? {};
  if (!isObject(defaults))
    throw invalid("defaults", "must be a mapping of task fields, e.g. { repo: ., pool: default }");
  for (const [k, why] of Object.entries(NOT_A_DEFAULT)) {
    if (k in defaults) throw invalid(`defaults.${k}`, `cannot be a default: ${why}`);
  }
  return defaults;
}

/** Parses and validates a plan document. */
export function parsePlan(text: string, source?: string): PlanSpec {
  return validatePlan(parsePlanDocument(text, source));
}

interface Draft {
  name: string;
  spec: TaskSpec;
  needNames: string[];
  dependencyFailure?: DependencyFailure;
}

/**
 * Checks a parsed plan whole and returns it with full task ids. Refuses (INVALID_ARGUMENT, the
 * field named): bad fields of the plan or any task, duplicate names, unknown dependencies, a
 * cycle (its path), tasks linked by needs on different repos, and two tasks that may run at
 * the same time whose owns overlap (both names and a path both own).
 */
export function validatePlan(input: unknown): PlanSpec {
  if (!isObject(input)) throw invalid("(root)", "a plan is a mapping with tasks: [...]");
  for (const k of Object.keys(input)) {
    if (!TOP_FIELDS.has(k)) {
      throw invalid(
        k,
        `unknown field "${k}"; a plan has plan, title, defaults and tasks (see README "Plans")`,
      );
    }
  }
  const id = input.plan === undefined ? newPlanId() : input.plan;
  if (typeof id !== "string" || !NAME_RE.test(id)) {
    throw invalid("plan", "plan ids are 1-64 of A-Z a-z 0-9 _ - and start with a letter or digit");
  }
  const title = input.title;
  if (
    title !== undefined &&
    (typeof title !== "string" || title.length === 0 || title.length > MAX_TITLE || hasControlChars(title))
  ) {
    throw invalid("title", `must be one line of text, 1-${MAX_TITLE} characters`);
  }
  const defaults = checkPlanDefaults(input.defaults);
  const tasks = input.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0)
    throw invalid("tasks", "must be a non-empty list of tasks");
  if (tasks.length > MAX_PLAN_TASKS) {
    throw invalid(
      "tasks",
      `a plan holds at most ${MAX_PLAN_TASKS} tasks (this one has ${tasks.length}); split it`,
    );
  }

  const drafts = tasks.map((t, i) => draftTask(t, i, id, defaults));
  const index = new Map<string, number>();
  drafts.forEach((d, i) => {
    const prev = index.get(d.name);
    if (prev !== undefined) {
      throw invalid(
        `tasks[${i}].id`,
        `duplicate name "${d.name}" (also tasks[${prev}]); give each task its own`,
      );
    }
    index.set(d.name, i);
  });
  const names = drafts.map((d) => d.name);
  const needs = drafts.map((d, i) =>
    d.needNames.map((n, k) => {
      const at = index.get(n);
      if (at === undefined) throw invalid(`tasks[${i}].needs[${k}]`, unknownNeed(n, names));
      return at;
    }),
  );

  const order = topologicalOrder(needs);
  if (!order) {
    const cycle = findCycle(needs)!;
    const path = cycle.map((i) => names[i]).join(" -> ");
    throw invalid(
      `tasks[${cycle[0]}].needs`,
      `the needs form a cycle: ${path} (each needs the next); drop one of these needs`,
    );
  }

  // Linked tasks build on each other's branches: one repo for all of them.
  needs.forEach((deps, i) => {
    for (const d of deps) {
      const mine = drafts[i]!.spec.repo;
      const theirs = drafts[d]!.spec.repo;
      if (mine !== theirs) {
        throw invalid(
          `tasks[${i}].repo`,
          `"${names[i]}" works on ${repoText(mine)} but needs "${names[d]}", which works on ${repoText(theirs)}; a task starts from the branches of the tasks it needs, so they share one repo`,
        );
      }
    }
  });

  const reach = new Reachability(needs, order);
  const clash = findConcurrentOverlap(
    drafts.map((d) => d.spec.owns),
    reach,
  );
  if (clash) {
    const a = names[clash.a];
    const b = names[clash.b];
    throw invalid(
      `tasks[${clash.b}].owns`,
      `"${a}" (${clash.globA}) and "${b}" (${clash.globB}) may run at the same time and both own paths such as "${clash.example}"; make one need the other, or narrow the globs so they do not meet`,
    );
  }

  const ids = names.map((n) => planTaskId(id, n));
  const dependents: Record<string, string[]> = {};
  for (const tid of ids) dependents[tid] = [];
  const out: PlanTaskSpec[] = drafts.map((d, i) => {
    const needIds = needs[i]!.map((k) => ids[k]!);
    for (const n of needIds) dependents[n]!.push(ids[i]!);
    return {
      ...d.spec,
      plan: id,
      needs: needIds,
      ...(d.dependencyFailure ? { dependencyFailure: d.dependencyFailure } : {}),
    };
  });
  return {
    id,
    ...(title !== undefined ? { title: title as string } : {}),
    tasks: out,
    order: order.map((i) => ids[i]!),
    dependents,
  };
}

const repoText = (repo: string | undefined): string => (repo === undefined ? "no repo" : `repo "${repo}"`);

function draftTask(raw: unknown, i: number, planId: string, defaults: Record<string, unknown>): Draft {
  const at = `tasks[${i}]`;
  if (!isObject(raw)) throw invalid(at, "must be a mapping with id, prompt, ...");
  for (const [k, why] of Object.entries(SET_BY_PLAN)) {
    if (k in raw) throw invalid(`${at}.${k}`, `cannot be set in a plan: ${why}`);
  }
  const { needs, dependencyFailure, ...fields } = { ...defaults, ...raw };
  const name = fields.id;
  if (name === undefined)
    throw invalid(`${at}.id`, "is required in a plan: a name other tasks' needs can use");
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw invalid(
      `${at}.id`,
      "task names in a plan are 1-64 of A-Z a-z 0-9 _ - and start with a letter or digit",
    );
  }
  const fullId = planTaskId(planId, name);
  if (!ID_RE.test(fullId)) {
    throw invalid(
      `${at}.id`,
      `"${name}" in plan "${planId}" makes the task id "${fullId}", longer than 128 characters; shorten the name or the plan id`,
    );
  }
  const needNames = needsList(needs, at);
  if (dependencyFailure !== undefined && dependencyFailure !== "cancel" && dependencyFailure !== "wait") {
    throw invalid(`${at}.dependencyFailure`, 'must be "cancel" (the default) or "wait"');
  }
  const spec = validateTaskSpec({ ...fields, id: fullId }, at);
  return {
    name,
    spec,
    needNames,
    ...(dependencyFailure ? { dependencyFailure: dependencyFailure as DependencyFailure } : {}),
  };
}

function needsList(needs: unknown, at: string): string[] {
  if (needs === undefined) return [];
  if (!Array.isArray(needs))
    throw invalid(`${at}.needs`, "must be a list of task names of this plan, e.g. [schema]");
  if (needs.length > MAX_NEEDS) throw invalid(`${at}.needs`, `at most ${MAX_NEEDS} names`);
  const out: string[] = [];
  needs.forEach((n, k) => {
    if (typeof n !== "string" || n === "") {
      throw invalid(`${at}.needs[${k}]`, "must be the name (id) of a task of this plan");
    }
    if (!out.includes(n)) out.push(n);
  });
  return out;
}

function unknownNeed(name: string, names: readonly string[]): string {
  let msg = `"${name}" is not a task of this plan`;
  const near = names.filter((n) => editDistance(n, name) <= 2);
  if (near.length > 0 && near.length <= 3) msg += `; did you mean ${near.map((n) => `"${n}"`).join(" or ")}?`;
  if (names.length <= 12) msg += ` (its tasks: ${names.join(", ")})`;
  else msg += ` (it has ${names.length} tasks; needs name their id:)`;
  return msg;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
