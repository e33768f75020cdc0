/**
 * The agent-mesh API (package `agentmesh.v1`): a thin wrapper over the ts-proto output in
 * `gen/` (regenerate with `npm run proto:gen`). Import the API from here, never from `gen/`.
 */

import { TaskState } from "./gen/agentmesh/v1/mesh.js";
import { fileDescriptorProtosBase64 } from "./gen/descriptor.js";

export * from "./gen/agentmesh/v1/mesh.js";

export const MESH_SERVICE_NAME = "agentmesh.v1.MeshService";

/** Serialized FileDescriptorProtos of the API (for server reflection), embedded at codegen time. */
export function meshFileDescriptorProtos(): Buffer[] {
  return fileDescriptorProtosBase64.map((b) => Buffer.from(b, "base64"));
}

const STATE_NAMES: ReadonlyArray<readonly [TaskState, string]> = [
  [TaskState.TASK_STATE_WAITING, "waiting"],
  [TaskState.TASK_STATE_QUEUED, "queued"],
  [TaskState.TASK_STATE_CLAIMED, "claimed"],
  [TaskState.TASK_STATE_RUNNING, "running"],
  [TaskState.TASK_STATE_SUCCEEDED, "succeeded"],
  [TaskState.TASK_STATE_FAILED, "failed"],
  [TaskState.TASK_STATE_CANCELLED, "cancelled"],
  [TaskState.TASK_STATE_DEAD, "dead"],
];
const TO_NAME = new Map(STATE_NAMES);
const FROM_NAME = new Map(STATE_NAMES.map(([s, n]) => [n, s] as const));

/** `TASK_STATE_RUNNING` -> "running"; "unknown" for UNSPECIFIED or values newer than this client. */
export function taskStateName(state: TaskState): string {
  return TO_NAME.get(state) ?? "unknown";
}

/** "running" -> `TASK_STATE_RUNNING`; undefined for names that are not task states. */
export function taskStateFromName(name: string): TaskState | undefined {
  return FROM_NAME.get(name);
}
