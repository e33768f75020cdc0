/** Connects to NATS with the daemon's auth and TLS options, after the transport policy allows it. */
import { readFileSync } from "node:fs";
import {
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  errors,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import { errorMessage, MeshError } from "../errors.js";
import { isAuthError, isTlsError } from "./js-errors.js";
import type { NatsSettings } from "./settings.js";
import { checkTransportPolicy, usesTls } from "./transport-policy.js";

function readAuthFile(path: string, field: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `${field}: cannot read ${path}: ${errorMessage(err)}`, {
      field,
      cause: err,
    });
  }
}

export function connectionOptions(cfg: NatsSettings, name: string): ConnectionOptions {
  checkTransportPolicy(cfg);
  const tls = usesTls(cfg);
  const opts: ConnectionOptions = {
    servers: cfg.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    waitOnFirstConnect: false,
    // Without TLS, only ever talk to the servers the operator named: a cluster could otherwise
    // gossip addresses of other machines and the client would follow them in the clear.
    ignoreClusterUpdates: !tls,
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
    const seed = new TextDecoder().decode(readAuthFile(cfg.nkeySeedFile, "nats.nkeySeedFile")).trim();
    const auth = nkeyAuthenticator(new TextEncoder().encode(seed));
    try {
      auth("probe");
    } catch (err) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `nats.nkeySeedFile: ${cfg.nkeySeedFile} does not hold an nkey user seed (a line starting with SU): ${errorMessage(err)}`,
        { field: "nats.nkeySeedFile", cause: err },
      );
    }
    opts.authenticator = auth;
  }
  if (cfg.credsFile) {
    const creds = readAuthFile(cfg.credsFile, "nats.credsFile");
    const auth = credsAuthenticator(creds);
    try {
      auth("probe");
    } catch (err) {
      throw new MeshError(
        "INVALID_ARGUMENT",
        `nats.credsFile: ${cfg.credsFile} is not a NATS .creds file (a user JWT and an nkey seed, as \`nsc generate creds\` writes): ${errorMessage(err)}`,
        { field: "nats.credsFile", cause: err },
      );
    }
    opts.authenticator = auth;
  }
  if (tls) {
    // Set even when empty: a tls:// URL must never fall back to a plaintext server.
    opts.tls = {
      ...(cfg.tlsCaFile ? { caFile: cfg.tlsCaFile } : {}),
      ...(cfg.tlsCertFile ? { certFile: cfg.tlsCertFile } : {}),
      ...(cfg.tlsKeyFile ? { keyFile: cfg.tlsKeyFile } : {}),
    };
  }
  return opts;
}

export async function connectNats(cfg: NatsSettings, name: string): Promise<NatsConnection> {
  const opts = connectionOptions(cfg, name);
  try {
    return await connect(opts);
  } catch (err) {
    const msg = errorMessage(err);
    // By type and code: nats.js's AuthorizationError, Node's TLS error codes; a tls:// server
    // that turns out to have no TLS is an InvalidArgumentError on the "tls" option.
    const tlsRefused = opts.tls !== undefined && err instanceof errors.InvalidArgumentError;
    const hint = isAuthError(err)
      ? "check --nats-creds, --nats-nkey, --nats-user/--nats-password-file or --nats-token-file (a local `mesh up` server: its state dir's nats-daemon.nk)"
      : isTlsError(err) || tlsRefused
        ? "TLS: does the server have tls {...} configured, and is --nats-tls-ca the CA that signed its certificate?"
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
