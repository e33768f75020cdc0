/** `mesh tasks` (filtered list) and `mesh task <id>` (one task in detail). */
import { Command, InvalidArgumentError } from "commander";
import { type TaskState, taskStateFromName } from "../../proto/index.js";
import type { Ctx } from "../context.js";
import { ago, dash, labelsText, paintState, table } from "../format.js";
import { type TaskJson, type TaskPlanJson, taskDetailJson, taskJson } from "../json.js";
import { run } from "../run.js";

const STATE_NAMES = ["waiting", "queued", "claimed", "running", "succeeded", "failed", "cancelled", "dead"];

function collectStates(value: string, prev: TaskState[] = []): TaskState[] {
  const out = [...prev];
  for (const name of value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const s = taskStateFromName(name);
    if (s === undefined)
      throw new InvalidArgumentError(`"${name}" is not a task state; use ${STATE_NAMES.join(", ")}`);
    out.push(s);
  }
  return out;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`"${value}" is not a whole number above 0`);
  return n;
}

interface ListOpts {
  state?: TaskState[];
  pool?: string;
  worker?: string;
  limit?: number;
  plan?: string;
}

function note(t: TaskJson): string {
  if (t.parked) return `parked: account ${t.parked.account} at its usage limit until ${t.parked.until}`;
  return dash(t.unschedulable ? `unschedulable: ${t.unschedulable}` : (t.reason ?? t.title));
}

async function list(ctx: Ctx, o: ListOpts): Promise<void> {
  const { tasks, unreadable } = await ctx.client().listTasks({
    states: o.state ?? [],
    pool: o.pool ?? "",
    workerId: o.worker ?? "",
    limit: o.limit ?? 0,
    plan: o.plan ?? "",
  });
  const rows = tasks.map(taskJson);
  const bad = unreadable.map((u) => ({ key: u.key, revision: u.revision, reason: u.reason }));
  if (ctx.json) return ctx.printJson({ tasks: rows, unreadable: bad });
  // Always said (also when stderr is not a terminal): the list is incomplete.
  if (bad.length > 0) {
    process.stderr.write(
      `warning: ${bad.length} task record${bad.length === 1 ? "" : "s"} could not be read and ${bad.length === 1 ? "is" : "are"} left out:\n${bad.map((u) => `  ${u.reason}\n`).join("")}`,
    );
  }
  if (rows.length === 0) return ctx.note("no tasks match");
  ctx.print(
    table(
      ["ID", "STATE", "POOL", "ATTEMPT", "WORKER", "UPDATED", "NOTE"],
      rows.map((t) => [
        t.id,
        paintState(ctx.style, t.state),
        t.pool,
        attemptCell(t),
        dash(t.workerId),
        ago(t.updatedAt),
        note(t),
      ]),
      ctx.style,
    ),
  );
}

/**
 * `2/3`: the attempt and the budget. Attempts that do not count against it (handed back at a
 * stop, parked on a quota) can take the number past the budget: then the counted failures show.
 */
function attemptCell(t: TaskJson): string {
  if (t.attempt <= t.maxAttempts) return `${t.attempt}/${t.maxAttempts}`;
  return `${t.attempt} (${t.countedFailures}/${t.maxAttempts} counted)`;
}

/** The human detail view, shared with cancel/retry (`mesh task` adds where it stands in its plan). */
export function printTask(ctx: Ctx, t: TaskJson, p?: TaskPlanJson): void {
  const lines: Array<[string, string]> = [
    ["id", t.id],
    ["title", dash(t.title)],
    [
      "state",
      `${paintState(ctx.style, t.state)}${t.cancelRequested && t.state !== "cancelled" ? " (cancel requested)" : ""}`,
    ],
    ["attempt", `${t.attempt} of ${t.maxAttempts} (${t.countedFailures} counted failure(s))`],
    ["pool", t.pool],
    ["labels", labelsText(t.labels)],
    ["runner", t.runner],
    ...planLines(p),
    ["worker", t.workerId ? `${t.workerId} on ${dash(t.host)}` : "-"],
    ["submitted", `${t.submittedAt} (${ago(t.submittedAt)})`],
    ["updated", `${t.updatedAt} (${ago(t.updatedAt)})`],
  ];
  if (t.finishedAt) lines.push(["finished", t.finishedAt]);
  if (t.notBefore) lines.push(["not before", t.notBefore]);
  if (t.parked)
    lines.push([
      "parked",
      `account ${t.parked.account} at its usage limit until ${t.parked.until}: ${t.parked.reason}`,
    ]);
  if (t.reason) lines.push(["reason", t.reason]);
  if (t.unschedulable) lines.push(["unschedulable", t.unschedulable]);
  const r = t.result;
  if (r) {
    if (r.summary) lines.push(["summary", r.summary]);
    if (r.costUsd !== null) lines.push(["cost", `$${r.costUsd.toFixed(4)}`]);
    if (r.tokens) {
      lines.push([
        "tokens",
        `in ${r.tokens.input}, out ${r.tokens.output}, cache read ${r.tokens.cacheRead}, cache write ${r.tokens.cacheCreation}`,
      ]);
    }
    if (r.turns !== null) lines.push(["turns", String(r.turns)]);
    if (r.model) lines.push(["model", r.model]);
    if (r.sessionId) lines.push(["session", r.sessionId]);
    if (r.branch) lines.push(["branch", r.branch]);
    if (r.headCommit) lines.push(["head", r.headCommit]);
    if (r.ownsViolations) {
      const more = r.ownsViolationsOmitted > 0 ? ` and ${r.ownsViolationsOmitted} more` : "";
      lines.push(["outside owns", `${r.ownsViolations.join(", ")}${more} (ownsViolation: report)`]);
    }
    if (r.durationMs !== null) lines.push(["duration", `${(r.durationMs / 1000).toFixed(1)}s`]);
  }
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  for (const [k, v] of lines) ctx.print(`${`${k}:`.padEnd(width)}  ${v}`);
  if (t.attempts.length > 0) {
    ctx.print("");
    ctx.print(
      table(
        ["#", "WORKER", "HOST", "OUTCOME", "EXIT", "STARTED", "ENDED", "REASON"],
        t.attempts.map((a) => [
          String(a.attempt),
          a.workerId,
          a.host,
          dash(a.outcome),
          a.exitCode === null ? "-" : String(a.exitCode),
          dash(a.startedAt ?? a.claimedAt),
          dash(a.endedAt),
          dash(a.reason),
        ]),
        ctx.style,
      ),
    );
  }
}

function planLines(p: TaskPlanJson | undefined): Array<[string, string]> {
  if (!p?.plan) return [];
  const lines: Array<[string, string]> = [
    ["plan", p.plan],
    ["needs", p.needs.length ? p.needs.join(", ") : "-"],
  ];
  // The reason names the need: "dependency <id> failed: ...".
  if (p.blockedBy) lines.push(["blocked", p.blockedBy.reason]);
  if (p.waitingOn.length) lines.push(["waits on", p.waitingOn.join(", ")]);
  return lines;
}

async function show(ctx: Ctx, id: string): Promise<void> {
  const { task } = await ctx.client().getTask(id);
  if (!task) throw new Error(`the daemon answered GetTask(${id}) without a task`);
  const detail = taskDetailJson(task);
  if (ctx.json) return ctx.printJson({ task: detail });
  printTask(ctx, taskJson(task), detail);
}

const TASK_FIELDS = `{"id","title","state","pool","labels","runner","attempt","maxAttempts","countedFailures",
   "workerId","host","cancelRequested","submittedAt","updatedAt","finishedAt","notBefore","reason",
   "unschedulable","parked","revision",
   "attempts":[{"attempt","workerId","host","claimedAt","startedAt","endedAt","outcome","reason","exitCode","signal"}],
   "result":{"summary","costUsd","tokens":{"input","output","cacheRead","cacheCreation"},"turns","sessionId",
             "branch","headCommit","durationMs","model","ownsViolations","ownsViolationsOmitted"} or null}
  absent values are null; states: ${STATE_NAMES.join(", ")}`;

export function tasksCommand(): Command {
  return new Command("tasks")
    .description("list tasks across the mesh, newest submission first (with --limit: newest change first)")
    .option(
      "--state <states>",
      `only these states, comma-separated or repeated (${STATE_NAMES.join(", ")})`,
      collectStates,
    )
    .option("--pool <pool>", "only this pool")
    .option("--plan <plan>", "only the tasks of this plan (see `mesh plan status` for its tree)")
    .option("--worker <id|name>", "only tasks run (in any attempt) by this worker id or worker name")
    .option(
      "--limit <n>",
      "the n most recently changed tasks, newest change first, read without the whole task bucket (with --state queued: from the queue's doorbells and the index of parked tasks, so tasks no live worker serves are listed too; over a backlog, from the bucket's newest writes)",
      positiveInt,
    )
    .addHelpText(
      "after",
      `\n--json output:\n  {"tasks":[TASK],"unreadable":[{"key","revision","reason"}]} where TASK is\n  ${TASK_FIELDS}\n  "unreadable": records in the tasks bucket that could not be read (left out of "tasks"; also\n  reported on stderr without --json)`,
    )
    .action(run<[ListOpts]>((ctx, o) => list(ctx, o)));
}

export function taskCommand(): Command {
  return new Command("task")
    .description("show one task: state, attempts, result")
    .argument("<id>", "task id")
    .addHelpText(
      "after",
      `\n--json output:\n  {"task":TASK} where TASK is as in \`mesh tasks --help\`, plus its plan: "plan" (null when none),\n  "needs", "waitingOn" (needs not succeeded while waiting), "blockedBy":{"dependency","reason"} or null,\n  "cancelCause":{"dependency"} or null; and "record": the daemon's full record (its fields are not\n  covered by the stability promise)`,
    )
    .action(run<[string]>((ctx, id) => show(ctx, id)));
}

export { TASK_FIELDS };
