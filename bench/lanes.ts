/**
 * The loop both baseline workers share: connect, then `lanes` concurrent loops on one durable
 * pull consumer, each taking one message at a time with next() and handing it to `handle`, until
 * SIGTERM. A handler returns the latency to report (one line on stdout), or undefined.
 */
import { type JetStreamClient, type JsMsg, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

export async function runLanes(
  url: string,
  stream: string,
  consumerName: string,
  lanes: number,
  handle: (m: JsMsg, js: JetStreamClient) => Promise<number | undefined>,
): Promise<void> {
  const nc = await connect({ servers: url });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, consumerName);
  let stop = false;
  process.on("SIGTERM", () => {
    stop = true;
  });
  const loops = Array.from({ length: lanes }, async () => {
    while (!stop) {
      const m = await consumer.next({ expires: 1000 }).catch(() => null);
      if (!m) continue;
      const latency = await handle(m, js);
      if (latency !== undefined) process.stdout.write(`${latency}\n`);
    }
  });
  await Promise.all(loops);
  await nc.close();
}
