/**
 * The shared fixture of a test file: one nats-server and one mesh client for all its tests;
 * daemons the tests start are stopped, and temp dirs removed, after the last test.
 */
import { afterAll, beforeAll } from "vitest";
import type { Daemon } from "../../daemon/index.js";
import { NatsServer, removeTempDirs } from "../harness/index.js";
import { type MeshClient, openClient } from "./mesh.js";

export interface MeshFixture {
  nats: NatsServer;
  client: MeshClient;
  /** Daemons to stop after all tests. */
  daemons: Daemon[];
}

export function useMesh(clientOpts: Parameters<typeof openClient>[1] = {}): MeshFixture {
  const fx = { daemons: [] as Daemon[] } as MeshFixture;
  beforeAll(async () => {
    fx.nats = await NatsServer.start();
    fx.client = await openClient(fx.nats.url, clientOpts);
  });
  afterAll(async () => {
    await Promise.allSettled(fx.daemons.map((d) => d.stop(1000)));
    await fx.client?.close();
    await fx.nats?.cleanup();
    await removeTempDirs();
  });
  return fx;
}
