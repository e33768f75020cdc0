/** The hook's side of the per-task port: one request, one answer line, bounded in time. */
import { randomUUID } from "node:crypto";
import { createConnection } from "node:net";
import {
  firstIssue,
  type LeaseHolder,
  MAX_PORT_LINE,
  type PortResponse,
  portResponseSchema,
  TASK_PORT_PROTOCOL_VERSION,
} from "./task-port-protocol.js";

export type LeaseAnswer = { granted: true } | { granted: false; holder: LeaseHolder };

export function askPort(
  socket: string,
  request: Record<string, unknown>,
  timeoutMs: number,
): Promise<PortResponse> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let buf = "";
    const done = (err: Error | undefined, res?: PortResponse): void => {
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(res as PortResponse);
    };
    const timer = setTimeout(
      () => done(new Error(`the task port did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    conn.setEncoding("utf8");
    conn.on("error", (err) => done(new Error(`cannot reach the task port: ${err.message}`)));
    conn.on("connect", () => conn.write(`${JSON.stringify(request)}\n`));
    conn.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_PORT_LINE) return done(new Error("the task port's answer is too long"));
      const nl = buf.indexOf("\n");
      if (nl === -1) return;
      let value: unknown;
      try {
        value = JSON.parse(buf.slice(0, nl));
      } catch {
        return done(new Error("the task port answered something that is not JSON"));
      }
      const res = portResponseSchema.safeParse(value);
      if (!res.success) return done(new Error(`the task port's answer is invalid: ${firstIssue(res.error)}`));
      done(undefined, res.data);
    });
    conn.on("end", () => done(new Error("the task port closed the connection without an answer")));
  });
}

export async function askLease(
  socket: string,
  token: string,
  path: string,
  timeoutMs: number,
): Promise<LeaseAnswer> {
  const id = randomUUID();
  const res = await askPort(
    socket,
    { v: TASK_PORT_PROTOCOL_VERSION, id, token, kind: "lease", path },
    timeoutMs,
  );
  if (!res.ok)
    throw new Error(`the task port refused the lease request: ${res.error.code}: ${res.error.message}`);
  if (res.id !== id) throw new Error("the task port answered another request");
  if (res.kind !== "lease") throw new Error("the task port answered another kind of request");
  return res.granted ? { granted: true } : { granted: false, holder: res.holder };
}
