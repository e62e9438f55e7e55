import type { RunningServer } from './server.js';
import { publicUrlBase } from './status-url.js';

/** Where a user sends webhooks and reads the status API, logged when the receiver starts. */
export interface Endpoints {
  githubWebhookUrl: string;
  gitlabWebhookUrl: string;
  statusUrl: string;
}

/**
 * `server.publicUrl` when set: the URL the senders are told to use. Otherwise the address
 * bound, a wildcard one (0.0.0.0, ::) shown as localhost, since no client can send to it.
 */
export function serverEndpoints(
  server: Pick<RunningServer, 'address' | 'port'>,
  publicUrl: string | undefined,
): Endpoints {
  const base = publicUrl ? publicUrlBase(publicUrl) : `http://${shownHost(server.address)}:${server.port}/`;
  return {
    githubWebhookUrl: `${base}webhooks/github`,
    gitlabWebhookUrl: `${base}webhooks/gitlab`,
    statusUrl: `${base}environments`,
  };
}

function shownHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return 'localhost';
  return address.includes(':') ? `[${address}]` : address;
}

/** Whether only this machine can reach an address: 127.0.0.0/8 or ::1 (IPv4-mapped too). */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return v4.startsWith('127.') || address === '::1';
}
