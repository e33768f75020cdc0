/**
 * The daemon's gRPC server: MeshService (over MeshApi), grpc.health.v1 and server reflection.
 *
 * - Unix socket (default): parent dir created 0700, a stale socket from a crash removed before
 *   binding, the socket chmod 0600 after binding. No auth: file permissions are the boundary.
 * - TCP (optional): TLS is required (client certificates too when `caFile` is set) and every
 *   call except Health must carry `authorization: Bearer <token>`.
 * Each listener is its own grpc-js Server so the token check applies to TCP only.
 */
import { chmod, readFile } from "node:fs/promises";
import { type ChannelOptions, Server, ServerCredentials, type ServerInterceptor } from "@grpc/grpc-js";
import { Lifecycle, type LifeState } from "../../lib/index.js";
import pino, { type Logger } from "pino";
import { MESH_SERVICE_NAME, MeshServiceService } from "../../proto/index.js";
import type { MeshApi } from "../api/index.js";
import type { QuotaEntry } from "../quota/index.js";
import type { MeshTransfer } from "../transfer/index.js";
import { errorMessage, isMeshError, MeshError } from "../errors.js";
import { DEFAULT_SUBMIT_MAX_BYTES } from "../limits.js";
import { bearerTokenInterceptor } from "./grpc/auth.js";
import { meshServiceHandlers } from "./grpc/handlers.js";
import { HealthService } from "./grpc/health.js";
import { requestReadTimeoutInterceptor } from "./grpc/read-timeout.js";
import { addReflection } from "./grpc/reflection.js";
import { prepareSocketPath, removeSocket } from "./grpc/socket.js";
import { SpecParser } from "./grpc/spec-parser.js";

export interface GrpcTcpOptions {
  host: string;
  /** 0 picks a free port (see the address `start()` returns). */
  port: number;
  tls: {
    certFile: string;
    keyFile: string /** When set, clients must present a certificate it signed. */;
    caFile?: string;
  };
  /** Bearer token every TCP call (except Health) must present. */
  token: string;
}

export interface GrpcServerOptions {
  socketPath?: string;
  tcp?: GrpcTcpOptions;
  /** The bundle store's daemon side (ShipRepo, FetchResults; on the Unix socket only). */
  transfer?: MeshTransfer;
  /** The mesh's quota caps and slots (GetQuota). */
  quota?: () => Promise<QuotaEntry[]>;
  logger?: Logger;
  /** Messages a streaming client may fall behind before its stream is ended. Default 10 000. */
  maxStreamBacklog?: number;
  /** How long `stop()` lets in-flight calls finish before forcing. Default 5 000 ms. */
  shutdownGraceMs?: number;
  /** The largest submit document, checked before parsing; gRPC refuses bigger messages unread. Default 4 MiB. */
  maxSubmitBytes?: number;
  /** A submit document still parsing after this long is refused. Default 30 000 ms. */
  submitParseTimeoutMs?: number;
  /** A call whose request has not arrived after this long is ended. Default 30 000 ms. */
  requestReadTimeoutMs?: number;
}

export interface GrpcAddresses {
  socketPath?: string;
  tcpAddress?: string;
}

/** Answers (a long task list) may be large; requests are bounded by the submit limit. */
const MAX_SEND_BYTES = 64 * 1024 * 1024;
/** Room in a request beyond the document itself (the source name, framing). */
const REQUEST_OVERHEAD_BYTES = 64 * 1024;

function serverOptions(maxSubmitBytes: number): ChannelOptions {
  return {
    // grpc-js refuses a larger message from its length prefix, before buffering it.
    "grpc.max_receive_message_length": maxSubmitBytes + REQUEST_OVERHEAD_BYTES,
    "grpc.max_send_message_length": MAX_SEND_BYTES,
    // Find vanished clients (no FIN) so their streams are torn down.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    // One connection cannot open streams without bound.
    "grpc.max_concurrent_streams": 256,
  };
}

function bindAsync(server: Server, address: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

async function readTlsFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `cannot read the TLS ${what} ${path}: ${errorMessage(err)}`, {
      field: `tcp.tls.${what}`,
      cause: err,
    });
  }
}

export class GrpcServer {
  private readonly life: Lifecycle;
  private addresses: GrpcAddresses = {};
  private readonly log: Logger;
  private readonly servers: Server[] = [];
  private readonly streams = new Set<() => void>();
  private readonly health = new HealthService({
    "": "NOT_SERVING",
    [MESH_SERVICE_NAME]: "NOT_SERVING",
  });
  private boundSocket?: string;
  private readonly parser: SpecParser;

  constructor(
    private readonly api: MeshApi,
    private readonly opts: GrpcServerOptions,
  ) {
    this.life = new Lifecycle("grpc", opts.logger ?? pino({ level: "silent" }), {
      start: () => this.listen(),
      stop: () => this.close(),
    });
    this.log = this.life.log;
    this.parser = new SpecParser({ timeoutMs: opts.submitParseTimeoutMs ?? 30_000 });
  }

  private newServer(interceptors: ServerInterceptor[] = [], localPaths = false): Server {
    const maxSubmitBytes = this.opts.maxSubmitBytes ?? DEFAULT_SUBMIT_MAX_BYTES;
    const readTimeout = requestReadTimeoutInterceptor(
      this.opts.requestReadTimeoutMs ?? 30_000,
      "limits.requestReadTimeout",
    );
    const server = new Server({
      ...serverOptions(maxSubmitBytes),
      interceptors: [...interceptors, readTimeout],
    });
    server.addService(
      MeshServiceService,
      meshServiceHandlers({
        api: this.api,
        ...(this.opts.transfer ? { transfer: this.opts.transfer } : {}),
        ...(this.opts.quota ? { quota: this.opts.quota } : {}),
        localPaths,
        logger: this.log,
        maxBacklog: this.opts.maxStreamBacklog ?? 10_000,
        maxSubmitBytes,
        parse: (text, source) => this.parser.parse(text, source),
        // calls may arrive between bind and "running": the api is ready before the server starts
        accepting: () => this.life.state === "running" || this.life.state === "starting",
        track: (end) => {
          this.streams.add(end);
          return () => this.streams.delete(end);
        },
      }),
    );
    this.health.addToServer(server);
    addReflection(server);
    this.servers.push(server);
    return server;
  }

  get state(): LifeState {
    return this.life.state;
  }
  get closed(): Promise<void> {
    return this.life.closed;
  }

  /** Listens; a second start is refused (FAILED_PRECONDITION). */
  async start(): Promise<GrpcAddresses> {
    await this.life.start();
    return this.addresses;
  }

  private async listen(): Promise<void> {
    const { socketPath, tcp } = this.opts;
    if (!socketPath && !tcp) {
      throw new MeshError("INVALID_ARGUMENT", "grpc server needs a socketPath or a tcp listener", {
        field: "socketPath",
      });
    }
    if (tcp) {
      if (!tcp.token) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          "the TCP listener needs a bearer token; set one or serve on the Unix socket only",
          {
            field: "tcp.token",
          },
        );
      }
      if (!tcp.tls?.certFile || !tcp.tls.keyFile) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          "the TCP listener needs TLS: give tls.certFile and tls.keyFile",
          {
            field: "tcp.tls",
          },
        );
      }
    }
    const out: GrpcAddresses = {};
    try {
      if (socketPath) {
        await prepareSocketPath(socketPath);
        await bindAsync(this.newServer([], true), `unix:${socketPath}`, ServerCredentials.createInsecure());
        this.boundSocket = socketPath;
        await chmod(socketPath, 0o600);
        out.socketPath = socketPath;
      }
      if (tcp) {
        const [cert, key, ca] = await Promise.all([
          readTlsFile(tcp.tls.certFile, "certFile"),
          readTlsFile(tcp.tls.keyFile, "keyFile"),
          tcp.tls.caFile ? readTlsFile(tcp.tls.caFile, "caFile") : Promise.resolve(null),
        ]);
        const creds = ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], ca !== null);
        const host = tcp.host.includes(":") && !tcp.host.startsWith("[") ? `[${tcp.host}]` : tcp.host;
        const server = this.newServer([bearerTokenInterceptor(tcp.token)]);
        const port = await bindAsync(server, `${host}:${tcp.port}`, creds);
        out.tcpAddress = `${host}:${port}`;
      }
    } catch (err) {
      this.log.error({ err }, "grpc server failed to start");
      if (isMeshError(err)) throw err;
      throw new MeshError("UNAVAILABLE", `gRPC server could not listen: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    this.health.setStatus("", "SERVING");
    this.health.setStatus(MESH_SERVICE_NAME, "SERVING");
    this.addresses = out;
    this.log.info(out, "grpc server listening");
  }

  /** Memoized: refuses new calls, ends open streams, lets unary calls finish, then forces. */
  stop(): Promise<void> {
    return this.life.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  private async close(): Promise<void> {
    this.health.setStatus("", "NOT_SERVING");
    this.health.setStatus(MESH_SERVICE_NAME, "NOT_SERVING");
    await this.shutdown();
    this.log.info("grpc server stopped");
  }

  private async shutdown(): Promise<void> {
    for (const end of [...this.streams]) end();
    const graceMs = this.opts.shutdownGraceMs ?? 5_000;
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            const force = setTimeout(() => {
              this.log.warn({ graceMs }, "grpc calls still open after the grace period; forcing shutdown");
              server.forceShutdown();
              resolve();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(force);
              resolve();
            });
          }),
      ),
    );
    await this.parser.close();
    if (this.boundSocket) {
      await removeSocket(this.boundSocket).catch((err: unknown) =>
        this.log.warn({ err, socketPath: this.boundSocket }, "could not remove the socket"),
      );
    }
  }
}
