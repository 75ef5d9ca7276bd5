import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ApiXConnectionSchema,
  ApiXEventSchema,
  ApiXSubscriptionSchema,
  ClientControlFrameSchema,
  ServerControlFrameSchema,
  checkDomainPayload,
  DOMAIN_EVENT_TYPES,
  ERRORS,
  ErrorCode,
  CloseCode,
  isControlType,
} from '@apix/protocol';

describe('Zod contracts', () => {
  it('keep the seed’s schemas, strict at the top level', () => {
    assert.equal(ApiXEventSchema.safeParse({ type: 'x', channel: 'agent:a', payload: 1 }).success, true);
    assert.equal(
      ApiXEventSchema.safeParse({ type: 'x', channel: 'agent:a', payload: 1, extra: 1 }).success,
      false,
    );
    assert.equal(
      ApiXEventSchema.safeParse({ type: 'x', metadata: { timestamp: 1, version: '1', custom: 'kept' } }).data
        ?.metadata?.custom,
      'kept',
    );
    assert.equal(
      ApiXConnectionSchema.safeParse({
        sessionId: 's',
        clientType: 'WEB_APP',
        authentication: { token: 't' },
        subscriptions: [],
      }).success,
      true,
    );
    assert.equal(ApiXSubscriptionSchema.parse({ channels: ['agent:a'] }).acknowledgment, false);
  });

  it('discriminate client and server control frames on type', () => {
    assert.equal(
      ClientControlFrameSchema.safeParse({ type: 'ack', payload: { channel: 'agent:a', ids: ['1-0'] } })
        .success,
      true,
    );
    assert.equal(
      ClientControlFrameSchema.safeParse({ type: 'ack', payload: { channel: 'agent:a' } }).success,
      false,
    );
    assert.equal(
      ServerControlFrameSchema.safeParse({
        type: 'message.sent',
        payload: { id: '1-0' },
        metadata: { timestamp: 1, version: '1' },
      }).success,
      true,
    );
  });

  it('check the seed’s domain payloads and name the field', () => {
    assert.equal(DOMAIN_EVENT_TYPES.length, 7);
    assert.equal(checkDomainPayload('agent_status_update', { agentId: 'a', status: 'running' }), undefined);
    assert.match(
      checkDomainPayload('agent_status_update', { agentId: 'a', status: 'dancing' })!,
      /payload\.status/,
    );
    assert.match(checkDomainPayload('tool_call_error', { toolCallId: 'c' })!, /payload\.error/);
    assert.equal(checkDomainPayload('my_event', 'anything'), undefined);
    assert.equal(checkDomainPayload('__proto__', {}), undefined);
    assert.ok(isControlType('message.sent'));
    assert.ok(!isControlType('tool_call_start'));
  });
});

describe('error registry', () => {
  it('has unique close codes for the connection-ending errors and is listed in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of Object.values(ErrorCode)) {
      const spec = ERRORS[code];
      assert.match(doc, new RegExp(`\\| \`${code}\` \\| ${spec.httpStatus} \\| ${spec.closeCode} \\|`), code);
    }
    for (const [name, value] of Object.entries(CloseCode))
      assert.match(doc, new RegExp(`\\| ${value} \\| \`${name}\``), name);
  });
});
