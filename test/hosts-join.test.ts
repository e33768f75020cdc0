/**
 * Joining machines across real hosts (network namespaces on a bridge): a hub host made with
 * `mesh hub init`, two worker hosts that join with `mesh invite`/`mesh join` (one as a TLS
 * client of the hub, one through a local leaf nats-server), and a laptop host whose packet
 * filter drops every inbound connection. Each sees every machine, tasks run across hosts, and
 * the laptop submits and watches by dialing out only.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { type Host, type Hosts, hostsUnavailable, makeHosts, nftUnavailable } from "./support/hosts.js";
import {
  type Hub,
  inviteAndJoin,
  type Machine,
  mesh,
  meshUp,
  startHub,
  workersOn,
} from "./support/hub-hosts.js";

const unavailable = hostsUnavailable() ?? nftUnavailable();
if (unavailable) console.warn(`hosts-join: skipped: ${unavailable}`);

/** A TCP connect from `from` to `to:port`, run inside `from`: "connected", or the error code. */
async function dial(from: Host, to: string, port: number, timeoutMs: number): Promise<string> {
  const script = `const s=require("net").connect(${port},${JSON.stringify(to)});
const t=setTimeout(()=>{process.stdout.write("timeout");process.exit(0)},${timeoutMs});
s.on("connect",()=>{process.stdout.write("connected");process.exit(0)});
s.on("error",(e)=>{process.stdout.write(e.code);process.exit(0)});`;
  return (await from.run([process.execPath, "-e", script])).stdout;
}

describe.skipIf(unavailable !== undefined)("machines join a hub by dialing out", () => {
  let net: Hosts;
  let hub: Hub;
  let w1: Machine;
  let w2: Machine;
  let laptop: Machine;
  const h = () => net.hosts as Record<"hub" | "w1" | "w2" | "laptop", Host>;

  beforeAll(async () => {
    net = await makeHosts(["hub", "w1", "w2", "laptop"]);
    hub = await startHub(h().hub);
    for (const m of [h().w1, h().w2, h().laptop]) await inviteAndJoin(hub, m);
    h().laptop.dropInbound();
    [w1, w2, laptop] = await Promise.all([
      meshUp(h().w1),
      meshUp(h().w2, { leaf: true }),
      // The laptop's HTTP side listens on every interface: its address is advertised, and the
      // packet filter is what keeps the others out.
      meshUp(h().laptop, { extra: ["--http-host", "0.0.0.0"] }),
    ]);
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([w1, w2, laptop].filter(Boolean).map((m) => m.up.stop()));
    await hub?.server.stop();
    net?.remove();
    await removeTempDirs();
  });

  it("mesh workers on every host lists every machine, with the addresses it advertises", async () => {
    const ids = [w1.workerId, w2.workerId, laptop.workerId].sort();
    for (const host of [h().w1, h().w2, h().laptop]) {
      const list = await waitFor(
        async () => {
          const ws = await workersOn(host);
          return ws
            .map((w) => w.workerId)
            .sort()
            .join() === ids.join()
            ? ws
            : undefined;
        },
        { name: `every machine in mesh workers on ${host.name}`, timeoutMs: 20_000 },
      );
      const byName = new Map(list.map((w) => [w.name, w]));
      // Bound to 0.0.0.0: its interface address, not 127.0.0.1 or a host name.
      expect(byName.get("laptop")).toMatchObject({ reach: "network" });
      expect(byName.get("laptop")?.httpUrls).toEqual([
        expect.stringMatching(new RegExp(`^http://${h().laptop.ip}:\\d+$`)),
      ]);
      // Bound to loopback (the default): it says so.
      expect(byName.get("w1")?.reach).toBe("loopback");
      expect(byName.get("w1")?.httpUrls[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    }
  });

  it("a task submitted on one host runs on another, both ways between the TLS client and the leaf", async () => {
    const dir = await makeTempDir("hosts-spec-");
    for (const [from, to] of [
      [h().w1, "w2"],
      [h().w2, "w1"],
    ] as const) {
      const spec = join(dir, `${from.name}.yaml`);
      const id = `across-${from.name}-${Date.now().toString(36)}`;
      await writeFile(
        spec,
        `id: ${id}\nrunner: command\nprompt: p\nlabels: { host: ${to} }\ncommand: [${JSON.stringify(process.execPath)}, -e, "console.log(process.env.MESH_WORKER_ID)"]\n`,
      );
      const r = await mesh(from, ["submit", spec, "--wait", "--json", "--unschedulable-timeout", "30s"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const task = JSON.parse((await mesh(from, ["task", id, "--json"])).stdout) as {
        task: { state: string; attempts: { workerId: string }[] };
      };
      expect(task.task.state).toBe("succeeded");
      expect(task.task.attempts.map((a) => a.workerId)).toEqual([to === "w1" ? w1.workerId : w2.workerId]);
    }
  });

  it("the laptop accepts no inbound connection, yet submits a task to a worker and watches it", async () => {
    // Its HTTP port is open (it answers on its own machine), but nothing from outside gets in.
    const port = Number(
      /:(\d+)$/.exec((await workersOn(h().laptop)).find((w) => w.name === "laptop")!.httpUrls[0]!)![1],
    );
    expect(await dial(h().laptop, h().laptop.ip, port, 5_000)).toBe("connected");
    // A bounded wait proves the drop (the SYN gets no answer at all, not even a refusal).
    expect(await dial(h().w1, h().laptop.ip, port, 1_500)).toBe("timeout");
    const dir = await makeTempDir("laptop-spec-");
    const spec = join(dir, "t.yaml");
    const id = `from-laptop-${Date.now().toString(36)}`;
    await writeFile(
      spec,
      `id: ${id}\nrunner: command\nprompt: p\nlabels: { host: w2 }\ncommand: [${JSON.stringify(process.execPath)}, -e, "console.log('hello from', process.env.MESH_WORKER_ID)"]\n`,
    );
    const r = await mesh(h().laptop, ["submit", spec, "--wait", "--json", "--unschedulable-timeout", "30s"]);
    expect(r.code).toBe(0);
    const watched = await mesh(h().laptop, ["watch", id, "--json"]);
    expect(watched.code).toBe(0);
    const events = watched.stdout
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as { type: string; state?: string; workerId?: string; line?: string; text?: string },
      );
    expect(
      events.some((e) => e.type === "state" && e.state === "succeeded" && e.workerId === w2.workerId),
    ).toBe(true);
    expect(watched.stdout).toContain(`hello from ${w2.workerId}`);
  });

  it("a bad join string is refused with exit 2 and nothing is stored; a revoked machine is shut out", async () => {
    const fresh = await makeTempDir("join-bad-");
    for (const bad of [
      "meshjoin1:",
      "meshjoin1:not*base64",
      "meshjoin2:abc",
      `meshjoin1:${Buffer.from('{"name":"x"}').toString("base64url")}`,
    ]) {
      const r = await mesh(h().w1, ["join", bad, "--state-dir", fresh, "--json"]);
      expect(r.code).toBe(2);
      expect(JSON.parse(r.stderr).error).toMatchObject({ code: "INVALID_ARGUMENT", field: "join" });
    }
    expect((await h().w1.run(["ls", "-A", fresh])).stdout).toBe("");
    // A string for this hub with another CA's fingerprint: the pin fails, nothing is stored.
    const line = (await mesh(hub.host, ["invite", "spare", "--dir", hub.dir])).stdout.trim();
    const token = JSON.parse(Buffer.from(line.slice("meshjoin1:".length), "base64url").toString()) as Record<
      string,
      string
    >;
    const forged = `meshjoin1:${Buffer.from(JSON.stringify({ ...token, ca: "0".repeat(64) })).toString("base64url")}`;
    const pinned = await mesh(h().w1, ["join", forged, "--state-dir", fresh, "--json"]);
    expect(pinned.code).toBe(5);
    expect(JSON.parse(pinned.stderr).error.code).toBe("FAILED_PRECONDITION");
    expect((await h().w1.run(["ls", "-A", fresh])).stdout).toBe("");
    // Revoked: the hub refuses the key, so the same string no longer joins.
    expect((await mesh(hub.host, ["hub", "revoke", "spare", "--dir", hub.dir])).code).toBe(0);
    const refused = await mesh(h().w1, ["join", line, "--state-dir", fresh, "--json"]);
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.stderr).error.code).toBe("PERMISSION_DENIED");
    expect((await h().w1.run(["ls", "-A", fresh])).stdout).toBe("");
  });
});
