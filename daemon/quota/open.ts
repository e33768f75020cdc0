/** The `mesh-slots` bucket, created on first use. */
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { SLOTS_BUCKET } from "../nats/index.js";

export function openSlotsBucket(js: JetStreamClient, replicas: number): Promise<KV> {
  return new Kvm(js).create(SLOTS_BUCKET, { history: 1, replicas });
}
