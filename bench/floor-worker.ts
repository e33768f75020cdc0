/**
 * Protocol-floor worker for the `claims` benchmark: the fenced claim protocol that issue 2
 * prescribes, written with plain nats.js calls and nothing else (no events, metrics, logs,
 * heartbeats, presence, runner or state machine). It shows what the protocol itself costs next
 * to the raw baseline, so the mesh's own overhead can be told apart from the protocol's.
 *
 * Each of `lanes` loops: next() one doorbell; compare-and-set the task record from queued to
 * running at the doorbell's revision; compare-and-set it to succeeded at the revision just
 * written; ackAck() the doorbell (as the raw baseline does); report the submit->running latency
 * (taken when it decides to write `running`, as a daemon stamps `startedAt`). A lost compare
 * acks the doorbell and moves on; any other error ends the worker, so the bench fails at once.
 * Usage: node floor-worker.js <natsUrl> <stream> <consumer> <bucket> <lanes>
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { kvSubject } from "../daemon/lite.js";
import { runLanes } from "./lanes.js";

interface Bell {
  id: string;
  revision: number;
  t: number;
  record: { state: string; attempt: number; owner?: { workerId: string }; finishedAt?: string };
}

const [url, stream, consumerName, bucket, lanesArg] = process.argv.slice(2);
const workerId = `floor-${process.pid}`;
await runLanes(url!, stream!, consumerName!, Number(lanesArg ?? 4), async (m, js) => {
  const bell = m.json<Bell>();
  const r = bell.record;
  const runningAt = Date.now();
  try {
    r.state = "running";
    r.attempt += 1;
    r.owner = { workerId };
    const claimed = await js.publish(kvSubject(bucket!, bell.id), JSON.stringify(r), {
      expect: { lastSubjectSequence: bell.revision },
    });
    r.state = "succeeded";
    r.finishedAt = new Date().toISOString();
    delete r.owner;
    await js.publish(kvSubject(bucket!, bell.id), JSON.stringify(r), {
      expect: { lastSubjectSequence: claimed.seq },
    });
  } catch (err) {
    // Wrong last sequence: the compare was lost and someone else holds the task.
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence)) {
      process.stderr.write(`floor worker: ${String(err)}\n`);
      process.exit(1);
    }
    await m.ackAck();
    return undefined;
  }
  await m.ackAck();
  return runningAt - bell.t;
});
