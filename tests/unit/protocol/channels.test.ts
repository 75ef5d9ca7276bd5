import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  channelKey,
  ChannelType,
  parseChannel,
  isValidOrgId,
  compareEventIds,
  parseEventId,
} from '@apix/protocol';

describe('channel grammar', () => {
  it('maps the first segment to the channel type', () => {
    const cases: Array<[string, string, string | undefined]> = [
      ['agent:a1', ChannelType.AGENT_EVENTS, undefined],
      ['tool:search:calls', ChannelType.TOOL_EVENTS, undefined],
      ['workflow:w-1', ChannelType.WORKFLOW_EVENTS, undefined],
      ['provider:openai', ChannelType.PROVIDER_EVENTS, undefined],
      ['system', ChannelType.SYSTEM_EVENTS, undefined],
      ['user:alice', ChannelType.PRIVATE_USER, 'alice'],
      ['user:alice:inbox', ChannelType.PRIVATE_USER, 'alice'],
      ['org', ChannelType.ORGANIZATION, undefined],
      ['room:r_1', ChannelType.ROOM, 'r_1'],
    ];
    for (const [name, type, subject] of cases) {
      const r = parseChannel(name);
      assert.ok(r.ok, name);
      assert.equal(r.channel.type, type);
      assert.equal(r.channel.subject, subject);
    }
  });

  it('refuses names outside the grammar', () => {
    for (const name of [
      '',
      ':',
      'agent:',
      ':agent',
      'agent::a',
      'agent:a b',
      'agent:é',
      'agent/a',
      'agent:a*',
      'agent:{x}',
      'user',
      'room',
      'nope:x',
      'Agent:a',
      'x'.repeat(201),
      5,
      null,
    ]) {
      assert.equal(parseChannel(name).ok, false, String(name));
    }
    assert.equal(parseChannel('agent:' + 'a'.repeat(194)).ok, true);
  });

  it('keys channels per organization so no spelling crosses over', () => {
    const a = parseChannel('agent:x');
    assert.ok(a.ok);
    assert.equal(channelKey('acme', a.channel), 'acme/agent:x');
    assert.notEqual(channelKey('acme', a.channel), channelKey('globex', a.channel));
    const s = parseChannel('system:x');
    assert.ok(s.ok);
    assert.equal(channelKey('acme', s.channel), channelKey('globex', s.channel));
    assert.equal(isValidOrgId('acme/x'), false);
    assert.equal(isValidOrgId('a'.repeat(65)), false);
    assert.equal(isValidOrgId('acme-1_B'), true);
  });

  it('compares event ids numerically', () => {
    assert.equal(compareEventIds('10-0', '9-5'), 1);
    assert.equal(compareEventIds('5-10', '5-9'), 1);
    assert.equal(compareEventIds('5-1', '5-1'), 0);
    assert.equal(parseEventId('5-x'), undefined);
    assert.equal(parseEventId('99999999999999999-0'), undefined);
  });
});
