/**
 * `mesh up`: a working local mesh in the foreground: a nats-server child with JetStream (data
 * under the state dir) and one meshd in this process. Ctrl-C stops both cleanly; a second
 * Ctrl-C hands running tasks back at once. `--nats <url>` joins an existing NATS instead.
 */
import { connect } from "node:net";
import { join } from "node:path";
import { Command, Option } from "commander";
import { compileConfig, defaultStateDir, readConfigFile, startDaemon } from "../daemon/index.js";
import { parseWholeNumber as int, parseLabels as labels, parseList as list } from "../daemon/lite.js";
import { CliError, EXIT } from "./errors.js";
import { startLocalNats } from "./local-nats.js";

interface UpOptions {
  stateDir?: string;
  nats?: string;
  natsPort: number;
  pools?: string[];
  labels?: Record<string, string>;
  slots?: number;
  name?: string;
  config?: string;
  httpPort?: number;
  logLevel?: string;
}

export function upCommand(): Command {
  return new Command("up")
    .description("start a local mesh in the foreground: a nats-server child with JetStream and one meshd")
    .addOption(
      new Option("--state-dir <dir>", "where NATS data, the socket and workspaces live").env(
        "MESH_STATE_DIR",
      ),
    )
    .option("--nats <url>", "join this NATS instead of starting one")
    .option("--nats-port <port>", "port of the local nats-server (loopback only)", int, 4222)
    .option("-c, --config <file>", "meshd config file (YAML/JSON); flags override it")
    .option("--pools <pools>", "pools this daemon serves", list)
    .option("--labels <k=v,...>", "labels tasks can require", labels)
    .option("--slots <n>", "tasks run at once", int)
    .option("--name <name>", "worker name (default: host name)")
    .option("--http-port <port>", "metrics/health port on 127.0.0.1 (default: random)", int)
    .option("--log-level <level>", "daemon log level", "info")
    .addHelpText(
      "after",
      '\nWith --json, one line {"nats","socket","workerId","stateDir","metrics"} is printed once the mesh is up.\nStop with Ctrl-C (twice to force).',
    )
    .action(async (o: UpOptions, cmd: Command) => {
      const json = Boolean(cmd.optsWithGlobals().json);
      const raw: Record<string, unknown> = o.config ? readConfigFile(o.config) : {};
      const stateDir = o.stateDir ?? (raw.stateDir as string | undefined) ?? defaultStateDir();
      const socketPath =
        (raw.grpc as { socket?: string } | undefined)?.socket ?? join(stateDir, "meshd.sock");
      await refuseIfRunning(socketPath, stateDir);
      const nats = o.nats
        ? undefined
        : await startLocalNats({ stateDir, host: "127.0.0.1", port: o.natsPort });
      try {
        const url = o.nats ?? nats!.url;
        const natsCfg = { ...((raw.nats as Record<string, unknown>) ?? {}), servers: [url] };
        const http = {
          ...((raw.http as Record<string, unknown>) ?? {}),
          ...(o.httpPort !== undefined ? { port: o.httpPort } : {}),
        };
        const config = compileConfig(
          {
            ...raw,
            nats: natsCfg,
            stateDir,
            http,
            logLevel: o.logLevel,
            ...(o.pools ? { pools: o.pools } : {}),
            ...(o.labels ? { labels: o.labels } : {}),
            ...(o.slots !== undefined ? { slots: o.slots } : {}),
            ...(o.name ? { name: o.name } : {}),
          },
          o.config ? `${o.config} + flags` : "options",
        );
        const daemon = await startDaemon(config);
        const metricsUrl = daemon.presenceExtras.httpUrl;
        const info = {
          nats: url,
          socket: config.socketPath,
          workerId: daemon.workerId,
          stateDir: config.stateDir,
          metrics: metricsUrl ? `${metricsUrl}/metrics` : null,
        };
        if (json) process.stdout.write(`${JSON.stringify(info)}\n`);
        else {
          process.stdout.write(
            `agent-mesh is up\n  NATS    ${url}${nats ? ` (JetStream, data in ${stateDir}/nats, log ${nats.logFile})` : ""}\n` +
              `  meshd   ${daemon.workerId} (pools ${config.pools.join(",")}, ${config.slots} slots)\n` +
              `  socket  ${config.socketPath}\n` +
              (metricsUrl
                ? `  metrics ${metricsUrl}/metrics  (Prometheus service discovery: ${metricsUrl}/sd)\n`
                : "") +
              "Try: mesh workers   |   mesh submit task.yaml --wait   |   Ctrl-C to stop\n",
          );
        }
        await new Promise<void>((resolve) => {
          let n = 0;
          const onSignal = () => {
            n++;
            if (n === 1) {
              process.stderr.write("stopping (Ctrl-C again to hand running tasks back now)...\n");
              void daemon.stop().finally(resolve);
            } else void daemon.force();
          };
          process.on("SIGINT", onSignal);
          process.on("SIGTERM", onSignal);
        });
      } finally {
        await nats?.stop();
      }
    });
}

/** A second `mesh up` on a state dir in use must not start another nats-server on its data. */
async function refuseIfRunning(socketPath: string, stateDir: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const sock = connect(socketPath);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
  if (live) {
    throw new CliError(
      EXIT.OTHER,
      `a mesh is already running with state dir ${stateDir} (its daemon answers on ${socketPath}); use it, stop it, or pass another --state-dir`,
      "ALREADY_EXISTS",
    );
  }
}
