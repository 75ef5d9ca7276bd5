/**
 * Payload schemas of the seed's domain event types, checked at publish so that subscribers can rely on
 * their shape. Extra keys are kept (producers may add context); the named fields are required as typed.
 * Any other event type carries any JSON payload.
 */
import { z } from 'zod';
import type { DomainEventType } from './constants.ts';

const id = z.string().min(1).max(200);

export const ToolCallStartPayload = z.looseObject({
  toolCallId: id,
  toolName: z.string().min(1).max(200),
  agentId: id.optional(),
  input: z.unknown().optional(),
  startedAt: z.number().optional(),
});
export const ToolCallResultPayload = z.looseObject({
  toolCallId: id,
  toolName: z.string().max(200).optional(),
  output: z.unknown(),
  durationMs: z.number().nonnegative().optional(),
});
export const ToolCallErrorPayload = z.looseObject({
  toolCallId: id,
  toolName: z.string().max(200).optional(),
  error: z.looseObject({ message: z.string(), code: z.string().optional() }),
  retryable: z.boolean().optional(),
});
export const AgentStatus = z.enum([
  'idle',
  'thinking',
  'running',
  'waiting',
  'completed',
  'failed',
  'offline',
]);
export const AgentStatusUpdatePayload = z.looseObject({
  agentId: id,
  status: AgentStatus,
  message: z.string().max(10_000).optional(),
});
export const WorkflowStateChangePayload = z.looseObject({
  workflowId: id,
  runId: id.optional(),
  from: z.string().max(100).optional(),
  to: z.string().min(1).max(100),
  step: z.string().max(200).optional(),
});
export const ProviderHealthUpdatePayload = z.looseObject({
  providerId: id,
  status: z.enum(['healthy', 'degraded', 'down']),
  latencyMs: z.number().nonnegative().optional(),
  errorRate: z.number().min(0).max(1).optional(),
});
export const SystemNotificationPayload = z.looseObject({
  level: z.enum(['info', 'warning', 'error', 'critical']),
  message: z.string().min(1).max(10_000),
  title: z.string().max(200).optional(),
});

export const DOMAIN_PAYLOAD_SCHEMAS: Readonly<Record<DomainEventType, z.ZodType>> = {
  tool_call_start: ToolCallStartPayload,
  tool_call_result: ToolCallResultPayload,
  tool_call_error: ToolCallErrorPayload,
  agent_status_update: AgentStatusUpdatePayload,
  workflow_state_change: WorkflowStateChangePayload,
  provider_health_update: ProviderHealthUpdatePayload,
  system_notification: SystemNotificationPayload,
};

export interface DomainPayloads {
  tool_call_start: z.infer<typeof ToolCallStartPayload>;
  tool_call_result: z.infer<typeof ToolCallResultPayload>;
  tool_call_error: z.infer<typeof ToolCallErrorPayload>;
  agent_status_update: z.infer<typeof AgentStatusUpdatePayload>;
  workflow_state_change: z.infer<typeof WorkflowStateChangePayload>;
  provider_health_update: z.infer<typeof ProviderHealthUpdatePayload>;
  system_notification: z.infer<typeof SystemNotificationPayload>;
}

/** Checks a payload against its type's schema; returns an error message naming the field, or undefined. */
export function checkDomainPayload(type: string, payload: unknown): string | undefined {
  const schema = Object.prototype.hasOwnProperty.call(DOMAIN_PAYLOAD_SCHEMAS, type)
    ? DOMAIN_PAYLOAD_SCHEMAS[type as DomainEventType]
    : undefined;
  if (schema === undefined) return undefined;
  const r = schema.safeParse(payload);
  return r.success ? undefined : formatIssues(r.error, 'payload');
}

export function formatIssues(error: z.ZodError, root?: string): string {
  const first = error.issues[0];
  if (!first) return 'invalid';
  const path = [root, ...first.path.map(String)].filter((p) => p !== undefined && p !== '').join('.');
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : '';
  const text = `${path || 'frame'}: ${first.message}`;
  // Messages can quote the input (an unknown key, a record key): never echo more than a line of it back.
  return `${text.length > 300 ? `${text.slice(0, 300)}...` : text}${more}`;
}
