/**
 * Webhook delivery, driven from durable JetStream consumers on MESH_EVENTS: per webhook one on
 * the task state events and, when it wants needs-attention, one on the tasks' runner events
 * (tool denials) and one on the plan events (conflicts); each shared by every daemon configured
 * with the webhook, so one of them delivers each event (NATS 2.9 has one filter per consumer). A message is acked only after a 2xx; a failure is nak'ed with an exponential back-off
 * delay, so a retry survives this daemon's restart (the message stays in the consumer) and may
 * be made by another daemon. At least once; `X-Mesh-Delivery` lets a receiver drop repeats.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { Part } from "../../lib/index.js";
import type { PlanEvent } from "../claim/index.js";
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { EVENTS_STREAM, PLAN_EVENTS_FILTER, RUN_EVENTS_FILTER, STATE_EVENTS_FILTER } from "../nats/index.js";
import type { TaskEvent } from "../tasks/index.js";
import { pause } from "../util/index.js";
import type { WebhookConfig } from "./config.js";
import {
  agentNotice,
  backoffMs,
  planNotice,
  stateNotice,
  type WebhookNotice,
  webhookRequest,
} from "./payload.js";

/** The durable consumer a webhook's state deliveries come from (the same on every daemon). */
export function webhookConsumerName(w: Pick<WebhookConfig, "name" | "url">): string {
  return `webhook-${w.name ?? createHash("sha256").update(w.url).digest("hex").slice(0, 16)}`;
}

/** Where a webhook's events come from: a consumer (name suffix, filter) and what it makes of a message. */
interface WebhookSource {
  suffix: string;
  filter: string;
  notice(m: JsMsg, w: WebhookConfig): WebhookNotice | undefined;
}

const SOURCES: readonly WebhookSource[] = [
  {
    suffix: "",
    filter: STATE_EVENTS_FILTER,
    notice: (m, w) => {
      const e = m.json<TaskEvent>();
      return e.type === "state" ? stateNotice(e, w.events) : undefined;
    },
  },
  {
    suffix: "-agent",
    filter: RUN_EVENTS_FILTER,
    notice: (m, w) => agentNotice(m.json<TaskEvent>(), m.seq, w.events),
  },
  {
    suffix: "-plan",
    filter: PLAN_EVENTS_FILTER,
    notice: (m, w) => planNotice(m.json<PlanEvent>(), m.seq, w.events),
  },
];

/** The sources a webhook reads: runner and plan events only carry needs-attention. */
export const webhookSources = (w: Pick<WebhookConfig, "events">): readonly WebhookSource[] =>
  w.events.includes("attention") ? SOURCES : SOURCES.filter((s) => s.filter === STATE_EVENTS_FILTER);

/** Reads each webhook's secret (file or env): a missing one fails the start, naming the field. */
export function webhookSecrets(hooks: readonly WebhookConfig[], env = process.env): (string | undefined)[] {
  return hooks.map((w, i) => {
    if (w.secretFile) {
      let text: string;
      try {
        text = readFileSync(w.secretFile, "utf8").trim();
      } catch (err) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          `webhooks.${i}.secretFile: cannot read ${w.secretFile} (${errorMessage(err)}); write the secret there (mode 0600)`,
          { field: `webhooks.${i}.secretFile`, cause: err },
        );
      }
      if (!text) {
        throw new MeshError("INVALID_ARGUMENT", `webhooks.${i}.secretFile: ${w.secretFile} is empty`, {
          field: `webhooks.${i}.secretFile`,
        });
      }
      return text;
    }
    if (w.secretEnv) {
      const v = env[w.secretEnv];
      if (!v) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          `webhooks.${i}.secretEnv: ${w.secretEnv} is not set in meshd's environment; set it, or use secretFile`,
          { field: `webhooks.${i}.secretEnv` },
        );
      }
      return v;
    }
    return undefined;
  });
}

export interface WebhookDelivererOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
  hooks: readonly WebhookConfig[];
  userAgent: string;
  env?: NodeJS.ProcessEnv;
}

export class WebhookDeliverer extends Part {
  private readonly log: Logger;
  private secrets: (string | undefined)[] = [];

  constructor(private readonly o: WebhookDelivererOptions) {
    super("webhooks", o.log);
    this.log = o.log.child({ component: "webhooks" });
  }

  protected async onStart(): Promise<void> {
    this.secrets = webhookSecrets(this.o.hooks, this.o.env);
    for (const [i, w] of this.o.hooks.entries()) {
      for (const source of webhookSources(w)) {
        const name = `${webhookConsumerName(w)}${source.suffix}`;
        await this.ensureConsumer(name, w, source.filter);
        void this.life.track(this.deliverLoop(w, this.secrets[i], name, source));
      }
    }
  }

  protected onStop(): void {}

  private async ensureConsumer(name: string, w: WebhookConfig, filter: string): Promise<void> {
    // Long enough for one request; a daemon that dies mid-request hands the event on after it.
    const ack_wait = (w.timeout + 30_000) * 1_000_000;
    const info = await this.o.jsm.consumers.info(EVENTS_STREAM, name).catch(() => undefined);
    if (info) {
      if (info.config.ack_wait !== ack_wait) {
        await this.o.jsm.consumers.update(EVENTS_STREAM, name, { ack_wait }).catch((err: unknown) => {
          this.log.warn({ webhook: name, err: errorMessage(err) }, "webhook consumer not updated");
        });
      }
      return;
    }
    await this.o.jsm.consumers
      .add(EVENTS_STREAM, {
        durable_name: name,
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
        // From now on: a webhook added today is not sent last week's events.
        deliver_policy: DeliverPolicy.New,
        ack_wait,
        max_deliver: -1,
      })
      .catch(async (err: unknown) => {
        // Another daemon of the mesh made it first.
        if (!(await this.o.jsm.consumers.info(EVENTS_STREAM, name).catch(() => undefined))) throw err;
      });
  }

  private async deliverLoop(
    w: WebhookConfig,
    secret: string | undefined,
    name: string,
    source: WebhookSource,
  ): Promise<void> {
    const signal = this.life.stopSignal;
    while (!signal.aborted) {
      try {
        const consumer = await this.o.js.consumers.get(EVENTS_STREAM, name);
        const msgs = await consumer.consume({ max_messages: 16 });
        const stop = () => void msgs.close();
        signal.addEventListener("abort", stop, { once: true });
        try {
          for await (const m of msgs) {
            if (signal.aborted) break;
            await this.deliver(w, secret, name, source, m, signal);
          }
        } finally {
          signal.removeEventListener("abort", stop);
          void msgs.close();
        }
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn({ webhook: name, err: errorMessage(err) }, "webhook consumer failed; trying again");
      }
      await pause(1000, signal).catch(() => undefined);
    }
  }

  private async deliver(
    w: WebhookConfig,
    secret: string | undefined,
    name: string,
    source: WebhookSource,
    m: JsMsg,
    signal: AbortSignal,
  ): Promise<void> {
    let notice: WebhookNotice | undefined;
    try {
      notice = source.notice(m, w);
    } catch {
      m.term();
      return;
    }
    if (!notice) {
      m.ack();
      return;
    }
    const req = webhookRequest(w, secret, notice, new Date(), this.o.userAgent);
    const delivery = req.headers["x-mesh-delivery"];
    let failure: string;
    try {
      const res = await fetch(w.url, {
        method: "POST",
        headers: req.headers,
        body: req.body,
        redirect: "manual",
        signal: AbortSignal.any([signal, AbortSignal.timeout(w.timeout)]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) {
        // Acked only now; a lost ack means one repeat, with the same X-Mesh-Delivery.
        await m.ackAck().catch((err: unknown) => {
          this.log.warn({ webhook: name, delivery, err: errorMessage(err) }, "delivered; ack not confirmed");
        });
        this.log.info({ webhook: name, delivery, status: res.status }, "webhook delivered");
        return;
      }
      failure = `HTTP ${res.status}`;
    } catch (err) {
      failure = errorMessage(err);
    }
    if (signal.aborted) {
      // Stopping: hand it back now, for another daemon or this one's next start.
      m.nak();
      return;
    }
    const delayMs = backoffMs(m.info.deliveryCount, w.backoff, w.maxBackoff);
    m.nak(delayMs);
    this.log.warn(
      { webhook: name, delivery, attempt: m.info.deliveryCount, retryInMs: delayMs, failure },
      "webhook not delivered; retrying",
    );
  }
}
