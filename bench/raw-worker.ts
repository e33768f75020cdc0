/**
 * Baseline worker for the `claims` benchmark: raw JetStream, no mesh. `lanes` concurrent loops
 * share one durable pull consumer, each: next() one message, ackAck(), report its latency.
 * Usage: node raw-worker.js <natsUrl> <stream> <consumer> <lanes>
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const [url, stream, consumerName, lanesArg] = process.argv.slice(2);
const nc = await connect({ servers: url! });
const js = jetstream(nc);
const consumer = await js.consumers.get(stream!, consumerName!);
let stop = false;
process.on("SIGTERM", () => {
  stop = true;
});
const lanes = Array.from({ length: Number(lanesArg ?? 4) }, async () => {
  while (!stop) {
    const m = await consumer.next({ expires: 1000 }).catch(() => null);
    if (!m) continue;
    const sent = Number(m.json<{ t: number }>().t);
    process.stdout.write(`${Date.now() - sent}\n`);
    await m.ackAck().catch(() => undefined);
  }
});
await Promise.all(lanes);
await nc.close();
