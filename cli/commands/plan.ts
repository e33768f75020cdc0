/**
 * `mesh plan submit|status|graph|list`: plans of tasks with needs. The document is checked
 * here first (as the daemon will check it: whole, nothing sent when it is wrong), local repos
 * (`repo: .`) are shipped, then the daemon validates and writes it all or nothing.
 */
import { userInfo, hostname } from "node:os";
import { Command } from "commander";
import { isMeshError, parseTaskDocument } from "../../daemon/lite.js";
import {
  type GetPlanResponse,
  type Plan,
  type PlanConflict,
  type Task,
  taskStateName,
} from "../../proto/index.js";
import { type Ctx, parseDurationFlag } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { dash, paint, paintState, table } from "../format.js";
import { submitJson } from "../json.js";
import { planLocalRepos } from "../local-repos.js";
import { run } from "../run.js";
import { FAILED, TERMINAL, unschedulableError, unschedulableWarning } from "../watching.js";
import { readInput } from "./submit.js";

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/** Keys only a plan document has at its top (a task spec has none of them but `title`). */
const PLAN_KEYS = ["plan", "defaults", "tasks"];

/**
 * The plan document as an object, `defaults` folded into each task (shipping needs each task's
 * repo), after the daemon's own check of `defaults` (folded, `owns` or `plan` there would pass
 * for each task's own). A bare task list, or one task, is a plan of those tasks.
 */
function planObject(
  text: string,
  source: string,
  checkDefaults: (d: unknown) => Record<string, unknown>,
  parseJsonPlan: (text: string, source: string) => unknown,
): Record<string, unknown> {
  // A JSON document takes the daemon's fast path (YAML reads a 5,000-task plan slowly); the
  // same duplicate-key refusal. Anything else (YAML, several documents) the task reader's way.
  const docs = judged(source, () =>
    isJsonObject(text) ? [parseJsonPlan(text, source)] : parseTaskDocument(text, source),
  );
  const first = docs[0];
  const obj: Record<string, unknown> =
    docs.length === 1 && isObject(first) && PLAN_KEYS.some((k) => k in first)
      ? { ...first }
      : { tasks: docs };
  if ("defaults" in obj) {
    const defaults = judged(source, () => checkDefaults(obj.defaults));
    if (Array.isArray(obj.tasks)) {
      obj.tasks = obj.tasks.map((t) => (isObject(t) ? { ...defaults, ...t } : t));
      delete obj.defaults;
    }
  }
  return obj;
}

function isJsonObject(text: string): boolean {
  if (!text.trimStart().startsWith("{")) return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function judged<T>(source: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!isMeshError(err)) throw err;
    const msg = err.message.replace(/:\s*$/, "");
    throw new CliError(
      EXIT.USAGE,
      `invalid plan: ${msg.startsWith(`${source}:`) ? msg : `${source}: ${msg}`}; nothing was submitted`,
      err.code,
      { cause: err, ...(err.field ? { field: err.field } : {}) },
    );
  }
}

interface SubmitOpts {
  dirty?: boolean;
  wait?: boolean;
  waitTimeout: string;
  unschedulableTimeout: string;
}

async function submit(ctx: Ctx, file: string, opts: SubmitOpts): Promise<void> {
  const waitMs = parseDurationFlag(opts.waitTimeout, "--wait-timeout");
  const unschedulableMs = parseDurationFlag(opts.unschedulableTimeout, "--unschedulable-timeout", true);
  const { text, source } = await readInput(file);
  const { checkPlanDefaults, newPlanId, parsePlanDocument, validatePlanSubmit } = await import(
    "../../daemon/index.js"
  );
  const doc = planObject(text, source, checkPlanDefaults, parsePlanDocument);
  // The id is fixed here, so that the local check and the daemon's are of the same plan.
  doc.plan ??= newPlanId();
  const tasks = Array.isArray(doc.tasks) ? doc.tasks : [];
  const local = planLocalRepos(tasks, { source, dirty: opts.dirty === true });
  judged(source, () => validatePlanSubmit(doc));
  const shipped = await local.ship(ctx);
  if (shipped.length) judged(source, () => validatePlanSubmit(doc));
  const submitter = `${userInfo().username}@${hostname()}`;
  const res = await ctx.client().submitPlan(JSON.stringify(doc), source, submitter);
  const rows = res.tasks.map(submitJson);
  if (!opts.wait) {
    if (ctx.json) return ctx.printJson({ plan: res.planId, created: res.created, tasks: rows });
    ctx.print(`plan ${res.planId}${res.created ? "" : " (already submitted)"}: ${rows.length} task(s)`);
    ctx.print(
      table(
        ["ID", "STATE", "NEW"],
        rows.map((t) => [t.id, paintState(ctx.style, t.state), t.created ? "yes" : "no"]),
        ctx.style,
      ),
    );
    return;
  }
  ctx.note(`plan ${res.planId} submitted; waiting for its tasks (Ctrl-C stops waiting, not the plan)`);
  const final = await waitForPlan(ctx, res.planId, waitMs, unschedulableMs);
  const view = statusRows(final);
  if (ctx.json) {
    ctx.printJson({ plan: res.planId, created: res.created, tasks: view });
  } else printStatus(ctx, final);
  const bad = view.filter((t) => FAILED.has(t.state) || t.blockedBy);
  if (bad.length > 0) {
    const first = bad[0]!;
    throw new CliError(
      EXIT.TASK_FAILED,
      `${bad.length} of ${view.length} task(s) of plan ${res.planId} did not succeed (${first.id} ${first.state}${first.reason ? `: ${first.reason}` : ""}); see \`mesh plan status ${res.planId}\``,
      "TASK_FAILED",
    );
  }
}

/**
 * Polls the plan until every task is terminal (or waits on a need that failed, policy wait).
 * A task no live worker serves is said on stderr, like `submit --wait`, and the wait gives up
 * (exit 6) once one stayed so for `unschedulableMs` (0: never).
 */
async function waitForPlan(
  ctx: Ctx,
  id: string,
  deadlineMs: number,
  unschedulableMs: number,
): Promise<GetPlanResponse> {
  const until = Date.now() + deadlineMs;
  const seen = new Map<string, string>();
  const stuckSince = new Map<string, number>();
  for (;;) {
    const res = await ctx.client().getPlan(id);
    const rows = statusRows(res);
    for (const t of rows) {
      if (seen.get(t.id) !== t.state && !ctx.json) {
        ctx.print(`${t.id}  ${paintState(ctx.style, t.state)}${t.reason ? `  ${t.reason}` : ""}`);
      }
      seen.set(t.id, t.state);
      if (!t.unschedulable) stuckSince.delete(t.id);
      else if (!stuckSince.has(t.id)) {
        stuckSince.set(t.id, Date.now());
        ctx.warn(unschedulableWarning(t.id, t.unschedulable, unschedulableMs));
      }
    }
    if (rows.every((t) => TERMINAL.has(t.state) || t.blockedBy)) return res;
    const gaveUp = rows.filter(
      (t) => t.unschedulable && unschedulableMs > 0 && Date.now() - stuckSince.get(t.id)! >= unschedulableMs,
    );
    if (gaveUp.length > 0) {
      throw unschedulableError(
        gaveUp.map((t) => ({ ...t, attempt: 0, unschedulable: t.unschedulable })),
        unschedulableMs,
      );
    }
    if (ctx.signal.aborted) {
      throw new CliError(
        EXIT.INTERRUPTED,
        `stopped waiting (interrupted); the plan goes on: \`mesh plan status ${id}\` shows it`,
        "INTERRUPTED",
      );
    }
    if (Date.now() > until) {
      throw new CliError(
        EXIT.OTHER,
        `gave up waiting for plan ${id} after --wait-timeout; it goes on: \`mesh plan status ${id}\``,
        "WAIT_TIMEOUT",
      );
    }
    await new Promise<void>((r) => {
      // One listener per pause, removed when it ends: polling must not pile them up on the signal.
      const done = () => {
        clearTimeout(t);
        ctx.signal.removeEventListener("abort", done);
        r();
      };
      const t = setTimeout(done, 500);
      ctx.signal.addEventListener("abort", done, { once: true });
    });
  }
}

interface StatusRow {
  id: string;
  state: string;
  needs: string[];
  host: string | null;
  workerId: string | null;
  /** Needs not succeeded yet (while waiting). */
  waitingOn: string[];
  blockedBy: { dependency: string; reason: string } | null;
  cancelCause: { dependency: string } | null;
  reason: string | null;
  /** The task that added this one to the plan (delegation), and how deep it is (0: submitted). */
  parent: string | null;
  depth: number;
  /** Why no live worker can run it now (queued or retrying only). */
  unschedulable: string | null;
}

function recordOf(t: Task): {
  blockedBy?: StatusRow["blockedBy"];
  cancelCause?: StatusRow["cancelCause"];
  spec?: { parent?: string; depth?: number };
} {
  try {
    return JSON.parse(t.recordJson) as ReturnType<typeof recordOf>;
  } catch {
    return {};
  }
}

function statusRows(res: GetPlanResponse): StatusRow[] {
  const byId = new Map(res.tasks.map((t) => [t.id, t]));
  const state = (id: string) => {
    const t = byId.get(id);
    return t ? taskStateName(t.state) : "missing";
  };
  return (res.plan?.tasks ?? []).map((pt) => {
    const t = byId.get(pt.id);
    const r = t ? recordOf(t) : {};
    const s = state(pt.id);
    return {
      id: pt.id,
      state: s,
      needs: pt.needs,
      host: t?.ownerHost || null,
      workerId: t?.ownerWorkerId || null,
      waitingOn: s === "waiting" ? pt.needs.filter((n) => state(n) !== "succeeded") : [],
      blockedBy: r.blockedBy ?? null,
      cancelCause: r.cancelCause ?? null,
      reason: t?.reason || null,
      parent: r.spec?.parent ?? null,
      depth: r.spec?.depth ?? 0,
      unschedulable: t?.unschedulableReason || null,
    };
  });
}

interface ConflictRow {
  tasks: string[];
  heads: string[];
  files: string[];
  foundAt: string;
  foundBy: string;
}

const conflictRow = (c: PlanConflict): ConflictRow => ({
  tasks: c.tasks,
  heads: c.heads,
  files: c.files,
  foundAt: c.foundAt,
  foundBy: c.foundBy,
});

/** A list of task names that stays one short line for a fan-in of hundreds. */
function fewNames(names: string[], max = 8): string {
  return (names.length > max ? [...names.slice(0, max), `and ${names.length - max} more`] : names).join(", ");
}

/** The needs a task has besides the one it is drawn under. */
const alsoNeeds = (more: string[]): string => `(also needs ${fewNames(more)})`;

/**
 * The plan as a tree: each task under the last of its needs in the plan's order (the others
 * named after it), roots at the top.
 */
function treeLines(plan: Plan, label: (id: string, extraNeeds: string[]) => string): string[] {
  const prefix = `${plan.id}-`;
  const short = (id: string) => (id.startsWith(prefix) ? id.slice(prefix.length) : id);
  const order = plan.tasks.map((t) => t.id);
  const pos = new Map(order.map((id, i) => [id, i]));
  const children = new Map<string, string[]>();
  const roots: string[] = [];
  const others = new Map<string, string[]>();
  for (const t of plan.tasks) {
    if (t.needs.length === 0) {
      roots.push(t.id);
      continue;
    }
    const parent = [...t.needs].sort((a, b) => (pos.get(b) ?? 0) - (pos.get(a) ?? 0))[0]!;
    children.set(parent, [...(children.get(parent) ?? []), t.id]);
    others.set(t.id, t.needs.filter((n) => n !== parent).map(short));
  }
  const out: string[] = [];
  const walk = (id: string, indent: string, last: boolean, top: boolean) => {
    out.push(`${indent}${top ? "" : last ? "└─ " : "├─ "}${label(id, others.get(id) ?? [])}`);
    const kids = children.get(id) ?? [];
    const next = top ? "" : `${indent}${last ? "   " : "│  "}`;
    for (const [i, k] of kids.entries()) walk(k, next, i === kids.length - 1, false);
  };
  for (const r of roots) walk(r, "", true, true);
  return out;
}

function printStatus(ctx: Ctx, res: GetPlanResponse): void {
  const plan = res.plan;
  if (!plan) throw new Error("the daemon answered GetPlan without a plan");
  const rows = new Map(statusRows(res).map((r) => [r.id, r]));
  const prefix = `${plan.id}-`;
  const short = (id: string) => (id.startsWith(prefix) ? id.slice(prefix.length) : id);
  ctx.print(
    `plan ${plan.id}${plan.title ? ` (${plan.title})` : ""}: submitted ${plan.createdAt} by ${plan.submitter}`,
  );
  const counts = new Map<string, number>();
  for (const r of rows.values()) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  ctx.print([...counts].map(([s, n]) => `${n} ${s}`).join(", "));
  for (const line of treeLines(plan, (id, more) => {
    const r = rows.get(id)!;
    const bits = [`${short(id)}  ${paintState(ctx.style, r.state)}`];
    if (r.host) bits.push(`on ${r.host}`);
    if (r.parent) bits.push(`added by ${short(r.parent)}, depth ${r.depth}`);
    if (more.length) bits.push(alsoNeeds(more));
    if (r.blockedBy) bits.push(paint(ctx.style, "red", `blocked: ${r.blockedBy.reason}`));
    else if (r.waitingOn.length) bits.push(`waits on ${fewNames(r.waitingOn.map(short))}`);
    if (r.reason && r.state !== "waiting") bits.push(`- ${r.reason}`);
    if (r.unschedulable) bits.push(paint(ctx.style, "yellow", `unschedulable: ${r.unschedulable}`));
    return bits.join("  ");
  }))
    ctx.print(line);
  if (res.missing.length) ctx.print(`no record (deleted after retention?): ${res.missing.join(", ")}`);
  for (const c of res.conflicts) {
    ctx.print(
      paint(
        ctx.style,
        "red",
        `conflict: ${c.tasks.map(short).join(" and ")} do not merge in ${c.files.join(", ")} (found ${c.foundAt} by ${c.foundBy})`,
      ),
    );
  }
}

async function status(ctx: Ctx, id: string): Promise<void> {
  const res = await ctx.client().getPlan(id);
  if (ctx.json) {
    const p = res.plan!;
    return ctx.printJson({
      plan: { id: p.id, title: p.title || null, createdAt: p.createdAt, submitter: p.submitter },
      tasks: statusRows(res),
      missing: res.missing,
      conflicts: res.conflicts.map(conflictRow),
    });
  }
  printStatus(ctx, res);
}

async function graph(ctx: Ctx, id: string, opts: { mermaid?: boolean }): Promise<void> {
  const { plan } = await ctx.client().getPlan(id);
  if (!plan) throw new Error("the daemon answered GetPlan without a plan");
  const prefix = `${plan.id}-`;
  const short = (t: string) => (t.startsWith(prefix) ? t.slice(prefix.length) : t);
  if (ctx.json) {
    return ctx.printJson({
      plan: plan.id,
      nodes: plan.tasks.map((t) => ({ id: t.id, needs: t.needs })),
      edges: plan.tasks.flatMap((t) => t.needs.map((n) => ({ from: n, to: t.id }))),
    });
  }
  if (opts.mermaid) {
    const node = new Map(plan.tasks.map((t, i) => [t.id, `n${i}`]));
    ctx.print("graph TD");
    for (const t of plan.tasks) ctx.print(`  ${node.get(t.id)}["${short(t.id).replace(/"/g, "#quot;")}"]`);
    for (const t of plan.tasks) for (const n of t.needs) ctx.print(`  ${node.get(n)} --> ${node.get(t.id)}`);
    return;
  }
  for (const line of treeLines(plan, (t, more) =>
    more.length ? `${short(t)}  ${alsoNeeds(more)}` : short(t),
  ))
    ctx.print(line);
}

async function list(ctx: Ctx): Promise<void> {
  const { plans } = await ctx.client().listPlans();
  const rows = plans.map((p) => ({
    id: p.id,
    title: p.title || null,
    createdAt: p.createdAt,
    submitter: p.submitter,
    tasks: p.tasks.length,
    states: p.states,
  }));
  if (ctx.json) return ctx.printJson({ plans: rows });
  if (rows.length === 0) return ctx.note("no plans");
  ctx.print(
    table(
      ["PLAN", "TASKS", "STATES", "SUBMITTED", "TITLE"],
      rows.map((p) => [
        p.id,
        String(p.tasks),
        Object.entries(p.states)
          .map(([s, n]) => `${n} ${s}`)
          .join(", "),
        p.createdAt,
        dash(p.title),
      ]),
      ctx.style,
    ),
  );
}

const STATUS_JSON = `{"plan":{"id","title","createdAt","submitter"},"tasks":[{"id","state","needs","host","workerId",
   "waitingOn","blockedBy":{"dependency","reason"} or null,"cancelCause":{"dependency"} or null,"reason",
   "parent" (the task that added it, or null),"depth",
   "unschedulable": why no live worker can run it now, or null}],
   "missing":[task ids without a record],
   "conflicts":[{"tasks":[a,b],"heads":[head of a,head of b],"files","foundAt","foundBy"}]}`;

export function planCommand(): Command {
  const plan = new Command("plan").description(
    "plans: many tasks in one document, each waiting for the tasks it needs",
  );
  plan
    .command("submit")
    .description("submit a plan document (YAML/JSON; - reads stdin), all or nothing")
    .argument("<file>", "plan document: {plan?, title?, defaults?, tasks: [{id, needs?, ...task spec}]}")
    .option("--dirty", "for repo: . tasks: ship uncommitted changes too, as a commit on top of HEAD")
    .option("--wait", "wait until every task is terminal; exit 1 if any did not succeed")
    .option("--wait-timeout <duration>", "give up waiting after this long (exit 5)", "24h")
    .option(
      "--unschedulable-timeout <duration>",
      "with --wait: give up (exit 6) once a task no live worker serves stayed so this long; 0 waits forever",
      "60s",
    )
    .addHelpText(
      "after",
      `\n--json output:\n  {"plan","created","tasks":[{"id","created","state"}]}\n  with --wait: {"plan","created","tasks":[STATUS TASK as in \`mesh plan status --help\`]}`,
    )
    .action(run<[string, SubmitOpts]>((ctx, file, o) => submit(ctx, file, o)));
  plan
    .command("status")
    .description(
      "the plan as a tree: each task's state, host, what it waits on or why it is blocked; then its conflicts",
    )
    .argument("<plan>", "plan id")
    .addHelpText("after", `\n--json output:\n  ${STATUS_JSON}`)
    .action(run<[string]>((ctx, id) => status(ctx, id)));
  plan
    .command("graph")
    .description("what needs what: a text tree, or a Mermaid flowchart")
    .argument("<plan>", "plan id")
    .option("--mermaid", "a Mermaid `graph TD` instead of the text tree")
    .addHelpText("after", `\n--json output:\n  {"plan","nodes":[{"id","needs"}],"edges":[{"from","to"}]}`)
    .action(run<[string, { mermaid?: boolean }]>((ctx, id, o) => graph(ctx, id, o)));
  plan
    .command("list")
    .description("every plan, newest first, with its tasks counted by state")
    .addHelpText(
      "after",
      `\n--json output:\n  {"plans":[{"id","title","createdAt","submitter","tasks","states":{"<state>":n}}]}`,
    )
    .action(run<[]>((ctx) => list(ctx)));
  return plan;
}
