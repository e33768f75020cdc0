/**
 * Peer worker for the `claims` benchmark: BullMQ on Redis, the queue many Node teams would pick
 * instead of the mesh. One Worker with `lanes` concurrency runs a no-op job and reports, per
 * finished job, "<submit -> running ms> <finished at, epoch ms>" like the other workers (lanes.ts).
 * "Running" is the job's `processedOn`: the worker's clock when it moved the job to active, as
 * the mesh's is the attempt's `startedAt`, the worker's clock when it wrote its claim.
 * Usage: node bullmq-worker.js <redisPort> <password> <queue> <lanes>
 */
import { Worker } from "bullmq";

const [port, password, queue, lanesArg] = process.argv.slice(2);
const startedAt = new Map<string, number>();
const worker = new Worker(
  queue!,
  async (job) => {
    startedAt.set(job.id!, (job.processedOn ?? Date.now()) - Number((job.data as { t: number }).t));
  },
  {
    connection: { host: "127.0.0.1", port: Number(port), password: password!, maxRetriesPerRequest: null },
    concurrency: Number(lanesArg ?? 4),
    // An idle worker blocks on Redis for new jobs, as a daemon's pull waits on NATS.
    drainDelay: 5,
  },
);
worker.on("completed", (job) => {
  const latency = startedAt.get(job.id!);
  startedAt.delete(job.id!);
  if (latency !== undefined) process.stdout.write(`${latency} ${Date.now()}\n`);
});
worker.on("error", (err) => process.stderr.write(`bullmq-worker: ${String(err)}\n`));
process.on("SIGTERM", () => {
  void worker.close().then(() => process.exit(0));
});
