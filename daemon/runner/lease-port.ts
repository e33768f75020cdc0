/**
 * The per-task port of an attempt: for a task without `owns`, `lease(path)` takes a first-come
 * file lease for it (renewed with the attempt's heartbeat and released when the attempt ends,
 * the port closing, whatever the outcome); for a task of a plan, `add-task` adds a task to its
 * plan (delegation), each answer also an event of the task (`delegated`, `delegate_refused`).
 */
import { posix } from "node:path";
import type { FileLeases, RunContext } from "../claim/index.js";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { type AddTaskFn, addTaskHandler } from "./delegate-port.js";
import { type OpenTaskPort, serveTaskPort, type TaskPortOpener } from "./task-port.js";

export type { AddTaskFn };

/** What an attempt's port serves. */
export interface PortUses {
  leases: boolean;
  addTask: boolean;
}

export interface FileLeasePortsOptions {
  /** The lease store; late-bound because runners exist before the daemon connects. */
  leases: () => FileLeases | undefined;
  /** Delegation; late-bound like `leases` (undefined: this daemon serves no plans). */
  addTask?: () => AddTaskFn | undefined;
  renewMs: number;
  log?: Logger;
}

/** A repository-relative path in one written form, or INVALID_ARGUMENT naming `path`. */
export function leasePath(p: string): string {
  const n = posix.normalize(p);
  if (p.startsWith("/") || n === ".." || n.startsWith("../") || n === ".")
    throw new MeshError("INVALID_ARGUMENT", `path: "${p}" is not a path inside the repository`, {
      field: "path",
    });
  return n.replace(/\/+$/, "");
}

export class FileLeasePorts implements TaskPortOpener {
  constructor(private readonly opts: FileLeasePortsOptions) {}

  /** Whether this daemon can serve `add-task` now. */
  servesAddTask(): boolean {
    return this.opts.addTask?.() !== undefined;
  }

  async open(ctx: RunContext, uses: PortUses = { leases: true, addTask: false }): Promise<OpenTaskPort> {
    const leases = uses.leases ? this.opts.leases() : undefined;
    if (uses.leases && !leases)
      throw new MeshError("UNAVAILABLE", "file leases are not ready (the daemon is not connected)");
    const addTask = uses.addTask ? this.opts.addTask?.() : undefined;
    const repo = ctx.spec.repo ?? "";
    const holder = { taskId: ctx.spec.id, attempt: ctx.attempt, workerId: ctx.workerId };
    const held = new Set<string>();
    const log = this.opts.log?.child({ taskId: holder.taskId, attempt: holder.attempt });
    const port = await serveTaskPort({
      scratchDir: ctx.scratchDir,
      ...(log ? { log } : {}),
      handlers: {
        ...(addTask ? { "add-task": addTaskHandler(ctx, addTask, log) } : {}),
        ...(leases
          ? {
              lease: async (req) => {
                const path = leasePath(req.path);
                const a = await leases.acquire(repo, path, holder);
                if (a.granted) {
                  held.add(path);
                  return { ok: true, kind: "lease", granted: true };
                }
                log?.info(
                  { path, holder: a.holder.taskId },
                  "file lease refused: another running task holds it",
                );
                return { ok: true, kind: "lease", granted: false, holder: a.holder };
              },
            }
          : {}),
      },
    });
    const renew = setInterval(() => {
      if (held.size === 0 || !leases) return;
      leases
        .renew(repo, held, holder)
        .catch((err) => log?.warn({ err: errorMessage(err) }, "file lease renewal failed"));
    }, this.opts.renewMs);
    let closing: Promise<void> | undefined;
    return {
      path: port.path,
      token: port.token,
      close: () => {
        closing ??= (async () => {
          clearInterval(renew);
          await port.close();
          if (!leases || held.size === 0) return;
          await leases
            .release(repo, held, holder)
            .catch((err) => log?.warn({ err: errorMessage(err) }, "file lease release failed; they expire"));
        })();
        return closing;
      },
    };
  }
}
