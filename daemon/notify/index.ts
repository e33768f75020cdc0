/** Public surface of notify/: webhooks on task state events (signed JSON, or the ntfy form). */
export {
  WEBHOOK_EVENTS,
  type WebhookConfig,
  type WebhookEventKind,
  type WebhookOptions,
  webhookSchema,
} from "./config.js";
export { backoffMs, deliveryKey, type WebhookBody, webhookEventOf, webhookRequest } from "./payload.js";
export {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  signBody,
  TIMESTAMP_HEADER,
  verifySignature,
} from "./signature.js";
export { WebhookDeliverer, webhookConsumerName, webhookSecrets } from "./webhooks.js";
