/**
 * `mesh join <string>`: checks the join string, pins the hub's CA in a TLS handshake, checks
 * that the hub accepts the machine's key, and only then stores URL, CA and credentials in the
 * state dir (`<state dir>/join/`, 0700, files 0600). Any failure stores nothing.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { AuthorizationError, connect, nkeyAuthenticator } from "@nats-io/transport-node";
import {
  JOIN_CA_FILE,
  JOIN_FILE,
  JOIN_LEAF_PASSWORD_FILE,
  JOIN_NKEY_FILE,
  type JoinedHub,
  joinDir,
} from "../../daemon/index.js";
import { CliError, EXIT } from "../errors.js";
import { writeSecret } from "./hub-state.js";
import { decodeJoinString } from "./join-string.js";
import { pinHubCa } from "./pin.js";

export interface JoinResult {
  hub: JoinedHub;
  dir: string;
  answeredBy: string;
}

export async function joinHub(o: { text: string; stateDir: string; force: boolean }): Promise<JoinResult> {
  const t = decodeJoinString(o.text);
  const dir = joinDir(o.stateDir);
  if (existsSync(join(dir, JOIN_FILE)) && !o.force) {
    throw new CliError(
      EXIT.USAGE,
      `${o.stateDir} has joined a hub already (${join(dir, JOIN_FILE)}); --force replaces it, or pass another --state-dir`,
      "ALREADY_EXISTS",
      { field: "--state-dir" },
    );
  }
  const ca = await pinHubCa(t.urls, t.ca);
  // The key must work too: a revoked or mistyped string fails here, not in the daemon later.
  const nc = await connect({
    servers: ca.url,
    tls: { ca: ca.pem },
    authenticator: nkeyAuthenticator(new TextEncoder().encode(t.nkey)),
    reconnect: false,
    timeout: 10_000,
  }).catch((err: unknown) => {
    if (err instanceof AuthorizationError) {
      throw new CliError(
        EXIT.UNREACHABLE,
        `the hub at ${ca.url} refused this machine's key (revoked, or the hub was made anew?): ask for a new \`mesh invite ${t.name}\`; nothing was stored`,
        "PERMISSION_DENIED",
        { field: "join" },
      );
    }
    throw new CliError(
      EXIT.UNREACHABLE,
      `cannot connect to the hub at ${ca.url}: ${(err as Error).message}; nothing was stored`,
      "UNAVAILABLE",
      { cause: err },
    );
  });
  await nc.close();
  const hub: JoinedHub = {
    v: 1,
    name: t.name,
    urls: t.urls,
    leafUrls: t.leafUrls,
    domain: t.domain,
    caSha256: t.ca,
    leafUser: t.leafUser,
    replicas: t.replicas,
    joinedAt: new Date().toISOString(),
  };
  await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await chmod(dir, 0o700);
  await writeSecret(join(dir, JOIN_CA_FILE), ca.pem);
  await writeSecret(join(dir, JOIN_NKEY_FILE), `${t.nkey}\n`);
  await writeSecret(join(dir, JOIN_LEAF_PASSWORD_FILE), `${t.leafPassword}\n`);
  // Last: a join record exists only with everything it names.
  await writeSecret(join(dir, JOIN_FILE), `${JSON.stringify(hub, null, 2)}\n`);
  return { hub, dir, answeredBy: ca.url };
}
