/**
 * A hub directory (`mesh hub init --dir D`, default ~/.agent-mesh-hub, 0700): `hub.json` (0600)
 * says what the hub is and who may join; the nats-server configs and `users.conf` are rendered
 * from it. It holds the hub's secrets (CA key, server key, route and leaf passwords, the admin
 * seed): keep it on the hub machine. Machines' nkey seeds are never kept here, only their
 * public keys.
 */
import { existsSync, readFileSync } from "node:fs";
import { chmod, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { CliError, EXIT } from "../errors.js";

export const HUB_FILE = "hub.json";
export const USERS_FILE = "users.conf";

const machineSchema = z.strictObject({
  name: z.string(),
  /** Public key of the machine's nkey user (its seed went into the join string only). */
  nkey: z.string(),
  leafUser: z.string(),
  leafPassword: z.string(),
  invitedAt: z.string(),
});

export const hubStateSchema = z.strictObject({
  v: z.literal(1),
  domain: z.string(),
  /** Names or addresses clients dial: one per node for a cluster, any number for one node. */
  hosts: z.array(z.string()).min(1),
  nodes: z.number().int().min(1),
  port: z.number().int(),
  leafPort: z.number().int(),
  routePort: z.number().int(),
  routePassword: z.string(),
  /** Public key of the system account's user (its seed is admin.nk). */
  adminNkey: z.string(),
  caSha256: z.string(),
  machines: z.array(machineSchema),
  revoked: z.array(z.strictObject({ name: z.string(), nkey: z.string(), at: z.string() })),
});

export type HubState = z.infer<typeof hubStateSchema>;
export type HubMachine = z.infer<typeof machineSchema>;

export const defaultHubDir = (): string => process.env.MESH_HUB_DIR ?? join(homedir(), ".agent-mesh-hub");

export const hubDirOf = (dir: string | undefined): string => resolve(dir ?? defaultHubDir());

export function readHubState(dir: string): HubState {
  const file = join(dir, HUB_FILE);
  if (!existsSync(file)) {
    throw new CliError(
      EXIT.NOT_FOUND,
      `no hub in ${dir} (no ${HUB_FILE}): run \`mesh hub init --dir ${dir}\` first, or pass the hub's --dir`,
      "NOT_FOUND",
      { field: "--dir" },
    );
  }
  try {
    return hubStateSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (err) {
    throw new CliError(
      EXIT.OTHER,
      `${file} is not a hub file written by \`mesh hub init\`: ${(err as Error).message.split("\n")[0]}`,
      "DATA_LOSS",
      { cause: err },
    );
  }
}

/** Writes a secret file (0600) atomically: a reader sees the old or the new content. */
export async function writeSecret(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

export async function writeHubState(dir: string, state: HubState): Promise<void> {
  await writeSecret(join(dir, HUB_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** Client URLs: every host on the client port (for a cluster, host i is node i). */
export const clientUrls = (s: HubState): string[] => s.hosts.map((h) => `tls://${bracket(h)}:${s.port}`);
export const leafUrls = (s: HubState): string[] => s.hosts.map((h) => `tls://${bracket(h)}:${s.leafPort}`);

export const bracket = (h: string): string => (h.includes(":") && !h.startsWith("[") ? `[${h}]` : h);
