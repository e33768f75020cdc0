/**
 * grpc.health.v1.Health (Check, Watch, List) on the wire format alone. grpc-health-check does the
 * same but loads its .proto through proto-loader and protobufjs at import, about 4 MB of an idle
 * daemon's memory for two one-field messages; here they are encoded by hand with
 * @bufbuild/protobuf's wire helpers (already loaded for MeshService). Behaviour follows
 * grpc-health-check 2.x: Check of an unknown service is NOT_FOUND, Watch sends the current status
 * (SERVICE_UNKNOWN when there is none) and every change, List gives at most 100 services.
 */
import type { Server, ServiceDefinition, UntypedHandleCall } from "@grpc/grpc-js";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";
const STATUS_CODES: Record<ServingStatus, number> = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 };
const STATUS_NAMES = Object.keys(STATUS_CODES) as ServingStatus[];
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const LIST_LIMIT = 100;

/** HealthCheckRequest { string service = 1; } (HealthListRequest is empty: it reads as ""). */
function decodeRequest(buf: Buffer): { service: string } {
  const r = new BinaryReader(buf);
  let service = "";
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === 1 && type === WireType.LengthDelimited) service = r.string();
    else r.skip(type, no);
  }
  return { service };
}

function encodeRequest(v: { service?: string }): Buffer {
  const w = new BinaryWriter();
  // Written even when empty, as grpc-health-check (protobufjs) does: the same bytes either way.
  w.tag(1, WireType.LengthDelimited).string(v.service ?? "");
  return Buffer.from(w.finish());
}

/** HealthCheckResponse { ServingStatus status = 1; } */
function encodeResponse(v: { status: ServingStatus }): Buffer {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int32(STATUS_CODES[v.status] ?? 0);
  return Buffer.from(w.finish());
}

function decodeResponse(buf: Buffer): { status: ServingStatus } {
  const r = new BinaryReader(buf);
  let status: ServingStatus = "UNKNOWN";
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === 1 && type === WireType.Varint) status = STATUS_NAMES[r.int32()] ?? "UNKNOWN";
    else r.skip(type, no);
  }
  return { status };
}

/** HealthListResponse { map<string, HealthCheckResponse> statuses = 1; } */
function encodeList(v: { statuses: Record<string, { status: ServingStatus }> }): Buffer {
  const w = new BinaryWriter();
  for (const [service, resp] of Object.entries(v.statuses)) {
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(service);
    w.tag(2, WireType.LengthDelimited).bytes(encodeResponse(resp));
    w.join();
  }
  return Buffer.from(w.finish());
}

function decodeList(buf: Buffer): { statuses: Record<string, { status: ServingStatus }> } {
  const r = new BinaryReader(buf);
  const statuses: Record<string, { status: ServingStatus }> = {};
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no !== 1 || type !== WireType.LengthDelimited) {
      r.skip(type, no);
      continue;
    }
    const e = new BinaryReader(r.bytes());
    let key = "";
    let value: { status: ServingStatus } = { status: "UNKNOWN" };
    while (e.pos < e.len) {
      const [k, t] = e.tag();
      if (k === 1 && t === WireType.LengthDelimited) key = e.string();
      else if (k === 2 && t === WireType.LengthDelimited) value = decodeResponse(Buffer.from(e.bytes()));
      else e.skip(t, k);
    }
    statuses[key] = value;
  }
  return { statuses };
}

const method = (name: string, responseStream: boolean, encode: (v: never) => Buffer, decode: (b: Buffer) => unknown) => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: encodeRequest,
  requestDeserialize: decodeRequest,
  responseSerialize: encode,
  responseDeserialize: decode,
  originalName: name.toLowerCase(),
});

/** The service definition, also for clients (makeGenericClientConstructor). */
export const HEALTH_SERVICE = {
  Check: method("Check", false, encodeResponse, decodeResponse),
  Watch: method("Watch", true, encodeResponse, decodeResponse),
  List: method("List", false, encodeList, decodeList),
} as unknown as ServiceDefinition;

type Unary = (call: { request: { service: string } }, cb: (err: unknown, v?: unknown) => void) => void;
type Streaming = (call: {
  request: { service: string };
  write(v: unknown): boolean;
  on(ev: "cancelled", f: () => void): void;
}) => void;

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<(s: ServingStatus) => void>>();

  constructor(initial: Record<string, ServingStatus> = {}) {
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, status);
  }

  setStatus(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w(status);
  }

  addToServer(server: Pick<Server, "addService">): void {
    const check: Unary = (call, cb) => {
      const status = this.statuses.get(call.request.service);
      if (status) cb(null, { status });
      else cb({ code: NOT_FOUND, details: `Health status unknown for service ${call.request.service}` });
    };
    const watch: Streaming = (call) => {
      const service = call.request.service;
      const w = (status: ServingStatus) => void call.write({ status });
      const set = this.watchers.get(service) ?? new Set();
      this.watchers.set(service, set);
      set.add(w);
      call.on("cancelled", () => {
        set.delete(w);
        if (set.size === 0 && this.watchers.get(service) === set) this.watchers.delete(service);
      });
      call.write({ status: this.statuses.get(service) ?? "SERVICE_UNKNOWN" });
    };
    const list: Unary = (_call, cb) => {
      if (this.statuses.size > LIST_LIMIT) {
        cb({ code: RESOURCE_EXHAUSTED, details: "Too many services to list." });
        return;
      }
      cb(null, { statuses: Object.fromEntries([...this.statuses].map(([s, status]) => [s, { status }])) });
    };
    server.addService(HEALTH_SERVICE, {
      Check: check as unknown as UntypedHandleCall,
      Watch: watch as unknown as UntypedHandleCall,
      List: list as unknown as UntypedHandleCall,
    });
  }
}
