// The daemon's own grpc.health.v1 codec and service (daemon/servers/grpc/health.ts) against
// grpc-health-check's proto-loaded definition as the oracle: the same bytes both ways, and a real
// grpc-js server answering Check, Watch and List to a client built from the oracle's definition.
import { join } from "node:path";
import {
  type Client,
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServiceClientConstructor,
} from "@grpc/grpc-js";
import { service as oracle } from "grpc-health-check";
import { afterAll, describe, expect, it } from "vitest";
import { HEALTH_SERVICE, HealthService } from "../daemon/servers/grpc/health.js";
import { makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";

afterAll(removeTempDirs);

type Unary = (req: object, cb: (err: { code: number } | null, res: unknown) => void) => void;
interface HealthClient extends Client {
  check: Unary;
  list: Unary;
  watch(req: object): NodeJS.EventEmitter & { cancel(): void };
}
type Codec = {
  requestSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): unknown;
};
const ours = HEALTH_SERVICE as unknown as Record<string, Codec>;
const theirs = oracle as unknown as Record<string, Codec>;

describe("health codec", () => {
  it("encodes and decodes Check/Watch requests and responses as grpc-health-check does", () => {
    for (const m of ["Check", "Watch"]) {
      for (const service of ["", "agentmesh.v1.MeshService", "ü-svc"]) {
        const req = ours[m]!.requestSerialize({ service });
        expect(req.equals(theirs[m]!.requestSerialize({ service }))).toBe(true);
        expect(ours[m]!.requestDeserialize(theirs[m]!.requestSerialize({ service }))).toEqual({ service });
      }
      for (const status of ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]) {
        const res = ours[m]!.responseSerialize({ status });
        expect(res.equals(theirs[m]!.responseSerialize({ status }))).toBe(true);
        expect((theirs[m]!.responseDeserialize(res) as { status: string }).status).toBe(status);
        expect(ours[m]!.responseDeserialize(res)).toEqual({ status });
      }
    }
  });

  it("encodes List responses as grpc-health-check does", () => {
    const statuses = { "": { status: "SERVING" }, "agentmesh.v1.MeshService": { status: "NOT_SERVING" } };
    const b = ours.List!.responseSerialize({ statuses });
    expect(theirs.List!.responseDeserialize(b)).toEqual({ statuses });
    expect(ours.List!.responseDeserialize(theirs.List!.responseSerialize({ statuses }))).toEqual({ statuses });
  });
});

describe("health service", () => {
  it("answers Check, Watch and List over a real server to an oracle client", async () => {
    const dir = await makeTempDir("health-");
    const sock = `unix:${join(dir, "h.sock")}`;
    const health = new HealthService({ "": "SERVING", svc: "NOT_SERVING" });
    const server = new Server();
    health.addToServer(server);
    await new Promise<void>((res, rej) =>
      server.bindAsync(sock, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    const Ctor = makeGenericClientConstructor(oracle, "Health") as ServiceClientConstructor;
    const client = new Ctor(sock, credentials.createInsecure()) as unknown as HealthClient;
    try {
      const unary = (name: "check" | "list", req: object) =>
        new Promise<{ err: { code: number } | null; res: unknown }>((res) =>
          client[name](req, (err, r) => res({ err, res: r })),
        );
      expect((await unary("check", { service: "" })).res).toEqual({ status: "SERVING" });
      expect((await unary("check", { service: "nope" })).err?.code).toBe(5);
      expect((await unary("list", {})).res).toEqual({
        statuses: { "": { status: "SERVING" }, svc: { status: "NOT_SERVING" } },
      });
      const seen: string[] = [];
      const call = client.watch({ service: "svc" });
      call.on("data", (m: { status: string }) => seen.push(m.status));
      call.on("error", () => {});
      await waitFor(() => seen.length === 1, { name: "first watch status" });
      health.setStatus("svc", "SERVING");
      await waitFor(() => seen.length === 2, { name: "changed status" });
      expect(seen).toEqual(["NOT_SERVING", "SERVING"]);
      call.cancel();
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
