/**
 * Lease beacons: after each successful lease write the owner announces the record's new
 * revision on core NATS (`mesh.lease.<task id>`, no stream captures it). Observers note the
 * moment they hear of a revision as their first observation of it, so a dead owner's silence is
 * timed (on the observer's own clock, as always) from just after its last heartbeat rather than
 * from when its doorbell comes back, an ack wait later. A lost beacon only makes the observer
 * start its clock later (at the doorbell): never earlier than the revision existed.
 *
 * The listening side is a part (lib/lifecycle.ts): start() subscribes, stop() unsubscribes.
 * The daemon can live without it (takeovers then time from the doorbell), so a subscription
 * the server ends is logged as the part's death, not the daemon's.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { Part } from "../../lib/index.js";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { beaconSubject } from "../nats/index.js";

export interface LeaseBeacon {
  announce(taskId: string, revision: number): void;
}

export class NatsLeaseBeacon extends Part implements LeaseBeacon {
  private sub: Subscription | undefined;

  /** `onRevision` is called for every announcement heard while started. */
  constructor(
    private readonly nc: NatsConnection,
    log: Logger,
    private readonly onRevision: (taskId: string, revision: number) => void = () => undefined,
  ) {
    super("lease-beacon", log);
  }

  announce(taskId: string, revision: number): void {
    try {
      this.nc.publish(beaconSubject(taskId), String(revision));
    } catch {
      // closed or reconnecting: observers fall back to the doorbell
    }
  }

  protected onStart(): void {
    const prefix = beaconSubject("");
    const sub = this.nc.subscribe(beaconSubject("*"), {
      callback: (err, m) => {
        if (err) return;
        const revision = Number(m.string());
        if (Number.isSafeInteger(revision) && revision > 0)
          this.onRevision(m.subject.slice(prefix.length), revision);
      },
    });
    this.sub = sub;
    void sub.closed.then((err) => {
      // Our own unsubscribe (stop), or the connection's close (the daemon's to report).
      if (this.life.stopSignal.aborted || this.nc.isClosed()) return;
      void this.life.die(
        new MeshError(
          "UNAVAILABLE",
          `the lease beacon subscription ended${err ? ` (${errorMessage(err)})` : ""}; takeovers are timed from doorbells`,
          { cause: err },
        ),
      );
    });
  }

  protected onStop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}
