/**
 * The per-task port: a unix socket (0600, in a 0700 folder of the attempt's own) the daemon
 * serves while one attempt runs, for the agent's hook and tools. Requests are JSON lines with
 * the attempt's random token, validated with zod (agent-shim/task-port-protocol.ts); each kind
 * has one handler, so new kinds ("add a task to my plan") are one more entry.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AddTaskRequest,
  firstIssue,
  type LeaseRequest,
  MAX_PORT_LINE,
  type PortResponse,
  portRequestSchema,
} from "../../agent-shim/index.js";
import type { RunContext } from "../claim/index.js";
import { errorMessage, isMeshError } from "../errors.js";
import type { Logger } from "../log.js";

/** What one handler answers (the port adds the request id). */
type Answer<K extends string> = DistributiveOmit<Extract<PortResponse, { kind: K }>, "id">;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** A port serves the kinds its attempt may use; another kind is refused (FAILED_PRECONDITION). */
export interface TaskPortHandlers {
  lease?(req: LeaseRequest): Promise<Answer<"lease">>;
  "add-task"?(req: AddTaskRequest): Promise<Answer<"add-task">>;
}

const NOT_SERVED: Record<keyof TaskPortHandlers, string> = {
  lease: "this task's port serves no file leases (the task has owns, or no repository)",
  "add-task": "this task cannot add tasks (it is not part of a plan, or this daemon serves no plans)",
};

export interface OpenTaskPort {
  /** The socket's path. */
  path: string;
  /** The token every request must carry. */
  token: string;
  /** Stops serving and removes the socket; idempotent. */
  close(): Promise<void>;
}

/** Opens the port for one attempt (the Claude runner calls it for tasks that need one). */
export interface TaskPortOpener {
  /** `uses`: which kinds to serve (default: file leases only). */
  open(ctx: RunContext, uses?: { leases: boolean; addTask: boolean }): Promise<OpenTaskPort>;
  /** Whether `add-task` (delegation) can be served now. */
  servesAddTask?(): boolean;
}

/** Unix socket paths are limited to about 107 bytes; a longer scratch dir uses a private tmp folder. */
const MAX_SOCKET_PATH = 100;

export async function serveTaskPort(opts: {
  scratchDir: string;
  handlers: TaskPortHandlers;
  log?: Logger;
}): Promise<OpenTaskPort> {
  let dir = join(opts.scratchDir, "port");
  let own = false;
  if (join(dir, "s.sock").length > MAX_SOCKET_PATH) {
    dir = await mkdtemp(join(tmpdir(), "mesh-port-"));
    own = true;
  } else await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const path = join(dir, "s.sock");
  await rm(path, { force: true });
  const token = randomBytes(24).toString("base64url");
  const want = Buffer.from(token);
  const sockets = new Set<Socket>();

  const answer = async (line: string): Promise<Record<string, unknown>> => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return { id: null, ok: false, error: { code: "INVALID_ARGUMENT", message: "the request is not JSON" } };
    }
    const id =
      typeof value === "object" && value !== null && "id" in value ? (value as { id: unknown }).id : null;
    const safeId = typeof id === "string" || typeof id === "number" ? id : null;
    const parsed = portRequestSchema.safeParse(value);
    if (!parsed.success)
      return {
        id: safeId,
        ok: false,
        error: { code: "INVALID_ARGUMENT", message: firstIssue(parsed.error) },
      };
    const req = parsed.data;
    const got = Buffer.from(req.token);
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return {
        id: req.id,
        ok: false,
        error: { code: "PERMISSION_DENIED", message: "wrong token for this port" },
      };
    const handler = opts.handlers[req.kind] as ((r: typeof req) => Promise<object>) | undefined;
    if (!handler)
      return {
        id: req.id,
        ok: false,
        error: { code: "FAILED_PRECONDITION", message: NOT_SERVED[req.kind] },
      };
    try {
      return { id: req.id, ...(await handler(req)) };
    } catch (err) {
      if (isMeshError(err)) return { id: req.id, ok: false, error: { code: err.code, message: err.message } };
      opts.log?.warn({ kind: req.kind, err: errorMessage(err) }, "task port request failed");
      return { id: req.id, ok: false, error: { code: "UNAVAILABLE", message: errorMessage(err) } };
    }
  };

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.setEncoding("utf8");
    let buf = "";
    sock.on("data", (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl !== -1; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === "") continue;
        void answer(line).then((res) => {
          if (!sock.destroyed) sock.write(`${JSON.stringify(res)}\n`);
        });
      }
      if (buf.length > MAX_PORT_LINE) sock.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(path, 0o600);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(own ? dir : path, { recursive: true, force: true });
    })();
    return closing;
  };
  return { path, token, close };
}
