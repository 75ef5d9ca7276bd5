/**
 * What webhooks carry (PROTOCOL-1.1 section 13): the event types an endpoint may select, the event, the
 * endpoint, and the batch that is one signed POST to one endpoint.
 */

import { WEBHOOK_EVENT_TYPES } from '@apix/protocol';
import type { WebhookEventType } from '@apix/protocol';

export { WEBHOOK_EVENT_TYPES };
export type { WebhookEventType };

export function isWebhookEventType(x: string): x is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(x);
}

/** One event as the receiver sees it; receivers dedupe by `id` (delivery is at least once). */
export interface WebhookEvent {
  readonly id: string;
  /** `webhook.test` only for `apix webhooks test`. */
  readonly type: WebhookEventType | 'webhook.test';
  readonly organizationId: string;
  /** When it happened, ms since epoch. */
  readonly time: number;
  readonly data: Record<string, unknown>;
}

/** An organization's endpoint; the secret signs every request to it (shown once, when it is made). */
export interface WebhookEndpoint {
  readonly id: string;
  readonly orgId: string;
  readonly url: string;
  readonly events: readonly WebhookEventType[];
  readonly secret: string;
  readonly createdAt: number;
}

/** The endpoint as listed: without its secret. */
export function publicEndpoint(e: WebhookEndpoint): Omit<WebhookEndpoint, 'secret'> {
  return { id: e.id, orgId: e.orgId, url: e.url, events: e.events, createdAt: e.createdAt };
}

/** Events waiting for one POST to one endpoint, retried as a whole. */
export interface WebhookBatch {
  readonly id: string;
  readonly orgId: string;
  readonly endpointId: string;
  readonly events: readonly WebhookEvent[];
  /** Failed attempts so far. */
  readonly attempts: number;
  /** The last failure (status or error), for the dead letter. */
  readonly lastError?: string | undefined;
}

/** A batch given up on after the last attempt: listed and replayed by an operator. */
export interface WebhookDeadLetter extends WebhookBatch {
  readonly failedAt: number;
}
