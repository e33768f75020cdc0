/**
 * The daemon's HTTP routes (hono): /healthz and /readyz always open; /metrics and /sd behind a
 * bearer token when one is configured (Prometheus sends it with `authorization.credentials_file`).
 */
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import { errorMessage } from "../../errors.js";
import { type DashboardOptions, mountDashboard } from "./dashboard.js";
import type { TargetGroup } from "./sd.js";

export interface Readiness {
  ready: boolean;
  /** Each check by name: ok, or why not. */
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface HttpRoutes {
  /** Prometheus exposition text; absent when the daemon runs without MeshMetrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  readiness(): Promise<Readiness>;
  /** Prometheus HTTP service discovery: one target group per live daemon. */
  targets(): Promise<TargetGroup[]>;
  /** The web dashboard (/ui, /api/...); absent: not served. */
  dashboard?: Omit<DashboardOptions, "readToken">;
}

export function buildApp(routes: HttpRoutes, opts: { token?: string; log: Logger }): Hono {
  const app = new Hono();
  const guard = opts.token
    ? bearerAuth({ token: opts.token, realm: "agent-mesh" })
    : async (_c: unknown, next: () => Promise<void>) => next();

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const r = await routes.readiness();
    return c.json(r, r.ready ? 200 : 503);
  });

  app.get("/metrics", guard, async (c) => {
    if (!routes.metrics) return c.json({ error: "this daemon collects no metrics" }, 404);
    const { contentType, body } = await routes.metrics();
    return c.body(body, 200, { "content-type": contentType });
  });

  app.get("/sd", guard, async (c) => c.json(await routes.targets()));

  if (routes.dashboard)
    mountDashboard(app, { ...routes.dashboard, ...(opts.token ? { readToken: opts.token } : {}) });

  app.notFound((c) => c.json({ error: "not found: try /ui, /metrics, /healthz, /readyz or /sd" }, 404));
  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse(); // e.g. 401 from bearerAuth
    opts.log.warn({ err: errorMessage(err), path: c.req.path }, "HTTP request failed");
    return c.json({ error: errorMessage(err) }, 500);
  });
  return app;
}
