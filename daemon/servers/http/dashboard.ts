/**
 * The web dashboard on the daemon's HTTP side: `/ui` (one static page from the package, no CDN,
 * no build step), JSON (`/api/overview`: no prompts, env or commands), a server-sent event stream
 * (`/api/events`: the overview every half second and on each change, and the mesh's events as they
 * happen), and two write actions (`POST /api/tasks/:id/cancel|retry`).
 *
 * Reads are open unless the daemon has a read token (`http.tokenFile`); then they need it, as a
 * bearer header or, for EventSource which cannot send one, `?token=`. Writes always need the
 * write token (`http.writeTokenFile`), as a bearer header only (a page on another origin cannot
 * set it, so no cross-site form can cancel a task); without one configured they are refused.
 */
import { timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Context, Hono, Next } from "hono";
import { streamSSE } from "hono/streaming";
import { type MeshApi, type Overview, overview } from "../../api/index.js";
import { errorMessage, isMeshError } from "../../errors.js";

export interface DashboardOptions {
  api: MeshApi;
  /** Host names (besides IP literals and localhost) requests may name: the advertised URLs' hosts. */
  hosts?: readonly string[];
  /** The read token (http.tokenFile), when reads need one. */
  readToken?: string;
  /** The write token (http.writeTokenFile); none: write actions are refused. */
  writeToken?: string;
  /** How often the event stream sends the overview; default 500 ms (views promise at most 2 s stale). */
  refreshMs?: number;
}

const PAGE_NAME = join("ui", "dashboard.html");

/** The page, found by walking up from this module to the package root (src and dist alike). */
function pagePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, PAGE_NAME);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error(`${PAGE_NAME} is missing from the package`);
}

function sameToken(given: string | undefined, want: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

const bearerOf = (c: Context): string | undefined => {
  const h = c.req.header("authorization");
  const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null;
  return m?.[1]?.trim();
};

/** MeshError codes as HTTP statuses. */
function httpStatus(code: string): 400 | 403 | 404 | 409 | 503 | 500 {
  switch (code) {
    case "INVALID_ARGUMENT":
      return 400;
    case "NOT_FOUND":
      return 404;
    case "FAILED_PRECONDITION":
    case "CONFLICT":
      return 409;
    case "PERMISSION_DENIED":
      return 403;
    case "UNAVAILABLE":
      return 503;
    default:
      return 500;
  }
}

export async function buildOverview(api: MeshApi): Promise<Overview> {
  const [list, workers] = await Promise.all([api.listTasks(), api.listWorkers()]);
  return overview(list.tasks, workers);
}

export function mountDashboard(app: Hono, o: DashboardOptions): void {
  const refreshMs = o.refreshMs ?? 500;
  let page: Promise<string> | undefined;

  // DNS rebinding: a page of another site whose name now points at 127.0.0.1 sends its own Host.
  const hostOk = (c: Context): boolean => {
    const h = (c.req.header("host") ?? "")
      .toLowerCase()
      .replace(/:\d+$/, "")
      .replace(/^\[|\]$/g, "");
    return (
      h === "localhost" ||
      h === hostname().toLowerCase() ||
      isIP(h) !== 0 ||
      (o.hosts ?? []).some((x) => x.toLowerCase() === h)
    );
  };
  const badHost = (c: Context) =>
    c.json(
      {
        error: `the dashboard answers an IP address, localhost, this machine's name or a name in http.advertise, not ${c.req.header("host") ?? "(none)"}: add that name to http.advertise`,
      },
      403,
    );
  app.use("/ui", async (c, next) => (hostOk(c) ? next() : badHost(c)));
  app.use("/api/*", async (c, next) => (hostOk(c) ? next() : badHost(c)));

  const read = async (c: Context, next: Next) => {
    if (!o.readToken) return next();
    const given = bearerOf(c) ?? c.req.query("token");
    if (sameToken(given, o.readToken) || (o.writeToken && sameToken(given, o.writeToken))) return next();
    return c.json(
      { error: "this daemon needs its read token (http.tokenFile): Authorization: Bearer <token>" },
      401,
    );
  };
  const write = async (c: Context, next: Next) => {
    if (!o.writeToken)
      return c.json(
        {
          error: "write actions are off on this daemon: set http.writeTokenFile to enable them",
          code: "PERMISSION_DENIED",
        },
        403,
      );
    if (!sameToken(bearerOf(c), o.writeToken))
      return c.json(
        {
          error: "a write action needs the write token: Authorization: Bearer <http.writeTokenFile's token>",
          code: "UNAUTHENTICATED",
        },
        401,
        { "www-authenticate": 'Bearer realm="agent-mesh"' },
      );
    return next();
  };

  app.get("/ui", async (c) => {
    page ??= readFile(pagePath(), "utf8");
    return c.html(await page, 200, {
      // Everything the page needs is itself: no other origin may be loaded or framed.
      "content-security-policy":
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    });
  });

  app.get("/api/overview", read, async (c) => c.json(await buildOverview(o.api)));

  for (const action of ["cancel", "retry"] as const) {
    app.post(`/api/tasks/:id/${action}`, write, async (c) => {
      try {
        const v = await o.api[action](c.req.param("id") ?? "");
        return c.json({ id: v.record.id, state: v.record.state, status: v.status });
      } catch (err) {
        return failure(c, err);
      }
    });
  }

  app.get("/api/events", read, (c) =>
    streamSSE(c, async (stream) => {
      const stop = new AbortController();
      stream.onAbort(() => stop.abort());
      let sending = false;
      const send = async () => {
        if (sending || stop.signal.aborted) return;
        sending = true;
        try {
          const ov = await buildOverview(o.api);
          await stream.writeSSE({
            event: "overview",
            data: JSON.stringify({ at: new Date().toISOString(), ...ov }),
          });
        } catch {
          // NATS away: the next tick tries again
        } finally {
          sending = false;
        }
      };
      const events = (async () => {
        try {
          for await (const e of o.api.watchMesh(stop.signal)) {
            await stream.writeSSE({ event: "mesh", data: JSON.stringify(e) });
            void send();
          }
        } catch {
          // the watch ended (NATS away): the overview keeps coming from the ticks
        }
      })();
      await send();
      while (!stop.signal.aborted) {
        await stream.sleep(refreshMs);
        await send();
      }
      await events;
    }),
  );
}

function failure(c: Context, err: unknown) {
  if (isMeshError(err)) return c.json({ error: err.message, code: err.code }, httpStatus(err.code));
  return c.json({ error: errorMessage(err) }, 500);
}
