/**
 * The HTTP side's request handler: the hono routes behind @hono/node-server's adapter. The
 * server (http-server.ts) loads this module at its first request, so an idle daemon nobody
 * scrapes never loads hono, its node adapter or the fetch classes (Request, Response) it uses.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { Logger } from "pino";
import { buildApp, type HttpRoutes } from "./routes.js";

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function requestHandler(routes: HttpRoutes, opts: { token?: string; log: Logger }): RequestHandler {
  const app = buildApp(routes, opts);
  // overrideGlobalObjects: false leaves the process' global Request/Response alone.
  return getRequestListener(app.fetch, { overrideGlobalObjects: false });
}
