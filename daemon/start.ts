/** Builds a daemon with the servers its config asks for, and starts it. */
import { readFile } from "node:fs/promises";
import type { DaemonConfig } from "./config.js";
import { Daemon, type DaemonDeps, type DaemonPlugin } from "./daemon.js";
import { errorMessage, MeshError } from "./errors.js";
import { GrpcServer } from "./servers/grpc-server.js";

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
        } catch (err) {
          throw new MeshError("INVALID_ARGUMENT", `grpc.tcp.tokenFile: cannot read ${tcp.tokenFile}: ${errorMessage(err)}`, {
            field: "grpc.tcp.tokenFile",
          });
        }
      }
      server = new GrpcServer(d.api, {
        socketPath: config.socketPath,
        logger: d.log.child({ component: "grpc" }),
        ...(tcp && token
          ? {
              tcp: {
                host: tcp.host,
                port: tcp.port,
                token,
                tls: { certFile: tcp.tlsCertFile, keyFile: tcp.tlsKeyFile, ...(tcp.tlsCaFile ? { caFile: tcp.tlsCaFile } : {}) },
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
  const daemon = new Daemon(config, deps);
  daemon.use(grpcPlugin(config));
  await daemon.start();
  return daemon;
}
