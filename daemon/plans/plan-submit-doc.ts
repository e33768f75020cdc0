/**
 * The plan document as `mesh plan submit` sends it, read into a PlanSpec: the minimal checks
 * scheduling needs (names, unknown and duplicate needs, cycles with their path). Helper
 * plans-model's `validatePlan` (owns overlap, escaping globs, repos) replaces it with the same
 * output shape.
 *
 * ```yaml
 * plan: auth-rework       # optional id; generated p-<time>-<rand> when absent
 * title: ...              # optional
 * defaults: { pool: x }   # optional: fields applied to every task (a task's own win)
 * tasks:
 *   - id: schema          # plan-local name; the mesh task id is `<plan>-<name>`
 *     prompt: ...
 *   - id: api
 *     needs: [schema]     # plan-local names
 * ```
 */
import { MeshError } from "../errors.js";
import {
  ID_RE,
  MAX_PLAN_TASKS,
  NAME_RE,
  parseTaskDocument,
  type TaskSpec,
  validateTaskSpec,
} from "../tasks/index.js";

export interface PlanSpec {
  id: string;
  title?: string;
  /** Validated specs with full ids; `plan`, `needs` (full ids) and `depth` set. */
  tasks: TaskSpec[];
  /** Task id -> the ids of the tasks that need it. */
  dependents: Record<string, string[]>;
  /** Task ids, every task after its needs. */
  order: string[];
}

const TOP_FIELDS = new Set(["plan", "title", "defaults", "tasks"]);

export function planTaskId(planId: string, name: string): string {
  return `${planId}-${name}`;
}

export function newPlanId(): string {
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => (b % 36).toString(36)).join("");
  return `p-${Date.now().toString(36)}-${rand}`;
}

const bad = (field: string, message: string): never => {
  throw new MeshError("INVALID_ARGUMENT", `${field}: ${message}`, { field });
};

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/** Parses the YAML/JSON text of a plan document (one document, an object with `tasks`). */
export function parsePlanSubmitDocument(text: string, source = "input"): PlanSpec {
  const docs = parseTaskDocument(text, source);
  // parseTaskDocument unwraps `{tasks: [...]}` alone; a plan document has more fields.
  if (docs.length !== 1 || !isObject(docs[0]) || !("tasks" in docs[0])) {
    if (docs.every((d) => isObject(d) && !("tasks" in d)) && docs.length >= 1) {
      return validatePlanSubmit({ tasks: docs });
    }
    bad(source, "a plan document is one object with `tasks: [...]` (and optionally plan, title, defaults)");
  }
  return validatePlanSubmit(docs[0]);
}

/** Validates a plan document already parsed; all or nothing, INVALID_ARGUMENT naming the field. */
export function validatePlanSubmit(input: unknown): PlanSpec {
  if (!isObject(input)) return bad("plan", "a plan document is an object with `tasks: [...]`");
  for (const k of Object.keys(input)) {
    if (!TOP_FIELDS.has(k)) bad(k, `unknown field "${k}"; a plan has plan, title, defaults and tasks`);
  }
  const planId = input.plan === undefined ? newPlanId() : input.plan;
  if (typeof planId !== "string" || !ID_RE.test(planId) || planId.length > 96) {
    bad("plan", "plan ids are 1-96 of A-Z a-z 0-9 _ - and start with a letter or digit");
  }
  const id = planId as string;
  if (input.title !== undefined && (typeof input.title !== "string" || input.title.length > 200)) {
    bad("title", "a title is one line of at most 200 characters");
  }
  const defaults = input.defaults ?? {};
  if (!isObject(defaults)) return bad("defaults", "must be an object of task fields");
  for (const k of ["id", "needs", "plan", "parent", "depth"]) {
    if (k in defaults) bad(`defaults.${k}`, `"${k}" is per task; it cannot be a default`);
  }
  const raw = input.tasks;
  if (!Array.isArray(raw) || raw.length === 0) return bad("tasks", "a plan needs a list of tasks");
  if (raw.length > MAX_PLAN_TASKS) bad("tasks", `a plan holds at most ${MAX_PLAN_TASKS} tasks; split it`);
  const names = new Map<string, number>();
  for (const [i, t] of raw.entries()) {
    if (!isObject(t)) return bad(`tasks[${i}]`, "a task is an object");
    const name = t.id;
    if (typeof name !== "string" || !NAME_RE.test(name)) {
      bad(`tasks[${i}].id`, "every task of a plan has an id: 1-64 of A-Z a-z 0-9 _ -, unique in the plan");
    }
    const prev = names.get(name as string);
    if (prev !== undefined) bad(`tasks[${i}].id`, `duplicate id "${name}" (also tasks[${prev}])`);
    names.set(name as string, i);
    for (const k of ["plan", "parent", "depth"]) {
      if (k in t) bad(`tasks[${i}].${k}`, `"${k}" is set by the mesh, not in a plan document`);
    }
  }
  const needsOf: string[][] = raw.map((t: Record<string, unknown>, i) => {
    const n = t.needs ?? [];
    if (!Array.isArray(n) || !n.every((x) => typeof x === "string")) {
      return bad(`tasks[${i}].needs`, "needs is a list of task ids of this plan");
    }
    for (const [j, x] of n.entries()) {
      if (!names.has(x)) {
        const known = [...names.keys()];
        const hint = known.length <= 12 ? `; the plan's tasks are ${known.join(", ")}` : "";
        bad(`tasks[${i}].needs[${j}]`, `unknown dependency "${x}"${hint}`);
      }
    }
    return n as string[];
  });
  const order = topoOrder([...names.keys()], needsOf);
  const tasks = raw.map((t: Record<string, unknown>, i) => {
    const name = t.id as string;
    const needs = needsOf[i]!.map((n) => planTaskId(id, n));
    const { needs: _drop, ...rest } = t;
    return validateTaskSpec(
      {
        ...defaults,
        ...rest,
        id: planTaskId(id, name),
        plan: id,
        depth: 0,
        ...(needs.length > 0 ? { needs } : {}),
      },
      `tasks[${i}]`,
    );
  });
  const dependents: Record<string, string[]> = {};
  for (const t of tasks) {
    for (const n of t.needs ?? []) {
      const list = dependents[n] ?? [];
      dependents[n] = list;
      list.push(t.id);
    }
  }
  return {
    id,
    ...(typeof input.title === "string" ? { title: input.title } : {}),
    tasks,
    dependents,
    order: order.map((name) => planTaskId(id, name)),
  };
}

/** Kahn's order over plan-local names; a cycle is refused with its path `a -> b -> a`. */
function topoOrder(names: string[], needsOf: string[][]): string[] {
  const index = new Map(names.map((n, i) => [n, i]));
  const indeg = names.map((_, i) => needsOf[i]!.length);
  const deps: number[][] = names.map(() => []);
  needsOf.forEach((ns, i) => {
    for (const n of ns) deps[index.get(n)!]!.push(i);
  });
  const queue = indeg.flatMap((d, i) => (d === 0 ? [i] : []));
  const out: string[] = [];
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q]!;
    out.push(names[i]!);
    for (const j of deps[i]!) if (--indeg[j]! === 0) queue.push(j);
  }
  if (out.length === names.length) return out;
  // A cycle: walk needs from a task left over until a task repeats.
  const left = new Set(indeg.flatMap((d, i) => (d > 0 ? [i] : [])));
  let at = [...left][0]!;
  const path: number[] = [];
  const seen = new Map<number, number>();
  while (!seen.has(at)) {
    seen.set(at, path.length);
    path.push(at);
    at = needsOf[at]!.map((n) => index.get(n)!).find((j) => left.has(j))!;
  }
  const cycle = path.slice(seen.get(at)).map((i) => names[i]!);
  // Written in the direction of "needs": a needs b needs c needs a, shown as a -> b -> c -> a.
  const shown = [...cycle, cycle[0]!].join(" -> ");
  const first = index.get(cycle[0]!)!;
  return bad(`tasks[${first}].needs`, `a cycle: ${shown}; a plan's needs must not loop`);
}
