/**
 * The daemon's HTTP side: Prometheus metrics, health and readiness probes, and service
 * discovery for the whole mesh. Binds loopback by default; port 0 picks a free port (see the
 * address `start()` returns). start() refuses a second start; stop() is memoized (lib/lifecycle.ts).
 * The routes (hono and its node adapter, http/handler.ts) load at the first request: an idle
 * daemon nobody scrapes does without them (issue 17, footprint).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Lifecycle, type LifeState } from "../../lib/index.js";
import pino, { type Logger } from "pino";
import { errorMessage, MeshError } from "../errors.js";
import type { RequestHandler } from "./http/handler.js";
import type { HttpRoutes } from "./http/routes.js";

export interface HttpServerOptions {
  host: string;
  port: number;
  /** When set, /metrics and /sd require `Authorization: Bearer <token>`. */
  token?: string;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  routes: HttpRoutes;
  logger?: Logger;
}

export interface HttpAddress {
  host: string;
  port: number;
}

export class HttpServer {
  private server: Server | undefined;
  private readonly life: Lifecycle;
  private readonly log: Logger;

  constructor(private readonly opts: HttpServerOptions) {
    this.life = new Lifecycle("http", opts.logger ?? pino({ level: "silent" }), {
      start: () => this.listen(),
      stop: () => this.close(),
    });
    this.log = this.life.log;
  }

  get state(): LifeState {
    return this.life.state;
  }
  get closed(): Promise<void> {
    return this.life.closed;
  }

  /** Listens; a second start is refused (FAILED_PRECONDITION). */
  async start(): Promise<HttpAddress> {
    await this.life.start();
    return this.address();
  }

  private async listen(): Promise<void> {
    const server = this.opts.tls
      ? createHttpsServer({ cert: this.opts.tls.cert, key: this.opts.tls.key }, this.onRequest)
      : createHttpServer(this.onRequest);
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.opts.port, this.opts.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      throw new MeshError(
        "UNAVAILABLE",
        `http: cannot listen on ${this.opts.host}:${this.opts.port}: ${errorMessage(err)}`,
        { field: "http.port", cause: err },
      );
    }
    server.on("error", (err) => this.log.warn({ err: errorMessage(err) }, "http server error"));
  }

  private handler: Promise<RequestHandler> | undefined;

  /** Hands the request to the routes, loading them at the first one. */
  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.handler ??= import("./http/handler.js").then((m) =>
      m.requestHandler(this.opts.routes, {
        log: this.log,
        ...(this.opts.token ? { token: this.opts.token } : {}),
      }),
    );
    this.handler
      .then((handle) => handle(req, res))
      .catch((err: unknown) => {
        this.log.warn({ err: errorMessage(err), path: req.url }, "HTTP request failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: errorMessage(err) }));
      });
  };

  address(): HttpAddress {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a || typeof a === "string") throw new Error("http server is not listening");
    return { host: a.address, port: a.port };
  }

  /** Memoized. */
  stop(): Promise<void> {
    return this.life.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  private async close(): Promise<void> {
    const server = this.server;
    if (!server?.listening) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Prometheus keeps connections alive between scrapes: do not wait for them.
      server.closeAllConnections();
    });
  }
}
