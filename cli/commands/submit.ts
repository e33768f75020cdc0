/** `mesh submit <file|->`: validate here (fail fast, exit 2), send the document, optionally wait. */
import { type FileHandle, open } from "node:fs/promises";
import { resolve } from "node:path";
import { Command } from "commander";
// Pure module, imported directly (daemon/index.js would load the whole daemon).
import {
  DEFAULT_SUBMIT_MAX_BYTES,
  formatBytes,
  isMeshError,
  parseTaskDocument,
  validateTaskBatch,
} from "../../daemon/lite.js";
import { type Ctx, parseDurationFlag } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { taskEventLine } from "../events.js";
import { dash, paint, paintState, table } from "../format.js";
import { eventJson, type SubmitJson, submitJson, unschedulableEventJson } from "../json.js";
import { planLocalRepos } from "../local-repos.js";
import { FROM_START, notifyLive, terminalNotifier } from "../notify-osc.js";
import { run } from "../run.js";
import { FETCHED_OK, type FetchJson, fetchLine, fetchOne } from "./fetch.js";
import {
  eachLimited,
  FAILED,
  type Final,
  TERMINAL,
  unschedulableError,
  unschedulableWarning,
  watchUntilTerminal,
} from "../watching.js";

/** Tasks watched at once while waiting: each is one stream on the daemon. */
const WATCH_CONCURRENCY = 16;

function tooLarge(source: string, size: string): CliError {
  return new CliError(
    EXIT.OTHER,
    `${source} is ${size}, over the submit limit of ${formatBytes(DEFAULT_SUBMIT_MAX_BYTES)} (meshd's limits.submitMaxBytes); nothing was submitted. Split the tasks into several files`,
    "RESOURCE_EXHAUSTED",
    { field: "file" },
  );
}

/** Collects a stream, refusing it as soon as it passes `max` bytes. */
async function readLimited(input: AsyncIterable<unknown>, source: string, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of input) {
    size += (c as Buffer).length;
    if (size > max) throw tooLarge(source, `more than ${formatBytes(max)}`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Reads at most the submit limit: a larger input is refused before it is all in memory. */
export async function readInput(file: string): Promise<{ text: string; source: string }> {
  const max = DEFAULT_SUBMIT_MAX_BYTES;
  let handle: FileHandle | undefined;
  try {
    if (file === "-") {
      if (process.stdin.isTTY) process.stderr.write("reading tasks from stdin (end with Ctrl-D)\n");
      return { text: await readLimited(process.stdin, "stdin", max), source: "stdin" };
    }
    handle = await open(file, "r");
    const st = await handle.stat();
    if (st.isFile() && st.size > max) throw tooLarge(file, formatBytes(st.size));
    // Stops one chunk past the limit, even if the file grows or is a pipe (size unknown).
    const stream = handle.createReadStream({ autoClose: false });
    return { text: await readLimited(stream, file, max), source: file };
  } catch (err) {
    if (err instanceof CliError) throw err;
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new CliError(
      EXIT.USAGE,
      `cannot read ${file}: ${why}; give a YAML/JSON task file, or - for stdin`,
      "INVALID_ARGUMENT",
      {
        cause: err,
        field: "file",
      },
    );
  } finally {
    await handle?.close();
  }
}

/** The document's tasks as written (raw objects). */
function parse(text: string, source: string): unknown[] {
  return judged(source, () => parseTaskDocument(text, source));
}

/** All or nothing, exactly as the daemon will judge it, before anything is sent. */
function validate(tasks: unknown[], source: string): number {
  return judged(source, () => validateTaskBatch(tasks).length);
}

function judged<T>(source: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!isMeshError(err)) throw err;
    const msg = err.message.replace(/:\s*$/, "");
    const where = msg.startsWith(`${source}:`) ? msg : `${source}: ${msg}`;
    throw new CliError(EXIT.USAGE, `invalid task spec: ${where}; nothing was submitted`, err.code, {
      cause: err,
      ...(err.field ? { field: err.field } : {}),
    });
  }
}

export interface SubmitOpts {
  dirty?: boolean;
  fetch?: boolean;
  repo?: string;
  wait?: boolean;
  follow?: boolean;
  notify: boolean;
  waitTimeout: string;
  unschedulableTimeout: string;
}

type Row = SubmitJson & Omit<Final, "id" | "state"> & { fetch?: FetchJson | null };

type Opts = SubmitOpts;

async function submit(ctx: Ctx, file: string, opts: Opts): Promise<void> {
  await submitDocument(ctx, opts, () => readInput(file));
}

/**
 * Submit's one path, for a file (`mesh submit`) or a document built from flags (`mesh run`):
 * validated here first (all or nothing), local repos shipped, sent, optionally waited for.
 * `read` runs after the flags are checked.
 */
export async function submitDocument(
  ctx: Ctx,
  opts: Opts,
  read: () => Promise<{ text: string; source: string }>,
): Promise<void> {
  const waitMs = parseDurationFlag(opts.waitTimeout, "--wait-timeout");
  const unschedulableMs = parseDurationFlag(opts.unschedulableTimeout, "--unschedulable-timeout", true);
  const waiting = Boolean(opts.wait || opts.follow);
  if (opts.fetch && !waiting) {
    throw new CliError(
      EXIT.USAGE,
      "--fetch goes with --wait or --follow (it fetches each result as it finishes)",
      "INVALID_ARGUMENT",
      {
        field: "--fetch",
      },
    );
  }
  const { text, source } = await read();
  const tasks = parse(text, source);
  // Tasks on a repo of this machine: checked with placeholders, then shipped, then submitted as mesh:// repos.
  const local = planLocalRepos(tasks, { source, dirty: opts.dirty === true });
  validate(tasks, source);
  const shipped = await local.ship(ctx);
  if (shipped.length) validate(tasks, source);
  const res = await ctx.client().submitTasks(shipped.length ? JSON.stringify({ tasks }) : text, source);
  const submitted = res.results.map(submitJson);
  const fetchInto = new Map<string, string>();
  for (const l of shipped) {
    const id = submitted[l.index]?.id;
    if (id) fetchInto.set(id, l.toplevel);
  }
  const fetched = new Map<string, FetchJson>();

  if (!waiting) {
    if (ctx.json) return ctx.printJson({ tasks: submitted });
    ctx.print(
      table(
        ["ID", "STATE", "NEW"],
        submitted.map((t) => [
          t.id,
          paintState(ctx.style, t.state),
          t.created ? "yes" : "no (already submitted)",
        ]),
        ctx.style,
      ),
    );
    return;
  }

  const created = submitted.filter((t) => t.created).length;
  ctx.note(
    `submitted ${submitted.length} task(s) (${created} new); waiting for them to finish (Ctrl-C stops waiting, not the tasks)`,
  );
  const finals = new Map<string, Final>();
  const notifier = terminalNotifier(opts.notify);
  await eachLimited(submitted, WATCH_CONCURRENCY, async (t) => {
    // A task submitted before (not created now) that already ended is not news.
    const since = TERMINAL.has(t.state) ? { terminal: true, attempt: 0 } : FROM_START;
    const final = await watchUntilTerminal(ctx, t.id, {
      deadlineMs: waitMs,
      unschedulableMs,
      onEvent: (e) => {
        if (notifier) notifyLive(notifier, e, since, submitted.length === 1);
        if (opts.follow) {
          if (ctx.json) ctx.printJson(eventJson(e));
          else ctx.print(taskEventLine(ctx.style, e, true));
        } else if (e.state && !ctx.json) {
          ctx.print(taskEventLine(ctx.style, e, true));
        }
      },
      // A task nobody can run would otherwise wait silently: say so, in every output mode.
      onUnschedulable: (u) => {
        ctx.warn(unschedulableWarning(t.id, u.reason, unschedulableMs));
        if (opts.follow && ctx.json) ctx.printJson(unschedulableEventJson(t.id, u));
      },
    });
    if (final) finals.set(t.id, final);
    if (opts.fetch && final?.state === "succeeded") {
      const r = await fetchOne(ctx, t.id, fetchInto.get(t.id) ?? resolve(opts.repo ?? "."));
      fetched.set(t.id, r);
      if (!ctx.json) ctx.print(fetchLine(r));
    }
  });
  if (notifier && !ctx.signal.aborted && submitted.length > 1) {
    const counts = new Map<string, number>();
    for (const f of finals.values()) counts.set(f.state, (counts.get(f.state) ?? 0) + 1);
    const body = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
    notifier.notify({ title: `mesh: ${finals.size} of ${submitted.length} task(s) ended`, body });
  }
  if (ctx.signal.aborted) {
    throw new CliError(
      EXIT.INTERRUPTED,
      "stopped waiting (interrupted); the tasks keep running: `mesh tasks` shows them",
      "INTERRUPTED",
    );
  }

  const rows = submitted.map((t): Row => {
    const f = finals.get(t.id);
    return {
      ...t,
      state: f?.state ?? t.state,
      attempt: f?.attempt ?? 0,
      workerId: f?.workerId ?? null,
      reason: f?.reason ?? null,
      unschedulable: f?.unschedulable ?? null,
      ...(opts.fetch ? { fetch: fetched.get(t.id) ?? null } : {}),
    };
  });
  if (ctx.json) {
    ctx.printJson(opts.follow ? { type: "summary", tasks: rows } : { tasks: rows });
  } else {
    ctx.print("");
    ctx.print(
      table(
        ["ID", "STATE", "ATTEMPT", "WORKER", "REASON"],
        rows.map((r) => [
          r.id,
          paintState(ctx.style, r.state),
          String(r.attempt),
          dash(r.workerId),
          dash(r.unschedulable ? `unschedulable: ${r.unschedulable}` : r.reason),
        ]),
        ctx.style,
      ),
    );
  }
  const bad = rows.filter((r) => FAILED.has(r.state));
  const stuck = rows.filter((r) => r.unschedulable);
  if (bad.length > 0) {
    const first = bad[0] as Row;
    const alsoStuck = stuck.length > 0 ? `; ${stuck.length} could not run (no live worker serves them)` : "";
    throw new CliError(
      EXIT.TASK_FAILED,
      `${bad.length} of ${rows.length} task(s) did not succeed (${first.id} ${first.state}${first.reason ? `: ${first.reason}` : ""})${alsoStuck}; see \`mesh task ${first.id}\``,
      "TASK_FAILED",
    );
  }
  if (stuck.length > 0) {
    throw unschedulableError(stuck, unschedulableMs);
  }
  const notFetched = [...fetched.values()].filter((f) => !FETCHED_OK.has(f.outcome));
  if (notFetched.length > 0) {
    const f = notFetched[0] as FetchJson;
    throw new CliError(
      EXIT.OTHER,
      `the tasks succeeded, but ${notFetched.length} result(s) were not fetched (${f.id} ${f.outcome}${f.reason ? `: ${f.reason}` : ""}); \`mesh fetch ${f.id}\` tries again`,
      "FETCH_FAILED",
    );
  }
  if (!ctx.json) ctx.note(paint(ctx.style, "green", `all ${rows.length} task(s) succeeded`));
}

export function submitCommand(): Command {
  return addWaitOptions(
    new Command("submit")
      .description("submit one task or a list of tasks from a YAML/JSON file (- reads stdin); all or nothing")
      .argument(
        "<file>",
        "task spec file (YAML or JSON: one task, a list, or {tasks: [...]}), or - for stdin",
      )
      .option(
        "--repo <path>",
        "with --fetch: the repository for tasks not submitted from a local repo (default: .)",
      ),
  )
    .addHelpText(
      "after",
      `
--json output:
  {"tasks":[{"id","created","state"}]}
  with --wait: {"tasks":[{"id","created","state","attempt","workerId","reason","unschedulable"}]}
  with --fetch: each task also has "fetch": FETCH (see \`mesh fetch --help\`) or null
               once every task is terminal or was given up as unschedulable
  repo: . (or ./path) names a repository of this machine: it is shipped through the mesh's bundle
  store (only what the mesh lacks) and the task runs on mesh://<repo id> at that commit; a
  dirty tree is said on stderr ({"warning":{"code":"DIRTY_TREE",...}}) unless --dirty ships it.
  with --follow: one event object per line (see \`mesh watch --help\`), then
                 {"type":"summary","tasks":[...as with --wait]}
  while no live worker can serve a task, stderr gets (in every mode)
    {"warning":{"code":"UNSCHEDULABLE","message","taskId","reason"}}`,
    )
    .action(run<[string, Opts]>((ctx, file, opts) => submit(ctx, file, opts)));
}

/** The flags `mesh submit` and `mesh run` share (how to wait, fetch and notify). */
export function addWaitOptions(cmd: Command): Command {
  return cmd
    .option("--dirty", "for repo: . tasks: ship uncommitted changes too, as a commit on top of HEAD")
    .option(
      "--fetch",
      "with --wait/--follow: fetch each result as mesh/<id> into its repository as it finishes",
    )
    .option(
      "--wait",
      "show state changes until every task is terminal; exit 1 if any failed, died or was cancelled",
    )
    .option("--follow", "like --wait, and stream every event (log lines, agent events)")
    .option("--wait-timeout <duration>", "give up waiting after this long (exit 5)", "24h")
    .option(
      "--no-notify",
      "with --wait/--follow: no terminal notification (OSC 9/777) when tasks end or need attention (also MESH_NOTIFY=0)",
    )
    .option(
      "--unschedulable-timeout <duration>",
      "with --wait/--follow: stop waiting for a task no live worker could serve for this long (exit 6); 0 waits forever",
      "60s",
    );
}
