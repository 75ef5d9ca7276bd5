/**
 * One signed POST of a batch to an endpoint (node:http, so that the SSRF guard is the request's own DNS
 * lookup). Answers undefined on a 2xx, else why it failed (status or error); never throws.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { SIGNATURE_HEADER, signatureHeader } from '../backend/signature.ts';
import { guardedLookup, isPrivateAddress } from './ssrf.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export interface SendOptions {
  readonly timeoutMs: number;
  readonly allowPrivate: boolean;
  readonly now: () => number;
}

export type Sender = (url: string, secret: string, body: string) => Promise<string | undefined>;

export function httpSender(options: SendOptions): Sender {
  return (url, secret, body) =>
    new Promise((resolve) => {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return resolve('invalid url');
      }
      const host = u.hostname.replace(/^\[|\]$/g, '');
      // An address literal is not looked up: it is checked here.
      if (!options.allowPrivate && isIP(host) && isPrivateAddress(host))
        return resolve(`refused: ${host} is a private or loopback address`);
      const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
      let settled = false;
      // The whole exchange, not only each idle gap: a receiver that trickles its answer is cut too.
      const deadline = setTimeout(
        () => req.destroy(new InternalError('APIX_ERR_TIMEOUT', `no answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      const done = (why: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(why);
      };
      const req = request(
        u,
        {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
            'User-Agent': 'apix-webhooks/1',
            [SIGNATURE_HEADER]: signatureHeader(secret, body, options.now()),
          },
          timeout: options.timeoutMs,
          ...(options.allowPrivate ? {} : { lookup: guardedLookup as never }),
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            done(status >= 200 && status < 300 ? undefined : `HTTP ${status}`);
          });
          res.on('error', (err) => done(err.message));
        },
      );
      req.on('timeout', () => {
        req.destroy(new InternalError('APIX_ERR_TIMEOUT', `no answer within ${options.timeoutMs} ms`));
      });
      req.on('error', (err) => done(err.message));
      req.end(body);
    });
}
