/**
 * `mesh hub init/start/list/revoke`, `mesh invite`, `mesh join` and `mesh up` (TLS client and
 * `--leaf`) on this machine (loopback: no root needed), and their refusals: every bad input
 * exits 2 naming the flag and changes nothing.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { type Host, localHost } from "./support/hosts.js";
import { MESHD_BIN } from "./support/mesh.js";
import {
  type Hub,
  invite,
  inviteAndJoin,
  type Machine,
  mesh,
  meshUp,
  startHub,
  workersOn,
} from "./support/hub-hosts.js";

const mode = (f: string) => statSync(f).mode & 0o777;
const errorOf = (stderr: string) =>
  (JSON.parse(stderr) as { error: { code: string; field: string | null } }).error;

describe("mesh hub, invite and join on one machine", () => {
  let hubHost: Host & { remove(): void };
  let a: Host & { remove(): void };
  let b: Host & { remove(): void };
  let hub: Hub;
  let upA: Machine;
  let upB: Machine;

  beforeAll(async () => {
    [hubHost, a, b] = await Promise.all([localHost("hub"), localHost("a"), localHost("b")]);
    hub = await startHub(hubHost, { port: await freePort(), leafPort: await freePort() });
    await inviteAndJoin(hub, a);
    await inviteAndJoin(hub, b);
    [upA, upB] = await Promise.all([meshUp(a), meshUp(b, { leaf: true })]);
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled([upA, upB].filter(Boolean).map((m) => m.up.stop()));
    await hub?.server.stop();
    for (const h of [hubHost, a, b]) h?.remove();
    await removeTempDirs();
  });

  it("keeps the hub's and the machines' secrets in 0600 files in 0700 dirs, and no seed of a machine at the hub", () => {
    expect(mode(hub.dir)).toBe(0o700);
    for (const f of ["ca.key", "server.key", "admin.nk", "hub.json", "users.conf", "nats-1.conf"]) {
      expect(mode(join(hub.dir, f))).toBe(0o600);
    }
    const joinDir = join(a.stateDir, "join");
    expect(mode(joinDir)).toBe(0o700);
    expect(readdirSync(joinDir).sort()).toEqual(["ca.pem", "hub.json", "leaf.pass", "machine.nk"]);
    for (const f of readdirSync(joinDir)) expect(mode(join(joinDir, f))).toBe(0o600);
    const seed = readFileSync(join(joinDir, "machine.nk"), "utf8").trim();
    for (const f of readdirSync(hub.dir).filter((f) => !statSync(join(hub.dir, f)).isDirectory())) {
      expect(readFileSync(join(hub.dir, f), "utf8")).not.toContain(seed);
    }
    // The leaf's password reaches nats-server in its 0600 config file, never on its argv.
    expect(mode(join(b.stateDir, "nats-server.conf"))).toBe(0o600);
  });

  it("runs a task submitted behind the leaf node on the TLS client, and both list both", async () => {
    for (const h of [a, b]) {
      await waitFor(async () => (await workersOn(h)).length === 2, {
        name: `two workers on ${h.name}`,
        timeoutMs: 20_000,
      });
    }
    const spec = join(await makeTempDir("hub-cli-"), "t.yaml");
    await writeFile(
      spec,
      `id: leaf-to-a\nrunner: command\nprompt: p\nlabels: { host: a }\ncommand: [${JSON.stringify(process.execPath)}, -e, "1"]\n`,
    );
    const r = await mesh(b, ["submit", spec, "--wait", "--json", "--unschedulable-timeout", "30s"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { tasks: { workerId: string }[] }).tasks[0]?.workerId).toBe(upA.workerId);
  });

  it("a meshd given no NATS uses the hub its state dir joined (the string read from stdin)", async () => {
    const c = await localHost("c");
    const joined = await mesh(c, ["join", "-", "--state-dir", c.stateDir, "--json"], await invite(hub, "c"));
    expect(joined.code).toBe(0);
    const d = c.spawn([
      process.execPath,
      MESHD_BIN,
      "--state-dir",
      c.stateDir,
      "--name",
      "c",
      "--runners",
      "command",
      "--no-http",
      "--presence-interval",
      "500ms",
    ]);
    try {
      await waitFor(async () => (await workersOn(b)).some((w) => w.name === "c"), {
        name: "the joined meshd in the mesh",
        timeoutMs: 30_000,
      });
    } finally {
      await d.stop();
      c.remove();
    }
  });

  it("refuses bad hub input with exit 2 naming the flag, and makes nothing", async () => {
    const fresh = join(await makeTempDir("hub-bad-"), "h");
    for (const [args, field] of [
      [["--cluster", "2"], "--cluster"],
      [["--cluster", "3", "--host", "n1"], "--host"],
      [["--host", "bad host!"], "--host"],
      [["--domain", "no.dots"], "--domain"],
    ] as const) {
      const r = await mesh(hubHost, ["hub", "init", "--dir", fresh, "--json", ...args]);
      expect(r.code).toBe(2);
      expect(errorOf(r.stderr).field).toBe(field);
    }
    expect(existsSync(fresh)).toBe(false);
    const again = await mesh(hubHost, ["hub", "init", "--dir", hub.dir, "--json"]);
    expect(again.code).toBe(2);
    expect(errorOf(again.stderr).code).toBe("ALREADY_EXISTS");
    const dup = await mesh(hubHost, ["invite", "a", "--dir", hub.dir, "--json"]);
    expect(dup.code).toBe(2);
    const badName = await mesh(hubHost, ["invite", "-x", "--dir", hub.dir, "--json"]);
    expect(badName.code).toBe(2);
    const unknown = await mesh(hubHost, ["hub", "revoke", "nobody", "--dir", hub.dir, "--json"]);
    expect(unknown.code).toBe(4);
    // --leaf without a joined hub: refused before anything starts.
    const lone = await localHost("lone");
    const leaf = await mesh(lone, ["up", "--leaf", "--json", "--state-dir", lone.stateDir]);
    expect(leaf.code).toBe(2);
    expect(errorOf(leaf.stderr).field).toBe("--leaf");
    expect(existsSync(join(lone.stateDir, "nats-server.conf"))).toBe(false);
    const joined = await mesh(a, ["join", await invite(hub, "spare-a"), "--state-dir", a.stateDir, "--json"]);
    expect(joined.code).toBe(2);
    expect(errorOf(joined.stderr).code).toBe("ALREADY_EXISTS");
  });

  it("a revoked machine is disconnected and its key refused", async () => {
    const r = await mesh(hubHost, ["hub", "revoke", "a", "--dir", hub.dir]);
    expect(r.code).toBe(0);
    const list = JSON.parse((await mesh(hubHost, ["hub", "list", "--dir", hub.dir, "--json"])).stdout) as {
      machines: { name: string }[];
      revoked: { name: string }[];
    };
    expect(list.machines.map((m) => m.name)).not.toContain("a");
    expect(list.revoked.map((m) => m.name)).toContain("a");
    // The hub dropped a's connection; it cannot come back: a's daemon no longer answers for
    // the mesh, and b stops seeing it once its presence expires.
    await waitFor(async () => (await workersOn(b)).every((w) => w.workerId !== upA.workerId), {
      name: "the revoked machine left the mesh",
      timeoutMs: 30_000,
    });
    await waitFor(() => /authentication error/.test(hub.server.stderr()), {
      name: "the hub refused a's key",
    });
  });
});
