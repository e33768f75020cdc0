/**
 * Server reflection from descriptors embedded at codegen time (proto/gen/descriptor.ts), so it
 * works from dist/ where no .proto file is shipped. Health's descriptor comes from
 * grpc-health-check itself.
 *
 * Loaded on the first reflection call, not at start: @grpc/reflection (with proto-loader and
 * protobufjs) costs an idle daemon several MB for a service only tools like grpcurl ask. The
 * server registers the two reflection methods with pass-through (de)serialisers and, once
 * loaded, hands each call to @grpc/reflection's own handler through a view that (de)serialises
 * with its definitions.
 */
import { EventEmitter } from "node:events";
import type { MethodDefinition, Server, ServiceDefinition, UntypedHandleCall } from "@grpc/grpc-js";
import { MESH_SERVICE_NAME, meshFileDescriptorProtos } from "../../../proto/index.js";

const PATHS = ["v1", "v1alpha"].map((v) => `/grpc.reflection.${v}.ServerReflection/ServerReflectionInfo`);

interface Loaded {
  method: MethodDefinition<unknown, unknown>;
  handler: (call: EventEmitter) => void;
}

/** @grpc/reflection's definitions and handlers by method path, captured from its addToServer. */
async function load(): Promise<Map<string, Loaded>> {
  const [{ ReflectionService }, { service: healthService }] = await Promise.all([
    import("@grpc/reflection"),
    import("grpc-health-check"),
  ]);
  type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];
  // The reflection service only reads `fileDescriptorProtos` from each entry.
  const pkg = {
    [MESH_SERVICE_NAME]: { fileDescriptorProtos: meshFileDescriptorProtos() },
    "grpc.health.v1.HealthCheckRequest": {
      fileDescriptorProtos: healthService.Check?.requestType.fileDescriptorProtos ?? [],
    },
  } as unknown as PackageDefinition;
  const out = new Map<string, Loaded>();
  new ReflectionService(pkg).addToServer({
    addService(def: ServiceDefinition, impl: Record<string, UntypedHandleCall>) {
      for (const [name, method] of Object.entries(def)) {
        out.set(method.path, { method, handler: impl[name] as unknown as Loaded["handler"] });
      }
    },
  });
  return out;
}

const raw = (b: Buffer): Buffer => b;

/** Registers server reflection (v1 and v1alpha) on `server`; @grpc/reflection loads on first use. */
export function addReflection(server: Pick<Server, "addService">): void {
  let loading: Promise<Map<string, Loaded>> | undefined;
  for (const path of PATHS) {
    const method = {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    };
    const handler = (call: EventEmitter & { write(b: Buffer): boolean; end(): void; destroy(e?: Error): void }) => {
      loading ??= load();
      loading.then(
        (loaded) => {
          const real = loaded.get(path);
          if (!real) return call.destroy(new Error(`reflection: ${path} is not served`));
          // The real handler reads messages from "data" and "end" and answers with write/end.
          const view = Object.assign(new EventEmitter(), {
            write: (msg: unknown) => call.write(real.method.responseSerialize(msg)),
            end: () => call.end(),
          });
          real.handler(view);
          call.on("data", (b: Buffer) => view.emit("data", real.method.requestDeserialize(b)));
          call.on("end", () => view.emit("end"));
        },
        (err: unknown) => call.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    };
    server.addService({ ServerReflectionInfo: method } as ServiceDefinition, {
      ServerReflectionInfo: handler as unknown as UntypedHandleCall,
    });
  }
}
