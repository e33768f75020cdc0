/**
 * Subject permissions per NATS role, in one place: `mesh up` renders them into its local
 * nats-server config and deploy/nats/ mirrors them (test/deploy-nats.test.ts checks both work).
 *
 * - daemon: everything meshd does: task records and presence (KV), doorbells, events, control
 *   subjects, the JetStream API (also behind a leaf node's domain), acks, and its inboxes.
 * - monitor: read-only: stream/consumer info, reading records, replaying events. Its own inbox
 *   prefix, so it can neither read nor forge the replies daemons get on `_INBOX.>`.
 * Nobody else needs NATS credentials: people submit through their local daemon's socket.
 */
import {
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  MESH_SUBJECTS,
  TASKS_BUCKET_STREAM,
  WORKERS_BUCKET_STREAM,
} from "./names.js";

export interface SubjectPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

export const DAEMON_PERMISSIONS: SubjectPermissions = {
  publish: {
    allow: [MESH_SUBJECTS, "$KV.>", "$O.>", "$JS.API.>", "$JS.*.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>"],
  },
  subscribe: { allow: [MESH_SUBJECTS, "_INBOX.>"] },
};

/** The inbox prefix a monitoring client must set (nats.js `inboxPrefix`, `nats --inbox-prefix`). */
export const MONITOR_INBOX_PREFIX = "_INBOX_monitor";

const READABLE_STREAMS = [EVENTS_STREAM, TASKS_BUCKET_STREAM, WORKERS_BUCKET_STREAM];

export const MONITOR_PERMISSIONS: SubjectPermissions = {
  publish: {
    allow: [
      "$JS.API.INFO",
      "$JS.API.STREAM.NAMES",
      "$JS.API.STREAM.LIST",
      "$JS.API.STREAM.INFO.*",
      "$JS.API.STREAM.MSG.GET.*",
      "$JS.API.DIRECT.GET.>",
      "$JS.API.CONSUMER.NAMES.*",
      "$JS.API.CONSUMER.LIST.*",
      "$JS.API.CONSUMER.INFO.*.*",
      // Watching and replaying: ephemeral consumers on the readable streams only (never on
      // the work queue, where pulling would take doorbells away from the daemons).
      ...READABLE_STREAMS.flatMap((s) => [
        `$JS.API.CONSUMER.CREATE.${s}`,
        `$JS.API.CONSUMER.CREATE.${s}.>`,
        `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
      ]),
      // Flow-control replies of ordered push consumers (`nats stream view`, KV watch).
      "$JS.FC.>",
    ],
  },
  subscribe: { allow: [EVENTS_SUBJECTS, `${MONITOR_INBOX_PREFIX}.>`] },
};

/** A permissions block in nats-server config syntax (JSON is a subset of it). */
export function renderPermissions(p: SubjectPermissions): string {
  return JSON.stringify(p);
}
