/**
 * The per-task port of an attempt of a task without `owns`: `lease(path)` takes a first-come
 * file lease for it. Its leases are renewed with the attempt's heartbeat and released when the
 * attempt ends (the port closes), whatever the outcome.
 */
import { posix } from "node:path";
import type { FileLeases, RunContext } from "../claim/index.js";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { type OpenTaskPort, serveTaskPort, type TaskPortOpener } from "./task-port.js";

export interface FileLeasePortsOptions {
  /** The lease store; late-bound because runners exist before the daemon connects. */
  leases: () => FileLeases | undefined;
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

  async open(ctx: RunContext): Promise<OpenTaskPort> {
    const leases = this.opts.leases();
    if (!leases)
      throw new MeshError("UNAVAILABLE", "file leases are not ready (the daemon is not connected)");
    const repo = ctx.spec.repo ?? "";
    const holder = { taskId: ctx.spec.id, attempt: ctx.attempt, workerId: ctx.workerId };
    const held = new Set<string>();
    const log = this.opts.log?.child({ taskId: holder.taskId, attempt: holder.attempt });
    const port = await serveTaskPort({
      scratchDir: ctx.scratchDir,
      ...(log ? { log } : {}),
      handlers: {
        lease: async (req) => {
          const path = leasePath(req.path);
          const a = await leases.acquire(repo, path, holder);
          if (a.granted) {
            held.add(path);
            return { ok: true, kind: "lease", granted: true };
          }
          log?.info({ path, holder: a.holder.taskId }, "file lease refused: another running task holds it");
          return { ok: true, kind: "lease", granted: false, holder: a.holder };
        },
      },
    });
    const renew = setInterval(() => {
      if (held.size === 0) return;
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
          await leases
            .release(repo, held, holder)
            .catch((err) => log?.warn({ err: errorMessage(err) }, "file lease release failed; they expire"));
        })();
        return closing;
      },
    };
  }
}
