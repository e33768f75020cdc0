#!/usr/bin/env node
// Makes the NATS users of a mesh as nkeys (the servers keep only public keys) and a route
// password for the cluster: `node deploy/nats/make-users.mjs [out-dir]` (after `npm run build`).
// Writes into out-dir (default deploy/nats/secrets, mode 0700):
//   accounts.conf   accounts MESH (daemon, monitor) and SYS (admin), included by the configs
//   route.conf      the cluster's route user and password, included by the cluster configs
//   daemon.nk       seed for every meshd (--nats-nkey / nats.nkeySeedFile)
//   monitor.nk      seed for read-only tools (nats CLI with --inbox-prefix _INBOX_monitor)
//   admin.nk        seed of the system account's user (nats server report ...); keep it off workers
//   grafana-admin-password  for deploy/docker-compose.yml
// Seeds are 0600, except daemon.nk and grafana-admin-password (0644 inside the 0700 directory,
// so the meshd and Grafana containers, which run as their own users, can read their bind mounts).
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createUser } from "@nats-io/nkeys";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, "secrets");
const perms = join(here, "../../dist/daemon/nats/permissions.js");
if (!existsSync(perms)) {
  process.stderr.write(`make-users: ${perms} is missing: run \`npm ci && npm run build\` first\n`);
  process.exit(1);
}
const { DAEMON_PERMISSIONS, MONITOR_PERMISSIONS, renderPermissions } = await import(
  pathToFileURL(perms).href
);
if (existsSync(join(out, "accounts.conf")) && process.env.FORCE !== "1") {
  process.stderr.write(`make-users: ${join(out, "accounts.conf")} exists; set FORCE=1 to make new users\n`);
  process.exit(1);
}
mkdirSync(out, { recursive: true, mode: 0o700 });
chmodSync(out, 0o700);

const write = (name, text, mode = 0o600) => {
  const f = join(out, name);
  writeFileSync(f, text, { mode });
  chmodSync(f, mode);
};
const user = (name, mode) => {
  const kp = createUser();
  write(`${name}.nk`, `${new TextDecoder().decode(kp.getSeed())}\n`, mode);
  return kp.getPublicKey();
};
const daemon = user("daemon", 0o644);
const monitor = user("monitor");
const admin = user("admin");

write(
  "accounts.conf",
  `# Made by deploy/nats/make-users.mjs. Public keys only; the seeds are beside this file.
accounts {
  MESH {
    jetstream: enabled
    users: [
      # meshd: task records, doorbells, events, presence, the JetStream API, its inboxes
      { nkey: "${daemon}", permissions: ${renderPermissions(DAEMON_PERMISSIONS)} }
      # read-only: stream and consumer info, records, event replay (inbox prefix _INBOX_monitor)
      { nkey: "${monitor}", permissions: ${renderPermissions(MONITOR_PERMISSIONS)} }
    ]
  }
  SYS {
    users: [ { nkey: "${admin}" } ]
  }
}
system_account: SYS
`,
);
const routePassword = randomBytes(24).toString("base64url");
write(
  "route.conf",
  `# Made by deploy/nats/make-users.mjs: the cluster's route credentials (same on every node).
ROUTE_PASSWORD: "${routePassword}"
ROUTES: [
  "nats-route://route:${routePassword}@nats-1:6222"
  "nats-route://route:${routePassword}@nats-2:6222"
  "nats-route://route:${routePassword}@nats-3:6222"
]
`,
);
write("grafana-admin-password", `${randomBytes(18).toString("base64url")}\n`, 0o644);
process.stdout.write(
  `make-users: users daemon (${daemon}), monitor (${monitor}), admin (${admin}) in ${out}\n`,
);
