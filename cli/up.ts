/**
 * `mesh up`: a working local mesh in the foreground: a locked nats-server child with JetStream
 * (data and credentials under the state dir) and one meshd in this process. Ctrl-C stops both
 * cleanly; a second Ctrl-C hands running tasks back at once. `--nats <url>` joins an existing
 * NATS instead. If the nats-server dies, `mesh up` stops and exits non-zero.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { connect } from "node:net";
import { homedir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  compileConfig,
  type Daemon,
  type DaemonConfig,
  defaultStateDir,
  errorMessage,
  isMeshError,
  type JoinedFiles,
  joinedNatsOptions,
  readConfigFile,
  readJoinedHub,
  startDaemon,
  useLocalMeshCredentials,
} from "../daemon/index.js";
import { parseWholeNumber as int, parseLabels as labels, parseList as list } from "../daemon/lite.js";
import { SignalPolicy } from "../lib/index.js";
import { CliError, EXIT } from "./errors.js";
import { type LeafRemote, type LocalNats, startLocalNats } from "./local-nats.js";
import { logFormat, upLogger } from "./up-log.js";

interface UpOptions {
  stateDir?: string;
  nats?: string;
  natsCreds?: string;
  insecure?: boolean;
  natsPort: number;
  pools?: string[];
  labels?: Record<string, string>;
  slots?: number;
  name?: string;
  config?: string;
  httpPort?: number;
  httpHost?: string;
  advertise?: string[];
  /** `true`: through a leaf node to the joined hub's leaf URLs; a string: that leaf URL. */
  leaf?: boolean | string;
  logLevel: string;
  logFormat?: string;
}

/** npm forwards the terminal's Ctrl-C to its child, which already got it from the terminal. */
const SAME_SIGNAL_MS = 500;
/** How long stopping may take once nats-server is gone (nothing can be handed back then). */
const STOP_WITHOUT_NATS_MS = 5_000;

function port(v: string): number {
  const n = int(v);
  if (n < 0 || n > 65535) throw new InvalidArgumentError(`"${v}" is not a port (0-65535; 0: any free port)`);
  return n;
}

export function upCommand(): Command {
  return new Command("up")
    .description("start a local mesh in the foreground: a nats-server child with JetStream and one meshd")
    .addOption(
      new Option(
        "--state-dir <dir>",
        "where NATS data and credentials, the socket, logs and workspaces live",
      ).env("MESH_STATE_DIR"),
    )
    .option("--nats <url>", "join this NATS instead of starting one")
    .addOption(
      new Option("--nats-creds <file>", "with --nats: a NATS .creds file to connect with").env("NATS_CREDS"),
    )
    .option("--insecure", "with --nats: allow a NATS on another machine without TLS or credentials")
    .addOption(
      new Option("--nats-port <port>", "port of the local nats-server on 127.0.0.1 (0: any free port)")
        .env("MESH_NATS_PORT")
        .argParser(port)
        .default(4222),
    )
    .option("-c, --config <file>", "meshd config file (YAML/JSON); flags override it")
    .option("--pools <pools>", "pools this daemon serves", list)
    .option("--labels <k=v,...>", "labels tasks can require", labels)
    .option("--slots <n>", "tasks run at once", int)
    .option("--name <name>", "worker name (default: host name)")
    .option("--http-port <port>", "metrics/health port (default: random)", int)
    .option(
      "--http-host <host>",
      "metrics/health listener address (default 127.0.0.1; 0.0.0.0: every interface)",
    )
    .option(
      "--advertise <addresses>",
      "addresses other machines reach this daemon's HTTP side at (default: its interface addresses when --http-host is 0.0.0.0)",
      list,
    )
    .option(
      "--leaf [url]",
      "after `mesh join`: start a local nats-server as a leaf node of the hub (dials out only; default: the joined hub's leaf URLs)",
    )
    .option("--log-level <level>", "level of the daemon log (<state dir>/meshd.log)", "info")
    .addOption(
      new Option(
        "--log-format <format>",
        "the log on stderr: pretty (readable lines at --log-level) or json (warnings and errors as JSON lines); default: pretty on a terminal, json otherwise",
      ).choices(["pretty", "json"]),
    )
    .addHelpText(
      "after",
      `
With --json, one line {"nats","socket","workerId","stateDir","metrics","log","natsNkey"} is printed once
the mesh is up. After \`mesh join\`, \`mesh up\` connects to the joined hub as a TLS client (no
local nats-server), and \`mesh up --leaf\` starts a local nats-server that dials the hub as a leaf
node and runs the daemon behind it (on the hub's JetStream domain). The daemon's log goes to
<state dir>/meshd.log; on a terminal stderr shows it as readable lines, otherwise warnings and
errors as JSON lines (--log-format). The local nats-server accepts
only the nkey in <state dir>/nats-daemon.nk (made on first start, mode 0600). Stop with Ctrl-C (twice to hand running tasks back at once).`,
    )
    .action(async (o: UpOptions, cmd: Command) => {
      let code: number;
      try {
        code = await up(o, Boolean(cmd.optsWithGlobals().json));
      } catch (err) {
        // The error is reported by the caller; whatever a failed start left open (a connection
        // retrying, a listener) must not keep `mesh up` alive after it.
        setTimeout(() => process.exit(), 1_000).unref();
        throw err;
      }
      process.exit(code);
    });
}

async function up(o: UpOptions, json: boolean): Promise<number> {
  // One policy with meshd (lib/signals.ts). A closed terminal (SIGHUP) stops as gracefully as
  // Ctrl-C rather than die on the default action. Until the daemon runs, a stop signal ends
  // everything at once (the exit hook takes nats-server).
  const signals = new SignalPolicy({
    signals: ["SIGINT", "SIGTERM", "SIGHUP"],
    sameSignalMs: SAME_SIGNAL_MS,
    forcedExitCode: EXIT.OK,
    abandonExitCode: EXIT.INTERRUPTED,
  });
  signals.attach({
    graceful: () => process.exit(EXIT.INTERRUPTED),
    force: () => process.exit(EXIT.INTERRUPTED),
  });
  const raw: Record<string, unknown> = o.config ? readConfigFile(o.config) : {};
  const stateDir = resolve(o.stateDir ?? (raw.stateDir as string | undefined) ?? defaultStateDir());
  const socketPath = (raw.grpc as { socket?: string } | undefined)?.socket ?? join(stateDir, "meshd.sock");
  // A NATS named by --nats or the config file wins over a joined hub.
  const named =
    o.nats !== undefined || (raw.nats as { servers?: unknown } | undefined)?.servers !== undefined;
  const joined = named ? undefined : readJoinedHub(stateDir);
  const leaf = leafRemote(o, joined);
  // Joined and neither --nats nor --leaf: the daemon is a TLS client of the hub.
  const hub = joined && !leaf ? joined : undefined;
  const joinedNats = hub ? joinedNatsOptions(hub, (raw.nats as Record<string, unknown>) ?? {}) : undefined;
  const local = !o.nats && !hub;
  // Bad options are refused before anything starts (the first compile only validates).
  daemonConfig(
    o,
    raw,
    stateDir,
    o.nats ?? hub?.hub.urls[0] ?? "nats://127.0.0.1:4222",
    local ? join(stateDir, "x.nk") : undefined,
    joinedNats,
    leaf ? joined?.hub : undefined,
  );
  await refuseIfRunning(socketPath, stateDir);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const nats = local
    ? await startLocalNats({ stateDir, host: "127.0.0.1", port: o.natsPort, ...(leaf ? { leaf } : {}) })
    : undefined;
  try {
    const url = o.nats ?? (hub ? hub.hub.urls.join(",") : nats!.url);
    const config = daemonConfig(
      o,
      raw,
      stateDir,
      o.nats ?? nats?.url ?? hub!.hub.urls[0]!,
      nats?.nkeyFile,
      joinedNats,
      leaf ? joined?.hub : undefined,
    );
    if (!nats) useLocalMeshCredentials(config);
    const log = upLogger(stateDir, config.logLevel, logFormat(o.logFormat, process.stderr));
    const started = await startDaemon(config, { logger: log.logger });
    const metricsUrl = started.presenceExtras.httpUrl;
    if (json) {
      const info = {
        nats: url,
        socket: config.socketPath,
        workerId: started.workerId,
        stateDir: config.stateDir,
        metrics: metricsUrl ? `${metricsUrl}/metrics` : null,
        log: log.file,
        natsNkey: nats?.nkeyFile ?? null,
      };
      process.stdout.write(`${JSON.stringify(info)}\n`);
    } else {
      process.stdout.write(banner({ url, nats, daemon: started, config, logFile: log.file, metricsUrl }));
    }
    const outcome = await new Promise<number>((done) => {
      signals.attach({
        graceful: () => {
          process.stderr.write("stopping (Ctrl-C again to hand running tasks back now)...\n");
          void started.stop().then(
            () => done(signals.exitCode(EXIT.OK)),
            () => done(EXIT.OTHER),
          );
        },
        force: () => void started.force(),
      });
      // The daemon stopped itself (a part it cannot live without died): so does `mesh up`.
      started.closed.catch((err: unknown) => {
        process.stderr.write(`error: meshd stopped: ${errorMessage(err)}\n`);
        done(isMeshError(err, "UNAVAILABLE") ? EXIT.UNREACHABLE : EXIT.OTHER);
      });
      void nats?.exited.then(({ code, signal }) => {
        signals.attach({ graceful: () => done(EXIT.UNREACHABLE), force: () => done(EXIT.UNREACHABLE) });
        if (started.state === "stopping" || started.state === "stopped") return;
        process.stderr.write(
          `error: nats-server exited (${signal ? `signal ${signal}` : `code ${code}`}); see ${nats.logFile}. Stopping meshd.\n`,
        );
        const timer = setTimeout(() => done(EXIT.UNREACHABLE), STOP_WITHOUT_NATS_MS);
        // Nothing can reach NATS any more: fail what waits on it now instead of on timeouts.
        void started.connection.close().catch(() => {});
        void started.stop(0).finally(() => {
          clearTimeout(timer);
          done(EXIT.UNREACHABLE);
        });
      });
    });
    log.flush();
    return outcome;
  } finally {
    await nats?.stop();
  }
}

/** The leaf remote for `--leaf`: the joined hub's leaf URLs (or the one given), its CA, the leaf user. */
function leafRemote(o: UpOptions, joined: JoinedFiles | undefined): LeafRemote | undefined {
  if (o.leaf === undefined || o.leaf === false) return undefined;
  if (o.nats) {
    throw new CliError(EXIT.USAGE, "--leaf and --nats: give one of them", "INVALID_ARGUMENT", {
      field: "--leaf",
    });
  }
  if (!joined) {
    throw new CliError(
      EXIT.USAGE,
      "--leaf needs a joined hub: run `mesh join <string>` (from `mesh invite <name>` on the hub) with this state dir first",
      "INVALID_ARGUMENT",
      { field: "--leaf" },
    );
  }
  const urls = typeof o.leaf === "string" ? [o.leaf] : joined.hub.leafUrls;
  if (urls.length === 0 || urls.some((u) => !/^tls:\/\/[^\s/@]+:\d+$/.test(u))) {
    throw new CliError(
      EXIT.USAGE,
      `--leaf: ${urls.join(", ") || "the joined hub has no leaf URL"}: expected tls://host:port (the hub's leaf port, 7422 by default)`,
      "INVALID_ARGUMENT",
      { field: "--leaf" },
    );
  }
  let password: string;
  try {
    password = readFileSync(joined.leafPasswordFile, "utf8").trim();
  } catch (err) {
    throw new CliError(
      EXIT.USAGE,
      `--leaf: cannot read ${joined.leafPasswordFile} (${(err as Error).message}); run \`mesh join\` again`,
      "INVALID_ARGUMENT",
      { field: "--leaf" },
    );
  }
  return { urls, user: joined.hub.leafUser, password, caFile: joined.caFile };
}

function daemonConfig(
  o: UpOptions,
  raw: Record<string, unknown>,
  stateDir: string,
  url: string,
  localNkey: string | undefined,
  joinedNats?: Record<string, unknown>,
  /** Behind a leaf node: the hub's JetStream domain and replicas. */
  leafHub?: { domain: string; replicas: number },
): DaemonConfig {
  const natsCfg: Record<string, unknown> = joinedNats
    ? { ...joinedNats }
    : {
        ...((raw.nats as Record<string, unknown>) ?? {}),
        servers: [url],
      };
  if (leafHub) {
    natsCfg.domain = leafHub.domain;
    natsCfg.replicas ??= leafHub.replicas;
  }
  if (localNkey) {
    for (const k of ["user", "password", "token", "credsFile"]) delete natsCfg[k];
    natsCfg.nkeySeedFile = localNkey;
  } else if (o.natsCreds) {
    natsCfg.credsFile = o.natsCreds;
    delete natsCfg.nkeySeedFile;
  }
  if (o.insecure) natsCfg.insecure = true;
  const http = {
    ...((raw.http as Record<string, unknown>) ?? {}),
    ...(o.httpPort !== undefined ? { port: o.httpPort } : {}),
    ...(o.httpHost !== undefined ? { host: o.httpHost } : {}),
    ...(o.advertise !== undefined ? { advertise: o.advertise } : {}),
  };
  return compileConfig(
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
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "")
    .split(delimiter)
    .some((d) => d && !d.includes("node_modules") && existsSync(join(d, bin)));
}

function banner(b: {
  url: string;
  nats: LocalNats | undefined;
  daemon: Daemon;
  config: DaemonConfig;
  logFile: string;
  metricsUrl: string | undefined;
}): string {
  const { config, nats } = b;
  // Another terminal may not share this one's MESH_STATE_DIR: name any state dir but ~/.agent-mesh.
  const envPrefix =
    config.stateDir === resolve(homedir(), ".agent-mesh") ? "" : `MESH_STATE_DIR=${config.stateDir} `;
  const linked = onPath("mesh");
  const mesh = `${envPrefix}${linked ? "mesh" : "npm run -s mesh --"}`;
  const meshd = onPath("meshd") ? "meshd" : "node dist/daemon/main.js";
  const lines = [
    "agent-mesh is up",
    `  NATS     ${b.url}${
      nats
        ? config.nats.domain
          ? ` (a leaf node of the hub: its JetStream domain ${config.nats.domain}; log ${nats.logFile})`
          : ` (JetStream; data ${config.stateDir}/nats, log ${nats.logFile})`
        : ""
    }`,
    ...(nats ? [`           only the nkey in ${nats.nkeyFile} may connect (mode 0600)`] : []),
    `  meshd    ${b.daemon.workerId} (pools ${config.pools.join(",")}, ${config.slots} slots)`,
    `  socket   ${config.socketPath}`,
    `  log      ${b.logFile} (warnings and errors also show here)`,
    ...(b.metricsUrl
      ? [
          `  web      ${b.metricsUrl}/ui  (the live dashboard)`,
          `  metrics  ${b.metricsUrl}/metrics  (Prometheus service discovery: ${b.metricsUrl}/sd)`,
        ]
      : []),
    "",
    "Try, in another terminal in this repository:",
    `  ${mesh} workers`,
    `  ${mesh} submit examples/command.yaml --wait`,
    ...(linked ? [] : ["  (`npm link` once puts mesh and meshd on your PATH: then just `mesh workers`)"]),
    ...(nats
      ? [
          "Another worker on this machine:",
          `  ${meshd} --nats ${b.url} --nats-nkey ${nats.nkeyFile} --state-dir /tmp/worker-2`,
        ]
      : []),
    "Ctrl-C stops it (twice: hand running tasks back at once).",
    "",
  ];
  return lines.join("\n");
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
