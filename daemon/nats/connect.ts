/** Connects to NATS with the daemon's auth and TLS options. */
import { readFileSync } from "node:fs";
import {
  type ConnectionOptions,
  connect,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import type { DaemonConfig } from "../config.js";
import { errorMessage, MeshError } from "../errors.js";

export function connectionOptions(cfg: DaemonConfig["nats"], name: string): ConnectionOptions {
  const opts: ConnectionOptions = {
    servers: cfg.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    waitOnFirstConnect: false,
    // Every request would otherwise build two Error objects just to keep a stack: measurable
    // on the claim path, and our own errors carry the context.
    noAsyncTraces: true,
  };
  if (cfg.user) {
    opts.user = cfg.user;
    if (cfg.password !== undefined) opts.pass = cfg.password;
  }
  if (cfg.token) opts.token = cfg.token;
  if (cfg.nkeySeedFile) {
    const seed = readFileSync(cfg.nkeySeedFile, "utf8").trim();
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (cfg.tlsCaFile || cfg.tlsCertFile) {
    opts.tls = {
      ...(cfg.tlsCaFile ? { caFile: cfg.tlsCaFile } : {}),
      ...(cfg.tlsCertFile ? { certFile: cfg.tlsCertFile } : {}),
      ...(cfg.tlsKeyFile ? { keyFile: cfg.tlsKeyFile } : {}),
    };
  }
  return opts;
}

export async function connectNats(cfg: DaemonConfig["nats"], name: string): Promise<NatsConnection> {
  try {
    return await connect(connectionOptions(cfg, name));
  } catch (err) {
    const msg = errorMessage(err);
    const hint = /auth/i.test(msg)
      ? "check --nats-user/--nats-password, --nats-token or --nats-nkey"
      : "is nats-server running there? (`mesh up` starts one locally)";
    throw new MeshError(
      "UNAVAILABLE",
      `cannot connect to NATS at ${cfg.servers.join(", ")}: ${msg}; ${hint}`,
      {
        cause: err,
      },
    );
  }
}
