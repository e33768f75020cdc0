/**
 * nats-server configs of a hub, rendered from its hub.json: one file per node (`nats-<n>.conf`:
 * TLS for clients, leaf nodes and routes, JetStream with the hub's domain, a pid file so
 * `mesh invite` can reload it) and `users.conf`, included by every node: account MESH with one
 * nkey user and one leaf user per machine (both with the daemon role's permissions), and the
 * system account SYS with the admin user. Written by nats-server 2.9's plain config syntax.
 */
import { join } from "node:path";
import { DAEMON_PERMISSIONS, renderPermissions } from "../../daemon/index.js";
import { bracket, type HubState, USERS_FILE } from "./hub-state.js";

const q = (s: string) => JSON.stringify(s);

export const nodeConfigFile = (dir: string, node: number): string => join(dir, `nats-${node}.conf`);
export const nodePidFile = (dir: string, node: number): string => join(dir, `nats-${node}.pid`);

export function renderNodeConfig(dir: string, s: HubState, node: number): string {
  const cert = join(dir, "server.pem");
  const key = join(dir, "server.key");
  const tls = `tls { cert_file: ${q(cert)}, key_file: ${q(key)}, timeout: 2 }`;
  const lines = [
    `# Written by \`mesh hub init\` (node ${node} of ${s.nodes}). Start it with \`mesh hub start --node ${node}\``,
    `# or \`nats-server -c ${nodeConfigFile(dir, node)}\`; users.conf is rewritten by \`mesh invite\`.`,
    `server_name: ${q(`mesh-hub-${node}`)}`,
    `listen: ${q(`0.0.0.0:${s.port}`)}`,
    `pid_file: ${q(nodePidFile(dir, node))}`,
    "# Task prompts are at most 256 KiB; the 1 MiB default payload leaves headroom.",
    "max_payload: 1MB",
    "# Clients must speak TLS and authenticate with their machine's nkey (users.conf).",
    tls,
    `include ${q(USERS_FILE)}`,
    "# The domain lets daemons behind a leaf node reach these streams ($JS.<domain>.API).",
    `jetstream { store_dir: ${q(join(dir, "data", `node-${node}`))}, domain: ${q(s.domain)} }`,
    "# Leaf nodes (`mesh up --leaf` on a machine) dial in here, TLS, with their machine's leaf user.",
    `leafnodes { listen: ${q(`0.0.0.0:${s.leafPort}`)}, ${tls} }`,
  ];
  if (s.nodes > 1) {
    const routes = s.hosts.map((h) =>
      q(`nats-route://route:${s.routePassword}@${bracket(h)}:${s.routePort}`),
    );
    lines.push(
      "# Routes: mutual TLS with the hub's CA, and the route password. A node ignores its own route.",
      "cluster {",
      `  name: "agent-mesh-hub"`,
      `  listen: ${q(`0.0.0.0:${s.routePort}`)}`,
      `  tls { cert_file: ${q(cert)}, key_file: ${q(key)}, ca_file: ${q(join(dir, "ca.pem"))}, verify: true, timeout: 2 }`,
      `  authorization { user: route, password: ${q(s.routePassword)}, timeout: 2 }`,
      `  routes: [ ${routes.join(", ")} ]`,
      "}",
    );
  }
  return `${lines.join("\n")}\n`;
}

export function renderUsers(s: HubState): string {
  const perms = renderPermissions(DAEMON_PERMISSIONS);
  const users = s.machines.flatMap((m) => [
    `      # machine ${m.name} (invited ${m.invitedAt}): as a TLS client, and as a leaf node`,
    `      { nkey: ${q(m.nkey)}, permissions: ${perms} }`,
    `      { user: ${q(m.leafUser)}, password: ${q(m.leafPassword)}, permissions: ${perms} }`,
  ]);
  return [
    "# Written by `mesh hub init`, `mesh invite` and `mesh hub revoke`: do not edit by hand.",
    "accounts {",
    "  MESH {",
    "    jetstream: enabled",
    "    users: [",
    ...users,
    "    ]",
    "  }",
    `  SYS { users: [ { nkey: ${q(s.adminNkey)} } ] }`,
    "}",
    "system_account: SYS",
    "",
  ].join("\n");
}
