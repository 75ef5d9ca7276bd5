/** Which transport the next attempt uses: move on before the first establishment, then stay, unless cut. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CUTS_BEFORE_FALLBACK, TransportFallback, type ClientTransport } from '../src/index.ts';

const make = () => ({}) as ClientTransport;
const all = () =>
  new TransportFallback([
    ['websocket', make],
    ['http-stream', make],
    ['sse', make],
  ]);

describe('transport fallback', () => {
  it('moves to the next transport after each failed attempt until one is established, wrapping around', () => {
    const f = all();
    assert.equal(f.current, 'websocket');
    f.ended(false, 1006);
    assert.equal(f.current, 'http-stream');
    f.ended(false, 1006);
    f.ended(false, 1006);
    assert.equal(f.current, 'websocket', 'a gateway that is down does not pin the last transport');
  });

  it('remembers the established transport: failed attempts (a restart) and closes with a code keep it', () => {
    const f = all();
    f.ended(false, 1006);
    f.established();
    for (let i = 0; i < 10; i++) f.ended(false, 1006);
    f.ended(true, 1001);
    f.ended(true, 4009);
    assert.equal(f.current, 'http-stream');
  });

  it(`leaves it after ${CUTS_BEFORE_FALLBACK} cuts in a row of established connections, not fewer`, () => {
    const f = all();
    f.established();
    for (let i = 1; i < CUTS_BEFORE_FALLBACK; i++) f.ended(true, 1006);
    f.ended(true, 1001); // a clean close in between: the run of cuts starts again
    for (let i = 1; i < CUTS_BEFORE_FALLBACK; i++) f.ended(true, 1006);
    assert.equal(f.current, 'websocket');
    f.ended(true, 1006);
    assert.equal(f.current, 'http-stream');
  });

  it('the last transport is never left for cuts', () => {
    const f = new TransportFallback([['sse', make]]);
    f.established();
    for (let i = 0; i < 10; i++) f.ended(true, 1006);
    assert.equal(f.current, 'sse');
  });
});
