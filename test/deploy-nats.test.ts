/**
 * deploy/: the NATS configs load in the real nats-server with secrets made by the deploy
 * scripts, enforce TLS and the per-role permissions, and form a 3-node cluster over
 * authenticated routes; docker-compose.yml publishes on 127.0.0.1 only and Grafana has no
 * default password. (Docker is not run here: the compose file is parsed.)
 */
import { execFile } from "node:child_process";
import { cp, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { AuthorizationError, connect, type NatsConnection, nkeyAuthenticator } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { compileConfig, readConfigFile } from "../daemon/index.js";
import { TASKS_BUCKET, TASKS_STREAM, taskSubject } from "../daemon/nats/names.js";
import { MONITOR_INBOX_PREFIX } from "../daemon/nats/permissions.js";
import { checkTransportPolicy } from "../daemon/nats/transport-policy.js";
import { freePort, makeTempDir, waitFor } from "./harness/index.js";
import { type ConfServer, startConfServer } from "./support/conf-server.js";
import { MESH_BIN, REPO_ROOT, spawnMeshd } from "./support/mesh.js";

const run = promisify(execFile);
const DEPLOY = join(REPO_ROOT, "deploy");
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

let secrets: string;
beforeAll(async () => {
  secrets = join(await makeTempDir("deploy-secrets-"), "secrets");
  await run("sh", [join(DEPLOY, "nats/make-certs.sh"), secrets]);
  await run(process.execPath, [join(DEPLOY, "nats/make-users.mjs"), secrets]);
});

const seed = async (name: string) =>
  new TextEncoder().encode((await readFile(join(secrets, name), "utf8")).trim());

/** A deploy config made runnable here: loopback random ports, temp paths, the secrets made above. */
async function localCopy(
  conf: string,
  edits: { routePorts?: number[]; routePort?: number; store: string; routePassword?: string },
): Promise<string> {
  const dir = await makeTempDir("deploy-conf-");
  await cp(secrets, join(dir, "secrets"), { recursive: true });
  let text = (await readFile(join(DEPLOY, conf), "utf8"))
    .replaceAll("/etc/nats/", `${dir}/`)
    .replace("listen: 0.0.0.0:4222", 'listen: "127.0.0.1:-1"')
    .replace(/^http: .*$/m, "")
    .replace("/var/lib/nats/jetstream", join(dir, edits.store));
  if (edits.routePort) text = text.replace("listen: 0.0.0.0:6222", `listen: "127.0.0.1:${edits.routePort}"`);
  if (edits.routePorts) {
    const routes = join(dir, "secrets/route.conf");
    let r = await readFile(routes, "utf8");
    edits.routePorts.forEach((p, i) => {
      r = r.replace(`@nats-${i + 1}:6222`, `@127.0.0.1:${p}`);
    });
    const real = /ROUTE_PASSWORD: "([^"]+)"/.exec(r)![1]!;
    if (edits.routePassword) r = r.replaceAll(real, edits.routePassword);
    await writeFile(routes, r);
  }
  const out = join(dir, "nats.conf");
  await writeFile(out, text);
  await run("/usr/sbin/nats-server", ["-t", "-c", out]);
  return out;
}

async function connectAs(
  url: string,
  user: string,
  extra: Record<string, unknown> = {},
): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    reconnect: false,
    tls: { caFile: join(secrets, "ca.pem") },
    authenticator: nkeyAuthenticator(await seed(`${user}.nk`)),
    ...extra,
  });
  cleanups.push(() => nc.close());
  return nc;
}

async function submitAndWait(stateDir: string, id: string): Promise<void> {
  const spec = join(await makeTempDir("deploy-spec-"), "t.yaml");
  await writeFile(spec, `id: ${id}\nrunner: command\nprompt: p\ncommand: [echo, ok]\n`);
  await run(process.execPath, [MESH_BIN, "submit", spec, "--wait"], {
    env: { ...process.env, MESH_STATE_DIR: stateDir },
  });
}

async function meshdServing(args: string[]): Promise<string> {
  const d = await spawnMeshd([...args, "--runners", "command", "--log-level", "warn"]);
  cleanups.push(() => d.kill("SIGKILL"));
  await waitFor(
    () =>
      run(process.execPath, [MESH_BIN, "workers"], {
        env: { ...process.env, MESH_STATE_DIR: d.stateDir },
      }).then(
        () => true,
        () => false,
      ),
    { name: "meshd serving", timeoutMs: 30_000 },
  );
  return d.stateDir;
}

describe("deploy/nats secrets", () => {
  it("keeps the directory 0700 and private keys 0600", async () => {
    expect((await stat(secrets)).mode & 0o777).toBe(0o700);
    for (const f of ["ca.key", "server.key", "accounts.conf", "route.conf", "monitor.nk", "admin.nk"]) {
      expect({ f, mode: (await stat(join(secrets, f))).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
    expect(await readFile(join(secrets, "accounts.conf"), "utf8")).not.toMatch(/SU[A-Z2-7]{50,}/);
  });
});

describe("deploy/nats/single", () => {
  let server: ConfServer;
  let stateDir: string;
  beforeAll(async () => {
    server = await startConfServer(await localCopy("nats/single/nats.conf", { store: "store" }), {
      scheme: "tls",
    });
    cleanups.push(() => server.stop());
    stateDir = await meshdServing([
      "--nats",
      server.url,
      "--nats-tls-ca",
      join(secrets, "ca.pem"),
      "--nats-nkey",
      join(secrets, "daemon.nk"),
    ]);
  });

  it("serves a daemon with the daemon nkey over TLS", async () => {
    await submitAndWait(stateDir, "deploy-single");
  });

  it("refuses clients without TLS or without credentials", async () => {
    const plain = server.url.replace("tls://", "nats://");
    await expect(connect({ servers: plain, reconnect: false, tls: null })).rejects.toThrow();
    await expect(
      connect({ servers: server.url, reconnect: false, tls: { caFile: join(secrets, "ca.pem") } }),
    ).rejects.toBeInstanceOf(AuthorizationError);
  });

  it("gives the monitor user reads and nothing else", async () => {
    const nc = await connectAs(server.url, "monitor", { inboxPrefix: MONITOR_INBOX_PREFIX });
    const jsm = await jetstreamManager(nc, { timeout: 3_000 });
    expect((await jsm.streams.info(TASKS_STREAM)).config.name).toBe(TASKS_STREAM);
    const kv = await new Kvm(nc).open(TASKS_BUCKET);
    const entry = await kv.get("deploy-single");
    expect(entry?.json<{ state: string }>().state).toBe("succeeded");
    // Watching the records (an ordered consumer) works too.
    const watch = await kv.watch({ key: "deploy-single" });
    for await (const e of watch) {
      expect(e.key).toBe("deploy-single");
      break;
    }
    const js = jsm.jetstream();
    await expect(js.publish(taskSubject("default", "evil"), "x", { timeout: 2_000 })).rejects.toThrow();
    await expect(kv.put("deploy-single", "{}", { timeout: 2_000 } as never)).rejects.toThrow();
    await expect(jsm.streams.delete(TASKS_STREAM)).rejects.toThrow();
    await expect(
      jsm.consumers.add(TASKS_STREAM, { durable_name: "steal", ack_policy: "explicit" as never }),
    ).rejects.toThrow();
    // Nothing changed, and the daemon still serves.
    expect((await kv.get("deploy-single"))?.json<{ state: string }>().state).toBe("succeeded");
    await submitAndWait(stateDir, "deploy-single-after");
  });
});

describe("deploy/nats/cluster", () => {
  it("forms a 3-node JetStream cluster over TLS routes with the route password", async () => {
    const routePorts = [await freePort(), await freePort(), await freePort()];
    const servers: ConfServer[] = [];
    for (const i of [1, 2, 3]) {
      const conf = await localCopy(`nats/cluster/nats-${i}.conf`, {
        routePorts,
        routePort: routePorts[i - 1]!,
        store: `store-${i}`,
      });
      servers.push(await startConfServer(conf, { scheme: "tls" }));
      cleanups.push(() => servers[i - 1]!.stop());
    }
    const nc = await connectAs(servers[0]!.url, "daemon");
    // The meta leader is elected once the routes are up: until then the API does not answer.
    const jsm = await jetstreamManager(nc, { timeout: 3_000, checkAPI: false });
    await waitFor(
      () =>
        jsm.streams.add({ name: "PROBE_R3", subjects: ["mesh.probe.>"], num_replicas: 3 }).then(
          () => true,
          () => false,
        ),
      { name: "R3 stream on the cluster", timeoutMs: 30_000, intervalMs: 250 },
    );
    await jsm.streams.delete("PROBE_R3");
    // Routes need the password: a node with the right certificate but a wrong password stays out.
    const admin = await connectAs(servers[0]!.url, "admin");
    const numRoutes = async () => {
      const m = await admin.request(`$SYS.REQ.SERVER.${admin.info!.server_id}.ROUTEZ`, "", {
        timeout: 3_000,
      });
      return (m.json() as { data: { num_routes: number } }).data.num_routes;
    };
    expect(await numRoutes()).toBe(2);
    const rogueConf = await localCopy("nats/cluster/nats-3.conf", {
      routePorts: [routePorts[0]!, await freePort(), await freePort()],
      routePort: await freePort(),
      store: "store-rogue",
      routePassword: "not-the-route-password",
    });
    const rogue = await startConfServer(rogueConf, { scheme: "tls" });
    cleanups.push(() => rogue.stop());
    await new Promise((r) => setTimeout(r, 2_000)); // proving that something does NOT happen
    expect(await numRoutes()).toBe(2);
    const stateDir = await meshdServing([
      "--nats",
      servers.map((s) => s.url).join(","),
      "--nats-tls-ca",
      join(secrets, "ca.pem"),
      "--nats-nkey",
      join(secrets, "daemon.nk"),
      "--replicas",
      "3",
    ]);
    await submitAndWait(stateDir, "deploy-cluster");
  });
});

describe("deploy/docker-compose.yml", () => {
  it("publishes every port on 127.0.0.1 only and gives Grafana no default password", async () => {
    const text = await readFile(join(DEPLOY, "docker-compose.yml"), "utf8");
    const compose = parseYaml(text) as {
      services: Record<
        string,
        { ports?: string[]; environment?: Record<string, string>; volumes?: string[] }
      >;
    };
    const ports = Object.entries(compose.services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => ({ name, p })),
    );
    expect(ports.length).toBeGreaterThanOrEqual(4);
    for (const { name, p } of ports)
      expect({ name, p, local: p.startsWith("127.0.0.1:") }).toMatchObject({ local: true });
    const grafana = compose.services.grafana!.environment!;
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD).toBeUndefined();
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD__FILE).toBeDefined();
    expect(text).not.toMatch(/admin\s*\/\s*admin|:-admin\}/);
    // Every secret the stack mounts is one the deploy scripts make.
    const mounted = Object.values(compose.services)
      .flatMap((s) => s.volumes ?? [])
      .map((v) => /^\.\/nats\/secrets\/([^:]+):/.exec(v)?.[1])
      .filter((f): f is string => f !== undefined);
    expect(mounted.length).toBeGreaterThan(0);
    for (const f of mounted) await stat(join(secrets, f));
    // The daemon's config there uses TLS and the nkey, so the transport policy lets it connect.
    const meshd = compileConfig(readConfigFile(join(DEPLOY, "meshd/meshd.yaml")));
    expect(() => checkTransportPolicy(meshd.nats)).not.toThrow();
    expect(meshd.nats.insecure).toBe(false);
  });
});
