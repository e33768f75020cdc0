// Proves the harness against real nats-server processes: if these pass, integration tests can
// trust start/stop/kill/restart/cluster to mean what they say.
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { dirname } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  containerRuntimeAvailable,
  Deferred,
  findNatsServerBinary,
  freePort,
  makeTempDir,
  NATS_BIN_ENV,
  NATS_CONTAINER_ENV,
  NatsCluster,
  NatsServer,
  NatsServerNotFoundError,
  NatsServerStartError,
  removeTempDirs,
  waitFor,
  withTimeout,
} from "./harness/index.js";

// Everything a test starts is registered here and torn down after it, pass or fail.
const cleanups: Array<() => Promise<unknown>> = [];
function defer<T extends { cleanup(): Promise<void> } | NatsConnection>(thing: T): T {
  cleanups.push(() => ("cleanup" in thing ? thing.cleanup() : thing.close()));
  return thing;
}
afterEach(async () => {
  // Newest first (connections before their servers); one failing cleanup must not skip the rest.
  const errors: unknown[] = [];
  for (const fn of cleanups.splice(0).reverse()) {
    await fn().catch((err: unknown) => errors.push(err));
  }
  await removeTempDirs();
  if (errors.length > 0) throw errors[0];
});

describe("NatsServer", () => {
  it("starts on a loopback port and serves JetStream", async () => {
    const server = defer(await NatsServer.start());
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.running).toBe(true);
    expect(server.pid).toBeTypeOf("number");

    const nc = defer(await connect({ servers: server.url }));
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "START", subjects: ["start.>"] });
    const ack = await jetstream(nc).publish("start.one", "hello");
    expect(ack.seq).toBe(1);
    expect((await jsm.streams.info("START")).state.messages).toBe(1);
  });

  it("restart() reuses the port and the file store keeps stream messages", async () => {
    const server = defer(await NatsServer.start());
    const { port, storeDir } = server;
    const nc = defer(await connect({ servers: server.url }));
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "KEEP", subjects: ["keep.>"] });
    const js = jetstream(nc);
    for (let i = 0; i < 5; i++) await js.publish("keep.x", `m${i}`);
    await nc.close();

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.storeDir).toBe(storeDir);
    expect(server.running).toBe(true);

    const nc2 = defer(await connect({ servers: server.url }));
    const info = await (await jetstreamManager(nc2)).streams.info("KEEP");
    expect(info.state.messages).toBe(5);
  });

  it("kill() drops clients; restart() brings the server back and clients reconnect", async () => {
    const server = defer(await NatsServer.start());
    const nc = defer(
      await connect({
        servers: server.url,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 50,
        pingInterval: 1_000,
      }),
    );
    const disconnected = new Deferred<void>();
    const reconnected = new Deferred<void>();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") disconnected.resolve();
        if (s.type === "reconnect") reconnected.resolve();
      }
    })();

    await server.kill();
    expect(server.running).toBe(false);
    expect(server.pid).toBeUndefined();
    await withTimeout(disconnected.promise, 20_000, "client sees disconnect");
    expect(reconnected.settled).toBe(false);

    await server.restart();
    await withTimeout(reconnected.promise, 30_000, "client reconnects");
    await nc.flush();
    const jsm = await jetstreamManager(nc);
    expect((await jsm.getAccountInfo()).streams).toBe(0);
  });

  it("stop() and kill() are idempotent; cleanup() removes the temp dirs", async () => {
    const server = defer(await NatsServer.start());
    const workDir = dirname(server.configFile);
    expect(existsSync(server.storeDir)).toBe(true);
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    await server.kill();
    expect(server.running).toBe(false);
    expect(existsSync(server.storeDir)).toBe(true); // stop keeps the store for restart()

    await server.cleanup();
    await server.cleanup();
    expect(existsSync(server.storeDir)).toBe(false);
    expect(existsSync(workDir)).toBe(false);
  });

  it("keeps a caller-provided storeDir on cleanup()", async () => {
    const storeDir = await makeTempDir("harness-store-");
    const server = defer(await NatsServer.start({ storeDir }));
    expect(server.storeDir).toBe(storeDir);
    await server.cleanup();
    expect(existsSync(storeDir)).toBe(true);
    await removeTempDirs();
    expect(existsSync(storeDir)).toBe(false);
  });

  it("rejects with the exit code and log lines when the server exits before ready", async () => {
    const err = await NatsServer.start({ extraConfig: "this is { not valid" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerStartError);
    expect((err as Error).message).toMatch(/exited before ready \(exit code \d+\)/);
    expect((err as NatsServerStartError).logs.length).toBeGreaterThan(0);
  });

  it("reports address-in-use on a fixed port that is taken", async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));

    const err = await NatsServer.start({ port, jetstream: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerStartError);
    expect((err as NatsServerStartError).addressInUse).toBe(true);
  });
});

describe("NatsCluster", () => {
  it("forms a 3-node JetStream cluster; an R3 stream survives losing a member, which rejoins", {
    timeout: 180_000,
  }, async () => {
    const cluster = defer(await NatsCluster.start());
    expect(cluster.servers).toHaveLength(3);
    expect(new Set(cluster.urls).size).toBe(3);
    await cluster.waitForJetStream();

    const nc = defer(
      await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 }),
    );
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 });
    const js = jetstream(nc);
    for (let i = 0; i < 10; i++) await js.publish("r3.x", `m${i}`, { msgID: `m${i}` });

    // Kill the stream leader: the harder case, it forces a re-election before acks resume.
    const leaderName = (await jsm.streams.info("R3")).cluster?.leader;
    const victim = cluster.servers.find((s) => s.serverName === leaderName);
    expect(victim).toBeDefined();
    await victim!.kill();

    // Publishes to a stream without a leader get no reply, so keep attempts short; dedup by
    // msgID so an attempt that timed out but landed is not counted twice.
    const ack = await waitFor(
      () => js.publish("r3.x", "after-kill", { msgID: "after-kill", timeout: 2_000 }),
      {
        name: "R3 publish acked with one member down",
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
    expect(ack.stream).toBe("R3");

    await victim!.restart();
    await waitFor(
      async () => {
        const info = await jsm.streams.info("R3");
        const replicas = info.cluster?.replicas ?? [];
        const names = [info.cluster?.leader, ...replicas.map((r) => r.name)];
        const healthy = replicas.length === 2 && replicas.every((r) => r.current && !r.offline);
        return healthy && names.includes(victim!.serverName) && info.state.messages === 11;
      },
      { name: "restarted member rejoins the R3 stream", timeoutMs: 60_000, intervalMs: 250 },
    );
  });
});

describe("missing nats-server", () => {
  function forceEnv(vars: Record<string, string>): void {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    cleanups.push(async () => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
  }

  it("says how to install nats-server or start Docker", async () => {
    forceEnv({ [NATS_BIN_ENV]: "/nonexistent/nats-server", [NATS_CONTAINER_ENV]: "0" });
    expect(findNatsServerBinary()).toBeUndefined();
    const err = await NatsServer.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerNotFoundError);
    const message = (err as Error).message;
    expect(message).toContain("install nats-server");
    expect(message).toContain("sudo apt-get install nats-server");
    expect(message).toContain("brew install nats-server");
    expect(message).toContain("start Docker");
    await expect(NatsCluster.start()).rejects.toBeInstanceOf(NatsServerNotFoundError);
  });

  it("gives the same error when only the binary is missing and no container runtime answers", async (ctx) => {
    forceEnv({ [NATS_BIN_ENV]: "/nonexistent/nats-server" });
    if (await containerRuntimeAvailable()) ctx.skip(); // would start a container instead
    await expect(NatsServer.start()).rejects.toThrow(/sudo apt-get install nats-server.*start Docker/);
  });
});

describe("wait helpers", () => {
  it("waitFor resolves with the first truthy value and names itself on timeout", async () => {
    let n = 0;
    await expect(waitFor(() => (++n >= 3 ? n : undefined), { name: "count" })).resolves.toBe(3);
    await expect(
      waitFor(
        () => {
          throw new Error("boom");
        },
        { name: "never", timeoutMs: 100 },
      ),
    ).rejects.toThrow(/"never" timed out.*boom/);
  });

  it("withTimeout rejects with the given name", async () => {
    await expect(withTimeout(new Deferred<void>().promise, 50, "latch")).rejects.toThrow(/"latch" timed out/);
  });
});
