/**
 * What `mesh join` stores in a state dir (`<state dir>/join/`, 0700, files 0600): the hub's
 * URLs, its CA (pinned by fingerprint at join), this machine's nkey seed and leaf password.
 * A meshd or `mesh up` that is given no NATS servers of its own uses them.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { MeshError } from "../errors.js";

export const JOIN_DIR = "join";
export const JOIN_FILE = "hub.json";
export const JOIN_CA_FILE = "ca.pem";
export const JOIN_NKEY_FILE = "machine.nk";
export const JOIN_LEAF_PASSWORD_FILE = "leaf.pass";

const url = z.string().regex(/^tls:\/\/[^\s/@]+$/, "expected tls://host:port");

export const joinedHubSchema = z.strictObject({
  v: z.literal(1),
  /** This machine's name at the hub (its NATS user). */
  name: z.string().min(1).max(64),
  /** Client URLs of the hub (TLS). */
  urls: z.array(url).min(1).max(16),
  /** Leaf-node URLs of the hub (TLS), for `mesh up --leaf`. */
  leafUrls: z.array(url).max(16),
  /** The hub's JetStream domain. */
  domain: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
  /** sha256 of the CA certificate (DER), hex, as pinned at join. */
  caSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The leaf user's name (its password is in leaf.pass). */
  leafUser: z.string().min(1).max(80),
  /** Replicas for streams and buckets (3 on a cluster hub). */
  replicas: z.number().int().min(1).max(5),
  joinedAt: z.string(),
});

export type JoinedHub = z.infer<typeof joinedHubSchema>;

export interface JoinedFiles {
  hub: JoinedHub;
  dir: string;
  caFile: string;
  nkeyFile: string;
  leafPasswordFile: string;
}

export const joinDir = (stateDir: string): string => join(stateDir, JOIN_DIR);

/** The joined hub of `stateDir`, or undefined when it never joined one. A damaged file is an error. */
export function readJoinedHub(stateDir: string): JoinedFiles | undefined {
  const dir = joinDir(stateDir);
  const file = join(dir, JOIN_FILE);
  if (!existsSync(file)) return undefined;
  let hub: JoinedHub;
  try {
    hub = joinedHubSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (err) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `${file} is not a join record written by \`mesh join\` (${(err as Error).message.split("\n")[0]}); run \`mesh join <string>\` again (with --force)`,
      { field: "join", cause: err },
    );
  }
  return {
    hub,
    dir,
    caFile: join(dir, JOIN_CA_FILE),
    nkeyFile: join(dir, JOIN_NKEY_FILE),
    leafPasswordFile: join(dir, JOIN_LEAF_PASSWORD_FILE),
  };
}

/**
 * Raw `nats` options (before compileConfig) for a daemon that connects to the joined hub as a
 * TLS client: its URLs, its CA and this machine's nkey. Credentials given otherwise win.
 */
export function joinedNatsOptions(
  joined: JoinedFiles,
  given: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...given, servers: joined.hub.urls };
  out.tlsCaFile ??= joined.caFile;
  out.replicas ??= joined.hub.replicas;
  const hasCreds = ["user", "token", "nkeySeedFile", "credsFile"].some((k) => given[k] !== undefined);
  if (!hasCreds) out.nkeySeedFile = joined.nkeyFile;
  return out;
}
