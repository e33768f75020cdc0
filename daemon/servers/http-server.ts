/**
 * The daemon's HTTP side: Prometheus metrics, health and readiness probes, and service
 * discovery for the whole mesh. Binds loopback by default; port 0 picks a free port (see the
 * address `start()` returns). start() refuses a second start; stop() is memoized (lib/lifecycle.ts).
 */
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { Lifecycle, type LifeState } from "../../lib/index.js";
import pino, { type Logger } from "pino";
import { errorMessage, MeshError } from "../errors.js";
import { buildApp, type HttpRoutes } from "./http/routes.js";

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
    const app = buildApp(this.opts.routes, {
      log: this.log,
      ...(this.opts.token ? { token: this.opts.token } : {}),
    });
    // overrideGlobalObjects: false leaves the process' global Request/Response alone.
    const server = (
      this.opts.tls
        ? createAdaptorServer({
            fetch: app.fetch,
            overrideGlobalObjects: false,
            createServer: createHttpsServer,
            serverOptions: { cert: this.opts.tls.cert, key: this.opts.tls.key },
          })
        : createAdaptorServer({ fetch: app.fetch, overrideGlobalObjects: false })
    ) as Server;
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
