/**
 * The daemon's HTTP side: /healthz, /readyz, /metrics and /sd of real daemons on a real
 * nats-server, the bearer token, readiness following NATS, discovery following presence, and
 * the server's lifecycle on its own.
 */
import { readFile, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compileConfig, type Daemon, type DaemonOptions, MeshError, startDaemon } from "../daemon/index.js";
import type { WorkerInfo } from "../daemon/registry/worker-info.js";
import { advertisedUrls, type TargetGroup, targetGroups } from "../daemon/servers/http/sd.js";
import { HttpServer } from "../daemon/servers/http-server.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { useMesh } from "./support/fixture.js";
import { FAST, waitForState } from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";
import { selfSignedCert } from "./support/tls.js";

const mesh = useMesh();

async function meshd(opts: Partial<DaemonOptions> = {}, natsUrl = mesh.nats.url): Promise<Daemon> {
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    ...opts,
    http: { enabled: true, port: 0, ...(opts.http ?? {}) },
    nats: { servers: [natsUrl] },
    stateDir: await makeTempDir("meshd-http-"),
  });
  const d = await startDaemon(config);
  mesh.daemons.push(d);
  return d;
}

function urlOf(d: Daemon): string {
  const u = d.snapshot().httpUrl;
  if (!u) throw new Error(`daemon ${d.workerId} has no httpUrl`);
  return u;
}

async function get(url: string, token?: string): Promise<Response> {
  return fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

async function sdOf(d: Daemon, token?: string): Promise<TargetGroup[]> {
  const res = await get(`${urlOf(d)}/sd`, token);
  expect(res.status).toBe(200);
  return (await res.json()) as TargetGroup[];
}

describe("HTTP endpoints of a running daemon", () => {
  it("serves /healthz, /readyz, /metrics and lists every live daemon in /sd", async () => {
    const a = await meshd({ name: "http-a", pools: ["h-1"] });
    const b = await meshd({ name: "http-b", pools: ["h-1", "h-2"], slots: 3 });
    expect(urlOf(a)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const health = await get(`${urlOf(a)}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });

    const ready = await get(`${urlOf(a)}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      ready: true,
      checks: { daemon: { ok: true }, nats: { ok: true }, "consumer:pool-h-1": { ok: true } },
    });

    const spec = nodeTask("process.exit(0)", { pool: "h-2" });
    await mesh.client.api.submit([spec]);
    await waitForState(mesh.client.api, spec.id, ["succeeded"]);
    const metrics = await waitFor(
      async () => {
        const text = await (await get(`${urlOf(b)}/metrics`)).text();
        return /agentmesh_attempts_total\{pool="h-2",outcome="succeeded",worker="http-b"\} 1/.test(text)
          ? text
          : undefined;
      },
      { name: "b's /metrics counts the attempt", timeoutMs: 20_000 },
    );
    const res = await get(`${urlOf(b)}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics).toMatch(/^# TYPE agentmesh_claim_latency_seconds histogram$/m);
    expect(metrics).toMatch(/^agentmesh_slots\{worker="http-b"\} 3$/m);
    expect(metrics).toMatch(/^agentmesh_queue_pending_messages\{pool="h-1",worker="http-b"\} 0$/m);
    expect(metrics).toMatch(/^agentmesh_workers_alive\{worker="http-b"\} [2-9]/m);
    expect(metrics).toMatch(/^process_resident_memory_bytes\{worker="http-b"\} \d+/m);
    expect(metrics).not.toContain(spec.id);

    // Any daemon's /sd lists both daemons (from the presence registry).
    for (const d of [a, b]) {
      const groups = await sdOf(d);
      const byWorker = new Map(groups.map((g) => [g.labels.__meta_agentmesh_worker, g]));
      expect(byWorker.get("http-a")).toEqual({
        targets: [new URL(urlOf(a)).host],
        labels: {
          __meta_agentmesh_worker: "http-a",
          __meta_agentmesh_worker_id: a.workerId,
          __meta_agentmesh_host: a.config.host,
          __meta_agentmesh_pools: ",h-1,",
          __meta_agentmesh_version: expect.any(String),
          __meta_agentmesh_draining: "false",
          // Bound to 127.0.0.1 (the default): the target is truthfully a loopback one.
          __meta_agentmesh_reach: "loopback",
          __meta_agentmesh_addresses: ",127.0.0.1,",
        },
      });
      expect(byWorker.get("http-b")?.labels.__meta_agentmesh_pools).toBe(",h-1,h-2,");
      expect(byWorker.get("http-b")?.targets).toEqual([new URL(urlOf(b)).host]);
    }
    const sdRes = await get(`${urlOf(a)}/sd`);
    expect(sdRes.headers.get("content-type")).toMatch(/^application\/json/);

    const missing = await get(`${urlOf(a)}/nope`);
    expect(missing.status).toBe(404);
  });

  it("drops a stopped daemon from /sd", async () => {
    const stays = await meshd({ name: "sd-stays", pools: ["h-sd"] });
    const goes = await meshd({ name: "sd-goes", pools: ["h-sd"] });
    const goneUrl = urlOf(goes);
    await waitFor(
      async () => (await sdOf(stays)).some((g) => g.labels.__meta_agentmesh_worker === "sd-goes"),
      {
        name: "sd-goes listed",
        timeoutMs: 10_000,
      },
    );
    await goes.stop(500);
    await waitFor(
      async () => !(await sdOf(stays)).some((g) => g.labels.__meta_agentmesh_worker === "sd-goes"),
      {
        name: "sd-goes gone from /sd",
        timeoutMs: 10_000,
      },
    );
    // and its listener is closed
    await expect(fetch(`${goneUrl}/healthz`)).rejects.toThrow();
  });

  it("requires the bearer token for /metrics and /sd, not for the probes", async () => {
    const dir = await makeTempDir("meshd-token-");
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "s3cret-token\n", { mode: 0o600 });
    const d = await meshd({ name: "http-token", pools: ["h-token"], http: { tokenFile } });
    const base = urlOf(d);
    for (const path of ["/metrics", "/sd"]) {
      const none = await get(`${base}${path}`);
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await get(`${base}${path}`, "wrong")).status).toBe(401);
      expect((await get(`${base}${path}`, "s3cret-token")).status).toBe(200);
    }
    expect((await get(`${base}/healthz`)).status).toBe(200);
    expect((await get(`${base}/readyz`)).status).toBe(200);
  });

  it("serves HTTPS with a certificate, advertising an https URL; plain HTTP is refused", async () => {
    const dir = await makeTempDir("meshd-tls-");
    const { cert, key } = selfSignedCert(dir);
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "tls-token\n", { mode: 0o600 });
    const d = await meshd({
      name: "http-tls",
      pools: ["h-tls"],
      http: { tokenFile, tlsCertFile: cert, tlsKeyFile: key },
    });
    const url = urlOf(d);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(cert);
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${url}/metrics`,
        { ca, headers: { authorization: "Bearer tls-token" } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(body.status).toBe(200);
    expect(body.text).toContain("agentmesh_slots");
    await expect(fetch(`${url.replace("https:", "http:")}/healthz`)).rejects.toThrow();
    const groups = await new Promise<string>((resolve, reject) => {
      httpsRequest(`${url}/sd`, { ca, headers: { authorization: "Bearer tls-token" } }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => resolve(text));
      })
        .on("error", reject)
        .end();
    });
    expect(JSON.parse(groups).some((g: TargetGroup) => g.labels.__scheme__ === "https")).toBe(true);
  });

  it("refuses to start when the token file cannot be read", async () => {
    const err = await meshd({ http: { tokenFile: "/nonexistent/token" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).code).toBe("INVALID_ARGUMENT");
    expect((err as MeshError).message).toMatch(/http\.tokenFile/);
  });

  it("advertises the configured address, and no URL at all when HTTP is off", async () => {
    const adv = await meshd({
      name: "http-adv",
      pools: ["h-adv"],
      http: { advertise: "metrics.example:9470" },
    });
    expect(urlOf(adv)).toBe("http://metrics.example:9470");
    const off = await meshd({ name: "http-off", pools: ["h-adv"], http: { enabled: false } });
    expect(off.snapshot().httpUrl).toBeUndefined();
  });

  it("/readyz answers 503 while NATS is down and 200 again after it is back", async () => {
    const own = await NatsServer.start();
    try {
      const d = await meshd({ name: "http-ready", pools: ["h-ready"] }, own.url);
      const base = urlOf(d);
      expect((await get(`${base}/readyz`)).status).toBe(200);
      await own.stop();
      const down = await waitFor(
        async () => {
          const r = await get(`${base}/readyz`);
          return r.status === 503
            ? ((await r.json()) as { checks: Record<string, { ok: boolean }> })
            : undefined;
        },
        { name: "/readyz 503", timeoutMs: 20_000 },
      );
      expect(down.checks.nats?.ok).toBe(false);
      expect((await get(`${base}/healthz`)).status).toBe(200);
      await own.restart();
      await waitFor(async () => (await get(`${base}/readyz`)).status === 200, {
        name: "/readyz 200 again",
        timeoutMs: 30_000,
      });
      await d.stop(500);
    } finally {
      await own.cleanup();
    }
  });
});

// ---------------------------------------------------------------- the server on its own

const routes = {
  readiness: async () => ({ ready: false, checks: { daemon: { ok: false, detail: "daemon is new" } } }),
  targets: async () => [],
};

describe("HttpServer lifecycle", () => {
  it("refuses a second start; stop is idempotent, also before start", async () => {
    const never = new HttpServer({ host: "127.0.0.1", port: 0, routes });
    await never.stop();
    await never.stop();
    await expect(never.start()).rejects.toThrow(/already stopped/);

    const s = new HttpServer({ host: "127.0.0.1", port: 0, routes });
    const addr = await s.start();
    expect(addr.port).toBeGreaterThan(0);
    await expect(s.start()).rejects.toThrow(/already running/);
    const r = await fetch(`http://127.0.0.1:${addr.port}/readyz`);
    expect(r.status).toBe(503);
    // without metrics, /metrics says so
    expect((await fetch(`http://127.0.0.1:${addr.port}/metrics`)).status).toBe(404);
    // a kept-alive client connection does not hold stop() up
    const keep = await fetch(`http://127.0.0.1:${addr.port}/healthz`, { keepalive: true });
    expect(keep.status).toBe(200);
    await Promise.all([s.stop(), s.stop()]);
    await expect(fetch(`http://127.0.0.1:${addr.port}/healthz`)).rejects.toThrow();
  });

  it("reports a taken port as a MeshError naming the address", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const s = new HttpServer({ host: "127.0.0.1", port, routes });
      const err = await s.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MeshError);
      expect((err as MeshError).code).toBe("UNAVAILABLE");
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
      await s.stop();
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it("answers 500 with the error when a route fails", async () => {
    const s = new HttpServer({
      host: "127.0.0.1",
      port: 0,
      routes: { ...routes, targets: async () => Promise.reject(new Error("kv down")) },
    });
    const { port } = await s.start();
    try {
      const r = await fetch(`http://127.0.0.1:${port}/sd`);
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ error: "kv down" });
    } finally {
      await s.stop();
    }
  });
});

describe("service discovery helpers", () => {
  const w = (over: Partial<WorkerInfo>): WorkerInfo => ({
    v: 1,
    workerId: "w-1",
    name: "one",
    host: "box",
    pools: ["default"],
    labels: {},
    runners: ["command"],
    slotsTotal: 1,
    slotsFree: 1,
    running: [],
    version: "1.2.3",
    startedAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:00.000Z",
    ...over,
  });

  it("turns workers into target groups: no URL no target, duplicates once, https and path prefixes", () => {
    const groups = targetGroups([
      w({ workerId: "a", httpUrl: "http://10.0.0.1:9470" }),
      w({ workerId: "dup", httpUrl: "http://10.0.0.1:9470/" }),
      w({ workerId: "none" }),
      w({ workerId: "bad", httpUrl: "not a url" }),
      w({ workerId: "tls", httpUrl: "https://proxy.example/mesh/box", draining: true }),
      w({ workerId: "v6", httpUrl: "http://[::1]:9000" }),
    ]);
    expect(groups.map((g) => g.targets[0])).toEqual(["10.0.0.1:9470", "proxy.example:443", "[::1]:9000"]);
    expect(groups[1]?.labels).toMatchObject({
      __scheme__: "https",
      __metrics_path__: "/mesh/box/metrics",
      __meta_agentmesh_draining: "true",
    });
    expect(groups[0]?.labels.__scheme__).toBeUndefined();
    expect(groups[0]?.labels.__metrics_path__).toBeUndefined();
  });

  it("derives the advertised URLs: interface addresses for a wildcard bind, loopback said as such", () => {
    const nic = (address: string, family: "IPv4" | "IPv6", internal = false) => ({
      address,
      family,
      internal,
      netmask: "",
      mac: "",
      cidr: null,
      ...(family === "IPv6" ? { scopeid: 0 } : {}),
    });
    const ifs = {
      lo: [nic("127.0.0.1", "IPv4", true), nic("::1", "IPv6", true)],
      eth0: [nic("10.0.0.5", "IPv4"), nic("fe80::1", "IPv6"), nic("2001:db8::5", "IPv6")],
      eth1: [nic("192.168.1.9", "IPv4")],
    } as Parameters<typeof advertisedUrls>[1];
    const adv = (o: Parameters<typeof advertisedUrls>[0], i = ifs) => advertisedUrls(o, i);
    expect(adv({ bindHost: "127.0.0.1", port: 4000 })).toEqual({
      urls: ["http://127.0.0.1:4000"],
      reach: "loopback",
    });
    expect(adv({ bindHost: "0.0.0.0", port: 4000 })).toEqual({
      urls: ["http://10.0.0.5:4000", "http://192.168.1.9:4000"],
      reach: "network",
    });
    expect(adv({ bindHost: "::", port: 4000 }).urls).toEqual([
      "http://10.0.0.5:4000",
      "http://192.168.1.9:4000",
      "http://[2001:db8::5]:4000",
    ]);
    // A machine with loopback only cannot be reached from elsewhere, and says so.
    expect(adv({ bindHost: "0.0.0.0", port: 4000 }, { lo: ifs!.lo })).toEqual({
      urls: ["http://127.0.0.1:4000"],
      reach: "loopback",
    });
    expect(adv({ bindHost: "::1", port: 4000 })).toEqual({ urls: ["http://[::1]:4000"], reach: "loopback" });
    expect(adv({ bindHost: "0.0.0.0", port: 4000, advertise: "10.1.2.3" }).urls).toEqual([
      "http://10.1.2.3:4000",
    ]);
    expect(adv({ bindHost: "0.0.0.0", port: 4000, advertise: ["10.1.2.3:80", "box"] }).urls).toEqual([
      "http://10.1.2.3:80",
      "http://box:4000",
    ]);
    expect(adv({ bindHost: "0.0.0.0", port: 4000, advertise: "https://p.example/m/" }).urls).toEqual([
      "https://p.example/m",
    ]);
  });

  it("says in /sd whether a target is reachable from other machines", () => {
    const [local, remote] = targetGroups([
      w({ workerId: "a", httpUrl: "http://127.0.0.1:9470", reach: "loopback" }),
      w({
        workerId: "b",
        httpUrl: "http://10.0.0.5:9470",
        httpUrls: ["http://10.0.0.5:9470", "http://192.168.1.9:9470"],
        reach: "network",
      }),
    ]);
    expect(local?.labels.__meta_agentmesh_reach).toBe("loopback");
    expect(remote?.targets).toEqual(["10.0.0.5:9470"]);
    expect(remote?.labels).toMatchObject({
      __meta_agentmesh_reach: "network",
      __meta_agentmesh_addresses: ",10.0.0.5,192.168.1.9,",
    });
  });
});
