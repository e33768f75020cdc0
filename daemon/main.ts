#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * meshd: the agent-mesh daemon. Flags override the config file; everything is validated at
 * start. Signals are handled here only (lib/signals.ts): SIGTERM/SIGINT stop gracefully, a second
 * one forces.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { SignalPolicy } from "../lib/index.js";
import { compileConfig, defaultStateDir, readConfigFile } from "./config.js";
import { errorMessage, isMeshError, MeshError } from "./errors.js";
import { exitCodeFor, exitCodesHelp, MESHD_EXIT } from "./exit-codes.js";
import { joinedNatsOptions, readJoinedHub, useLocalMeshCredentials } from "./nats/index.js";
import { startDaemon } from "./start.js";
import { parseWholeNumber as int, parseLabels, parseList } from "./util/index.js";
import { VERSION } from "./version.js";

const program = new Command("meshd")
  .description("agent-mesh daemon: claims tasks from NATS JetStream and runs them on this machine")
  .version(VERSION)
  .option("-c, --config <file>", "YAML/JSON config file (flags override it)")
  .option(
    "--nats <urls>",
    "NATS server url(s), comma-separated; tls://... always means TLS (env MESH_NATS or NATS_URL)",
  )
  .option("--nats-user <user>", "NATS user (env MESH_NATS_USER)", process.env.MESH_NATS_USER)
  .option("--nats-password-file <file>", "file holding the NATS password (or env MESH_NATS_PASSWORD)")
  .option("--nats-token-file <file>", "file holding a NATS token (or env MESH_NATS_TOKEN)")
  .option("--nats-nkey <seedfile>", "NATS nkey seed file (env NATS_NKEY)")
  .option(
    "--nats-creds <file>",
    "NATS .creds file: user JWT + nkey seed, as for the nats CLI (env NATS_CREDS)",
  )
  .option(
    "--insecure",
    "allow a NATS on another machine without TLS or without credentials (config nats.insecure; trusted networks only)",
  )
  .option("--nats-tls-ca <file>", "CA bundle to verify the NATS server")
  .option("--nats-tls-cert <file>", "client certificate for NATS (mutual TLS)")
  .option("--nats-tls-key <file>", "client key for NATS (mutual TLS)")
  .option("--nats-domain <domain>", "JetStream domain (when connecting through a leaf node)")
  .option(
    "--replicas <n>",
    "replicas for streams and buckets this daemon creates (default 1; 3 on a cluster)",
    int,
  )
  .option("--name <name>", "a readable name for this worker (default: host name)")
  .option("--pools <pools>", "pools to serve, comma-separated (default: default)", parseList)
  .option("--labels <k=v,...>", "labels tasks can require", parseLabels)
  .option("--slots <n>", "tasks run at once (default 2)", int)
  .option("--runners <kinds>", "runners to enable: claude,command,noop (default all)", parseList)
  .option("--lease <duration>", "task lease (default 15s): a dead worker's task is taken over after it")
  .option("--presence-interval <duration>", "how often this daemon refreshes its presence (default 5s)")
  .option(
    "--task-retention <duration>",
    'how long finished tasks are kept before their records are deleted (default 7d; "forever" keeps them)',
  )
  .option("--state-dir <dir>", "state directory (default ~/.agent-mesh, env MESH_STATE_DIR)")
  .option("--grpc-socket <path>", "gRPC Unix socket (default <state-dir>/meshd.sock)")
  .option(
    "--grpc-tcp <host:port>",
    "also serve gRPC on TCP (requires --grpc-tls-cert/--grpc-tls-key and --grpc-token-file)",
  )
  .option("--grpc-tls-cert <file>", "TLS certificate for the gRPC TCP listener")
  .option("--grpc-tls-key <file>", "TLS key for the gRPC TCP listener")
  .option("--grpc-tls-ca <file>", "CA for client certificates on the gRPC TCP listener (mutual TLS)")
  .option("--grpc-token-file <file>", "file holding the bearer token gRPC TCP clients must send")
  .option("--http-host <host>", "metrics/health listener address (default 127.0.0.1)")
  .option(
    "--advertise <addresses>",
    "addresses (host, host:port or URL) other machines reach this daemon's HTTP side at, comma-separated (default: its interface addresses when bound to 0.0.0.0)",
    parseList,
  )
  .option("--http-port <port>", "metrics/health listener port (default: random)", int)
  .option("--http-token-file <file>", "require this bearer token for /metrics and /sd")
  .option("--http-tls-cert <file>", "serve the metrics/health listener over HTTPS with this certificate")
  .option("--http-tls-key <file>", "key of --http-tls-cert")
  .option("--no-http", "do not start the metrics/health listener")
  .option("--log-level <level>", "trace|debug|info|warn|error|silent")
  .addHelpText(
    "after",
    `
NATS settings: a flag wins over the environment, which wins over the config file (-c), which
wins over the defaults. Environment: MESH_NATS (or NATS_URL), NATS_CREDS, NATS_NKEY,
MESH_NATS_USER, MESH_NATS_PASSWORD, MESH_NATS_TOKEN. Without TLS and credentials meshd only
connects to a NATS on this machine (loopback) unless --insecure. Given no NATS at all (no
--nats, MESH_NATS, NATS_URL or nats.servers), a state dir that joined a hub with \`mesh join\`
connects to that hub over TLS with the stored CA and machine key. On loopback without
credentials it uses those of a local \`mesh up\` (nats-daemon.nk in its state dir or the default
one) when they exist.

${exitCodesHelp()}`,
  );

/** Secrets come from a file or the environment, never from argv (visible in `ps`). */
function readSecret(file: string | undefined, envName: string): string | undefined {
  if (!file) return process.env[envName];
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `cannot read ${file}: ${errorMessage(err)}`, { field: file });
  }
}

async function main(): Promise<void> {
  program.exitOverride((err) => {
    // usage errors exit 2 (like validation errors); --help and --version exit 0
    process.exit(err.exitCode === 0 ? MESHD_EXIT.OK : MESHD_EXIT.USAGE);
  });
  program.parse();
  const f = program.opts();
  const raw: Record<string, unknown> = f.config ? readConfigFile(f.config) : {};
  const nats = { ...((raw.nats as Record<string, unknown>) ?? {}) };
  const env = process.env;
  const servers = f.nats ?? env.MESH_NATS ?? env.NATS_URL;
  if (servers) nats.servers = parseList(servers);
  // Given no NATS at all, a state dir that joined a hub (`mesh join`) connects to that hub.
  const joined =
    nats.servers === undefined
      ? readJoinedHub(
          (f.stateDir as string | undefined) ?? (raw.stateDir as string | undefined) ?? defaultStateDir(),
        )
      : undefined;
  const user = f.natsUser ?? env.MESH_NATS_USER;
  if (user) nats.user = user;
  const password = readSecret(f.natsPasswordFile, "MESH_NATS_PASSWORD");
  if (password) nats.password = password;
  const token = readSecret(f.natsTokenFile, "MESH_NATS_TOKEN");
  if (token) nats.token = token;
  // A flag or variable for one kind of key replaces the file's key of the other kind.
  const nkey = f.natsNkey ?? (f.natsCreds ? undefined : env.NATS_NKEY);
  const creds = f.natsCreds ?? (f.natsNkey ? undefined : env.NATS_CREDS);
  if (nkey) {
    nats.nkeySeedFile = nkey;
    delete nats.credsFile;
  }
  if (creds) {
    nats.credsFile = creds;
    delete nats.nkeySeedFile;
  }
  if (f.insecure) nats.insecure = true;
  if (f.natsTlsCa) nats.tlsCaFile = f.natsTlsCa;
  if (f.natsTlsCert) nats.tlsCertFile = f.natsTlsCert;
  if (f.natsTlsKey) nats.tlsKeyFile = f.natsTlsKey;
  if (f.natsDomain) nats.domain = f.natsDomain;
  if (f.replicas !== undefined) nats.replicas = f.replicas;
  if (Object.keys(nats).length > 0) raw.nats = nats;
  if (joined) raw.nats = joinedNatsOptions(joined, nats);
  const set = (key: string, v: unknown) => {
    if (v !== undefined) raw[key] = v;
  };
  set("name", f.name);
  set("pools", f.pools);
  set("labels", f.labels);
  set("slots", f.slots);
  set("runners", f.runners);
  set("lease", f.lease);
  set("taskRetention", f.taskRetention);
  set("presenceInterval", f.presenceInterval);
  set("stateDir", f.stateDir);
  set("logLevel", f.logLevel);
  const grpc = { ...((raw.grpc as Record<string, unknown>) ?? {}) };
  if (f.grpcSocket) grpc.socket = f.grpcSocket;
  if (f.grpcTcp) {
    const m = /^(.*):(\d+)$/.exec(f.grpcTcp);
    if (!m)
      throw new MeshError(
        "INVALID_ARGUMENT",
        `--grpc-tcp: "${f.grpcTcp}" is not host:port (e.g. 127.0.0.1:7443)`,
      );
    grpc.tcp = {
      host: m[1],
      port: Number(m[2]),
      tlsCertFile: f.grpcTlsCert,
      tlsKeyFile: f.grpcTlsKey,
      tokenFile: f.grpcTokenFile,
      ...(f.grpcTlsCa ? { tlsCaFile: f.grpcTlsCa } : {}),
    };
  }
  if (Object.keys(grpc).length > 0) raw.grpc = grpc;
  const http = { ...((raw.http as Record<string, unknown>) ?? {}) };
  if (f.httpHost) http.host = f.httpHost;
  if (f.advertise) http.advertise = f.advertise;
  if (f.httpPort !== undefined) http.port = f.httpPort;
  if (f.httpTokenFile) http.tokenFile = f.httpTokenFile;
  if (f.httpTlsCert) http.tlsCertFile = f.httpTlsCert;
  if (f.httpTlsKey) http.tlsKeyFile = f.httpTlsKey;
  if (f.http === false) http.enabled = false;
  if (Object.keys(http).length > 0) raw.http = http;

  const config = compileConfig(raw, f.config ? `config (${f.config} + flags)` : "options");
  useLocalMeshCredentials(config);
  // Signals are handled from before the start (lib/signals.ts): a SIGTERM while starting stops
  // once started; a second signal hands running tasks back at once (a clean stop still: exit 0);
  // a second while starting, or a third, gives up at once (INTERRUPTED).
  const signals = new SignalPolicy({
    forcedExitCode: MESHD_EXIT.OK,
    abandonExitCode: MESHD_EXIT.INTERRUPTED,
  });
  const daemon = await startDaemon(config);
  // A part meshd cannot live without died: it has stopped itself; exit saying which.
  daemon.closed.then(
    () => undefined,
    (err: unknown) => {
      process.stderr.write(`meshd: ${errorMessage(err)}\n`);
      process.exit(MESHD_EXIT.LOST);
    },
  );
  signals.attach({
    graceful(signal) {
      daemon.log.info(
        { signal },
        "stopping gracefully (a second SIGINT hands running tasks back at once, as does a second SIGTERM)",
      );
      void daemon.stop().then(
        () => process.exit(signals.exitCode(MESHD_EXIT.OK)),
        (err: unknown) => {
          daemon.log.error({ err }, "stop failed");
          process.exit(MESHD_EXIT.FAILED);
        },
      );
    },
    force() {
      daemon.log.warn("forcing: handing running tasks back now");
      void daemon.force();
    },
  });
}

main().catch((err: unknown) => {
  const code = isMeshError(err) ? err.code : undefined;
  process.stderr.write(`meshd: ${errorMessage(err)}\n`);
  if (process.env.MESH_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
  process.exit(exitCodeFor(code));
});
