/**
 * `repo: .` (or `./x`, `../x`): a repository of the submitting machine. The CLI resolves the
 * path (against the spec file's folder; stdin: the current folder), has the local daemon ship
 * what the mesh lacks (ShipRepo), and submits the task as `repo: mesh://<repo id>` at the
 * shipped commit, so no worker ever sees a path of this machine. `dirty: true` in a task, or
 * `mesh submit --dirty`, ships uncommitted changes as a commit on top of HEAD; without it a
 * dirty tree is said on stderr and only HEAD is shipped.
 */
import { dirname, resolve } from "node:path";
import type { ShipRepoResponse } from "../proto/index.js";
import type { Ctx } from "./context.js";
import { CliError, EXIT } from "./errors.js";

/** Same rule as the daemon's repo syntax (daemon/tasks/repo-syntax.ts isSubmitterPath). */
const isSubmitterPath = (repo: unknown): repo is string =>
  typeof repo === "string" && /^\.\.?(\/|$)/.test(repo);

const PLACEHOLDER_REPO = `mesh://${"0".repeat(40)}`;
const PLACEHOLDER_REF = "0".repeat(40);

export interface LocalTask {
  /** Index in the document. */
  index: number;
  /** The shipped repository's top level (where `--fetch` imports the result). */
  toplevel: string;
}

interface Pending {
  index: number;
  task: Record<string, unknown>;
  path: string;
  dirty: boolean;
  ref: string;
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

function usage(message: string, field: string): CliError {
  return new CliError(
    EXIT.USAGE,
    `invalid task spec: ${message}; nothing was submitted`,
    "INVALID_ARGUMENT",
    {
      field,
    },
  );
}

/**
 * Takes the tasks that name a local repo out of `tasks` (in place: placeholders that validate,
 * so the rest of each spec is checked before anything is shipped). `ship()` then ships them and
 * writes the real `mesh://` repo and commit.
 */
export function planLocalRepos(
  tasks: unknown[],
  opts: { source: string; dirty: boolean },
): { pending: Pending[]; ship(ctx: Ctx): Promise<LocalTask[]> } {
  const baseDir = opts.source === "stdin" ? process.cwd() : dirname(resolve(opts.source));
  const pending: Pending[] = [];
  tasks.forEach((t, index) => {
    if (!isObject(t)) return;
    const field = tasks.length > 1 ? `tasks[${index}]` : "";
    const at = (k: string) => (field ? `${field}.${k}` : k);
    const dirty = t.dirty;
    if (dirty !== undefined && typeof dirty !== "boolean")
      throw usage(`${at("dirty")}: must be true or false`, at("dirty"));
    if (!isSubmitterPath(t.repo)) {
      if (dirty !== undefined)
        throw usage(
          `${at("dirty")}: only with a repo of this machine (repo: . or ./path), which mesh submit ships`,
          at("dirty"),
        );
      return;
    }
    const ref = t.ref;
    if (
      ref !== undefined &&
      (typeof ref !== "string" || !/^[A-Za-z0-9._/@{}^~+-]+$/.test(ref) || ref.startsWith("-"))
    )
      throw usage(`${at("ref")}: not a branch, tag or commit name`, at("ref"));
    delete t.dirty;
    // A ref of the local repo is resolved by the daemon that ships it.
    pending.push({
      index,
      task: t,
      path: resolve(baseDir, t.repo),
      dirty: opts.dirty || dirty === true,
      ref: ref ?? "",
    });
    t.repo = PLACEHOLDER_REPO;
    t.ref = PLACEHOLDER_REF;
  });
  return {
    pending,
    async ship(ctx: Ctx): Promise<LocalTask[]> {
      if (pending.length === 0) return [];
      const client = ctx.client();
      if (!client.isLocal) {
        throw usage(
          `repo ${String(pending[0]?.path)}: a repo of this machine is shipped by the daemon on this machine; connect to it (its Unix socket, not ${client.target})`,
          "repo",
        );
      }
      const shipped = new Map<string, ShipRepoResponse>();
      const out: LocalTask[] = [];
      for (const p of pending) {
        const ref = p.ref;
        const key = `${p.path}\0${ref}\0${p.dirty}`;
        let r = shipped.get(key);
        if (!r) {
          try {
            r = await client.shipRepo({ path: p.path, ref, dirty: p.dirty });
          } catch (err) {
            // Over a limit, or not a repository: the input is what is wrong, and nothing was submitted.
            if (
              err instanceof CliError &&
              (err.code === "RESOURCE_EXHAUSTED" || err.code === "INVALID_ARGUMENT")
            ) {
              throw new CliError(EXIT.USAGE, `${err.message}; nothing was submitted`, err.code, {
                cause: err,
                field: err.field ?? "repo",
              });
            }
            throw err;
          }
          shipped.set(key, r);
          if (r.dirty && !r.dirtyShipped) {
            ctx.warn({
              code: "DIRTY_TREE",
              message: `${r.toplevel} has uncommitted changes that are not shipped (only HEAD ${r.head.slice(0, 12)} is): commit them, or pass --dirty (or dirty: true in the task) to ship them`,
            });
          }
          ctx.note(
            r.uploaded
              ? `shipped ${r.toplevel} at ${r.commit.slice(0, 12)}: ${r.bytes} bytes${r.requires.length ? ` on top of ${r.requires.length} commit(s) the mesh has` : ""}`
              : `the mesh has ${r.toplevel} at ${r.commit.slice(0, 12)} already`,
          );
        }
        p.task.repo = `mesh://${r.repoId}`;
        p.task.ref = r.commit;
        out.push({ index: p.index, toplevel: r.toplevel });
      }
      return out;
    },
  };
}
