/**
 * Server reflection from descriptors embedded at codegen time (proto/gen/descriptor.ts), so it
 * works from dist/ where no .proto file is shipped. Health's descriptor comes from
 * grpc-health-check itself.
 */
import { ReflectionService } from "@grpc/reflection";
import { service as healthService } from "grpc-health-check";
import { MESH_SERVICE_NAME, meshFileDescriptorProtos } from "../../../proto/index.js";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

export function reflectionService(): ReflectionService {
  // The reflection service only reads `fileDescriptorProtos` from each entry.
  const pkg = {
    [MESH_SERVICE_NAME]: { fileDescriptorProtos: meshFileDescriptorProtos() },
    "grpc.health.v1.HealthCheckRequest": {
      fileDescriptorProtos: healthService.Check?.requestType.fileDescriptorProtos ?? [],
    },
  } as unknown as PackageDefinition;
  return new ReflectionService(pkg);
}
