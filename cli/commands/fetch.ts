/**
 * `mesh fetch <id…|--all>`: finished tasks' results (git bundles in the mesh's store) into a
 * local repository as `mesh/<id>`; `mesh diff <id>`: the change a task made. Both go through
 * the local daemon (FetchResults), which imports into the repository on this machine.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { Command } from "commander";
import { type FetchedResult, taskStateName } from "../../proto/index.js";
import type { Ctx } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { dash, table } from "../format.js";
import { run } from "../run.js";

export interface FetchJson {
  id: string;
  outcome: string;
  branch: string | null;
  base: string | null;
  head: string | null;
  previous: string | null;
  bytes: number;
  reason: string | null;
}

export const FETCHED_OK = new Set(["created", "updated", "unchanged", "hidden"]);

const orNull = (s: string): string | null => s || null;

export function fetchJson(r: FetchedResult): FetchJson {
  return {
    id: r.id,
    outcome: r.outcome,
    branch: orNull(r.branch),
    base: orNull(r.base),
    head: orNull(r.head),
    previous: orNull(r.previous),
    bytes: r.bytes,
    reason: orNull(r.reason),
  };
}

export function fetchLine(r: FetchJson): string {
  if (FETCHED_OK.has(r.outcome))
    return `${r.id}: ${r.outcome} ${r.branch ?? `refs/mesh/fetched/${r.id}`} at ${r.head?.slice(0, 12)}`;
  return `${r.id}: ${r.outcome}${r.reason ? `: ${r.reason}` : ""}`;
}

function local(ctx: Ctx): void {
  if (!ctx.client().isLocal) {
    throw new CliError(
      EXIT.USAGE,
      `results are imported by the daemon on this machine: connect to its Unix socket, not ${ctx.client().target}`,
      "INVALID_ARGUMENT",
      { field: "--daemon" },
    );
  }
}

/** One task's result into `path`'s repository (never throws for the task's own outcome). */
export async function fetchOne(ctx: Ctx, id: string, path: string): Promise<FetchJson> {
  try {
    const res = await ctx.client().fetchResults({ path, ids: [id], all: false, force: false, hidden: false });
    const r = res.results[0];
    return r ? fetchJson(r) : { ...emptyFetch(id), outcome: "failed", reason: "the daemon answered nothing" };
  } catch (err) {
    return { ...emptyFetch(id), outcome: "failed", reason: err instanceof Error ? err.message : String(err) };
  }
}

const emptyFetch = (id: string): FetchJson => ({
  id,
  outcome: "",
  branch: null,
  base: null,
  head: null,
  previous: null,
  bytes: 0,
  reason: null,
});

interface FetchOpts {
  all?: boolean;
  plan?: string;
  repo?: string;
  force?: boolean;
}

/** The plan's succeeded tasks that have a result to fetch; the others are said on stderr. */
async function planResults(ctx: Ctx, plan: string): Promise<string[]> {
  const { tasks } = await ctx.client().getPlan(plan);
  const ids: string[] = [];
  const skipped: string[] = [];
  for (const t of tasks) {
    const state = taskStateName(t.state);
    if (state === "succeeded" && t.result?.bundle?.name) ids.push(t.id);
    else if (state !== "succeeded") skipped.push(`${t.id} ${state}`);
  }
  if (skipped.length > 0) {
    const shown = skipped.slice(0, 5).join(", ");
    ctx.warn({
      code: "NOT_SUCCEEDED",
      message: `${skipped.length} task(s) of plan ${plan} have not succeeded and are not fetched (${shown}${skipped.length > 5 ? ", ..." : ""})`,
    });
  }
  return ids;
}

async function fetchCmd(ctx: Ctx, ids: string[], opts: FetchOpts): Promise<void> {
  const modes = [ids.length > 0, opts.all === true, opts.plan !== undefined].filter(Boolean).length;
  if (modes === 0) {
    throw new CliError(EXIT.USAGE, "name one or more tasks, or --all, or --plan <plan>", "INVALID_ARGUMENT", {
      field: "ids",
    });
  }
  if (modes > 1) {
    throw new CliError(
      EXIT.USAGE,
      "task ids, --all and --plan do not go together: give one of them",
      "INVALID_ARGUMENT",
      { field: opts.plan !== undefined ? "--plan" : "--all" },
    );
  }
  local(ctx);
  if (opts.plan !== undefined) {
    ids = await planResults(ctx, opts.plan);
    if (ids.length === 0) {
      if (ctx.json) return ctx.printJson({ results: [] });
      return ctx.print(`no succeeded task of plan ${opts.plan} has a result to fetch`);
    }
  }
  const res = await ctx.client().fetchResults({
    path: resolve(opts.repo ?? "."),
    ids,
    all: opts.all === true,
    force: opts.force === true,
    hidden: false,
  });
  const rows = res.results.map(fetchJson);
  if (ctx.json) ctx.printJson({ results: rows });
  else if (rows.length === 0) ctx.print("no succeeded task of this repository has a result to fetch");
  else
    ctx.print(
      table(
        ["ID", "OUTCOME", "BRANCH", "HEAD", "REASON"],
        rows.map((r) => [
          r.id,
          r.outcome,
          dash(r.branch),
          dash(r.head?.slice(0, 12) ?? null),
          dash(r.reason),
        ]),
        ctx.style,
      ),
    );
  const bad = rows.filter((r) => !FETCHED_OK.has(r.outcome));
  if (bad.length === 0) return;
  const first = bad[0] as FetchJson;
  const allMissing = bad.every((r) => r.outcome === "not_found");
  throw new CliError(
    allMissing ? EXIT.NOT_FOUND : EXIT.OTHER,
    `${bad.length} of ${rows.length} result(s) not fetched (${first.id} ${first.outcome}${first.reason ? `: ${first.reason}` : ""})`,
    first.outcome === "diverged" ? "DIVERGED" : first.outcome === "not_found" ? "NOT_FOUND" : "FETCH_FAILED",
  );
}

function gitDiff(cwd: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile("git", ["--no-pager", "diff", ...args], { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      err ? rej(err) : res(stdout),
    );
  });
}

async function diffCmd(ctx: Ctx, id: string, opts: { repo?: string; stat?: boolean }): Promise<void> {
  local(ctx);
  const path = resolve(opts.repo ?? ".");
  const res = await ctx.client().fetchResults({ path, ids: [id], all: false, force: false, hidden: true });
  const r = res.results[0] ? fetchJson(res.results[0]) : undefined;
  if (r?.outcome !== "hidden" || !r.base || !r.head) {
    throw new CliError(
      r?.outcome === "not_found" ? EXIT.NOT_FOUND : EXIT.OTHER,
      `no change to show for ${id}: ${r?.reason ?? "the daemon answered nothing"}`,
      r?.outcome === "not_found" ? "NOT_FOUND" : "FETCH_FAILED",
    );
  }
  const diff = await gitDiff(path, [...(opts.stat ? ["--stat"] : []), r.base, r.head]).catch(
    (err: unknown) => {
      throw new CliError(EXIT.OTHER, `git diff failed: ${(err as Error).message}`, "INTERNAL", {
        cause: err,
      });
    },
  );
  if (ctx.json) ctx.printJson({ id, base: r.base, head: r.head, diff });
  else process.stdout.write(diff);
}

export function fetchCommand(): Command {
  return new Command("fetch")
    .description("import finished tasks' results as mesh/<id> branches into the local repository")
    .argument("[ids...]", "task ids")
    .option("--all", "every succeeded task of this repository that has a result")
    .option("--plan <plan>", "every succeeded task of this plan that has a result")
    .option("--repo <path>", "the repository to import into (default: the current folder's)")
    .option("--force", "move a mesh/<id> branch that has diverged from the result")
    .addHelpText(
      "after",
      `
A branch that has commits the result lacks (diverged), or is checked out, is left alone (exit 5)
unless --force; the result is then still at refs/mesh/fetched/<id>. Works while the daemon that
ran the task is gone: results wait in the mesh's bundle store (for two task retentions).

--json output:
  {"results":[FETCH]} with FETCH = {"id","outcome","branch","base","head","previous","bytes","reason"}
  outcome: created | updated | unchanged | diverged | no_result | not_found | failed`,
    )
    .action(run<[string[], FetchOpts]>((ctx, ids, opts) => fetchCmd(ctx, ids, opts)));
}

export function diffCommand(): Command {
  return new Command("diff")
    .description("show the change a finished task made (git diff base..head of its result)")
    .argument("<id>", "task id")
    .option("--repo <path>", "the repository (default: the current folder's)")
    .option("--stat", "only the diffstat")
    .addHelpText(
      "after",
      `
The result is fetched into the hidden ref refs/mesh/fetched/<id> (no branch is touched).

--json output:
  {"id","base","head","diff"}`,
    )
    .action(run<[string, { repo?: string; stat?: boolean }]>((ctx, id, opts) => diffCmd(ctx, id, opts)));
}
