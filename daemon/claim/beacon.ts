/**
 * Lease beacons: after each successful lease write the owner announces the record's new
 * revision on core NATS (`mesh.lease.<task id>`, no stream captures it). Observers note the
 * moment they hear of a revision as their first observation of it, so a dead owner's silence is
 * timed (on the observer's own clock, as always) from just after its last heartbeat rather than
 * from when its doorbell comes back, an ack wait later. A lost beacon only makes the observer
 * start its clock later (at the doorbell): never earlier than the revision existed.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { beaconSubject } from "../nats/index.js";

export interface LeaseBeacon {
  announce(taskId: string, revision: number): void;
}

export class NatsLeaseBeacon implements LeaseBeacon {
  private sub: Subscription | undefined;

  constructor(private readonly nc: NatsConnection) {}

  announce(taskId: string, revision: number): void {
    try {
      this.nc.publish(beaconSubject(taskId), String(revision));
    } catch {
      // closed or reconnecting: observers fall back to the doorbell
    }
  }

  /** Calls `onRevision` for every announcement heard. Idempotent. */
  listen(onRevision: (taskId: string, revision: number) => void): void {
    if (this.sub) return;
    const prefix = beaconSubject("");
    this.sub = this.nc.subscribe(beaconSubject("*"), {
      callback: (err, m) => {
        if (err) return;
        const revision = Number(m.string());
        if (Number.isSafeInteger(revision) && revision > 0)
          onRevision(m.subject.slice(prefix.length), revision);
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}
