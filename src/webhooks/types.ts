import type { Provider } from '../config/schema.js';

export type { Provider };

/** Header names are lower-case, as node:http gives them. */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/** A push to a branch, the same shape whichever provider sent it. */
export interface PushEvent {
  provider: Provider;
  /** GitHub `full_name` / GitLab `path_with_namespace`, as the payload spells it. */
  repository: string;
  branch: string;
  before: string | undefined;
  after: string;
  deliveryId: string | undefined;
  pusher: string | undefined;
}

/** What a verified delivery asks for: a push to route, or a 200 `{"ignored": reason}`. */
export type WebhookEvent =
  { kind: 'push'; push: PushEvent } | { kind: 'ignored'; reason: string } | { kind: 'ping' };

export type VerifyResult =
  | { ok: true }
  /** Why is logged, never answered: the sender learns nothing about the secrets. */
  | { ok: false; why: 'not_configured' | 'missing' | 'mismatch' | 'stale' };

/** A failed verification: what the headers alone can decide, or the body's check. */
export type Refusal = Extract<VerifyResult, { ok: false }>;

export interface VerifyInput {
  headers: WebhookHeaders;
  rawBody: Buffer;
  /**
   * rawBody as UTF-8, when the caller decoded it already (the receiver does, once, for the JSON
   * parse too); given only when rawBody is valid UTF-8.
   */
  text?: string;
  /** Milliseconds since the epoch; injectable for timestamp-window tests. */
  now: number;
}

export function header(headers: WebhookHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const ZERO_SHA = /^0+$/;

export function isZeroSha(sha: string): boolean {
  return ZERO_SHA.test(sha);
}

/** SHA-1 (40) or SHA-256 (64) object names. */
export const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
