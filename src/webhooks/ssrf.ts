/**
 * The SSRF guard of webhook destinations: an address in a private, loopback, link-local, unspecified,
 * multicast or reserved range is refused unless APIX_WEBHOOK_ALLOW_PRIVATE=true. The URL is checked when
 * an endpoint is made (its host's addresses, resolved) and again at every connection (`guardedLookup`
 * is the lookup of the request: an address the name resolves to later, DNS rebinding, is refused too).
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupAllOptions, LookupOneOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ApiXError } from '@apix/protocol';
import { InternalError } from '@apix/protocol/internal-errors';

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

/** Whether the address is in a range a webhook may not reach (IPv4-mapped IPv6 is checked as IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocked.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Checks a destination URL (scheme, credentials, resolved addresses); throws BAD_REQUEST saying why. */
export async function checkDestination(url: string, allowPrivate: boolean): Promise<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ApiXError('BAD_REQUEST', 'url must be an absolute http(s) URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ApiXError('BAD_REQUEST', 'url must be http or https');
  if (u.username || u.password) throw new ApiXError('BAD_REQUEST', 'url must not hold credentials');
  if (allowPrivate) return u;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let addresses: LookupAddress[];
  try {
    addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookupAll(host);
  } catch {
    throw new ApiXError('BAD_REQUEST', `url host ${host} does not resolve`);
  }
  const bad = addresses.find((a) => isPrivateAddress(a.address));
  if (bad)
    throw new ApiXError(
      'BAD_REQUEST',
      `url host ${host} resolves to ${bad.address}, a private or loopback address ` +
        '(refused unless APIX_WEBHOOK_ALLOW_PRIVATE=true)',
    );
  return u;
}

function lookupAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) =>
    dnsLookup(host, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for http.request that refuses private addresses (the check at connection time). */
export function guardedLookup(
  hostname: string,
  options: LookupOneOptions | LookupAllOptions,
  callback: LookupCallback,
): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    // The connection is refused before it is made.
    if (bad)
      return callback(
        new InternalError('APIX_ERR_WEBHOOK_DESTINATION', `${hostname} resolves to ${bad.address}`),
        [],
      );
    if ((options as LookupAllOptions).all) return callback(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
}
