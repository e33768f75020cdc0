/** Builds a daemon with the servers its config asks for, and starts it. */
import { readFile } from "node:fs/promises";
import type { DaemonConfig } from "./config.js";
import { Daemon, type DaemonDeps } from "./daemon.js";
import { errorMessage, MeshError } from "./errors.js";
import { MeshMetrics, metricsPlugin } from "./metrics/index.js";
import type { DaemonPlugin } from "./plugin.js";
import { GrpcServer, httpPlugin } from "./servers/index.js";

/** The gRPC API (Unix socket, optional TLS+token TCP) as a daemon plugin. */
export function grpcPlugin(config: DaemonConfig): DaemonPlugin {
  let server: GrpcServer | undefined;
  return {
    name: "grpc",
    async start(d) {
      const tcp = config.grpc.tcp;
      let token: string | undefined;
      if (tcp) {
        try {
          token = (await readFile(tcp.tokenFile, "utf8")).trim();
          if (!token) throw new Error("the file is empty");
        } catch (err) {
          throw new MeshError(
            "INVALID_ARGUMENT",
            `grpc.tcp.tokenFile: cannot read ${tcp.tokenFile}: ${errorMessage(err)}`,
            {
              field: "grpc.tcp.tokenFile",
            },
          );
        }
      }
      server = new GrpcServer(d.api, {
        socketPath: config.socketPath,
        ...(d.transfer ? { transfer: d.transfer } : {}),
        quota: () => d.quotaEntries(),
        logger: d.log,
        maxSubmitBytes: config.limits.submitMaxBytes,
        submitParseTimeoutMs: config.limits.submitParseTimeout,
        requestReadTimeoutMs: config.limits.requestReadTimeout,
        ...(tcp
          ? {
              tcp: {
                host: tcp.host,
                port: tcp.port,
                token: token ?? "",
                tls: {
                  certFile: tcp.tlsCertFile,
                  keyFile: tcp.tlsKeyFile,
                  ...(tcp.tlsCaFile ? { caFile: tcp.tlsCaFile } : {}),
                },
              },
            }
          : {}),
      });
      const addr = await server.start();
      d.log.info(addr, "gRPC listening");
    },
    async stop() {
      await server?.stop();
    },
  };
}

export async function startDaemon(config: DaemonConfig, deps: DaemonDeps = {}): Promise<Daemon> {
  // Prometheus metrics unless the caller brings its own observer (a MeshMetrics one is served too).
  const metrics =
    deps.observer === undefined
      ? new MeshMetrics({ worker: config.name })
      : deps.observer instanceof MeshMetrics
        ? deps.observer
        : undefined;
  const daemon = new Daemon(config, metrics ? { ...deps, observer: metrics } : deps);
  daemon.use(grpcPlugin(config));
  if (metrics) daemon.use(metricsPlugin(metrics));
  if (config.http.enabled) daemon.use(httpPlugin(config, metrics));
  await daemon.start();
  return daemon;
}
