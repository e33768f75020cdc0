/** Public surface of notify/: webhooks on task state, tool-denial and plan-conflict events (signed JSON, or the ntfy form). */
export {
  WEBHOOK_EVENTS,
  type WebhookConfig,
  type WebhookEventKind,
  type WebhookOptions,
  webhookSchema,
} from "./config.js";
export {
  agentNotice,
  backoffMs,
  deliveryKey,
  planNotice,
  stateNotice,
  type WebhookBody,
  type WebhookConflictBody,
  type WebhookDeniedBody,
  type WebhookNotice,
  type WebhookStateBody,
  webhookEventOf,
  webhookRequest,
} from "./payload.js";
export {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  signBody,
  TIMESTAMP_HEADER,
  verifySignature,
} from "./signature.js";
export { WebhookDeliverer, webhookConsumerName, webhookSecrets, webhookSources } from "./webhooks.js";
