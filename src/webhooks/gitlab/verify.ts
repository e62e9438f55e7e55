import { createHmac, timingSafeEqual } from 'node:crypto';
import { matchesAnySecret } from '../constant-time.js';
import { header, type Refusal, type VerifyInput, type VerifyResult, type WebhookHeaders } from '../types.js';

/** Standard Webhooks: a timestamp further than this from now is a replay (or a wrong clock). */
export const SIGNATURE_TOLERANCE_MS = 5 * 60_000;
const SECRET_PREFIX = 'whsec_';

/**
 * GitLab hands out signing tokens as Standard Webhooks secrets, `whsec_<base64 of 32 random
 * bytes>`, and signs with the decoded bytes as the HMAC key. As the Standard Webhooks
 * libraries do, the prefix is optional and the rest is always base64-decoded.
 */
export function signingKeyFromToken(token: string): Buffer {
  const encoded = token.startsWith(SECRET_PREFIX) ? token.slice(SECRET_PREFIX.length) : token;
  return Buffer.from(encoded, 'base64');
}

export function signStandardWebhook(key: Buffer, id: string, timestamp: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
}

export interface GitlabVerifier {
  readonly configured: boolean;
  /** What the headers alone decide, before any of the body is read (all but the signature's HMAC). */
  refuseHeaders(headers: WebhookHeaders, now: number): Refusal | undefined;
  verify(input: VerifyInput): VerifyResult;
}

/**
 * Accepts `X-Gitlab-Token` equal to a configured token, or a valid `webhook-signature`
 * where signing tokens are configured. Every credential the request carries that can be
 * checked must hold, and at least one must: a good token does not excuse a bad signature.
 */
export function createGitlabVerifier(
  tokens: readonly string[],
  signingTokens: readonly string[],
): GitlabVerifier {
  const keys = signingTokens.map(signingKeyFromToken).filter((key) => key.length > 0);
  const configured = tokens.length > 0 || keys.length > 0;
  /** Whether the request carries a signature this receiver can check. */
  const signed = (headers: WebhookHeaders): boolean =>
    keys.length > 0 && header(headers, 'webhook-signature') !== undefined;
  const refuseHeaders = (headers: WebhookHeaders, now: number): Refusal | undefined => {
    if (!configured) return { ok: false, why: 'not_configured' };
    const token = header(headers, 'x-gitlab-token');
    const checkToken = token !== undefined && tokens.length > 0;
    if (!checkToken && !signed(headers)) return { ok: false, why: 'missing' };
    if (checkToken && !matchesAnySecret(token, tokens)) return { ok: false, why: 'mismatch' };
    return signed(headers) ? refuseStandardWebhookHeaders(headers, now) : undefined;
  };
  return {
    configured,
    refuseHeaders,
    verify(input) {
      const refused = refuseHeaders(input.headers, input.now);
      if (refused) return refused;
      return signed(input.headers) ? verifyStandardWebhook(keys, input) : { ok: true };
    },
  };
}

export function verifyStandardWebhook(keys: readonly Buffer[], input: VerifyInput): VerifyResult {
  const refused = refuseStandardWebhookHeaders(input.headers, input.now);
  if (refused) return refused;
  const id = header(input.headers, 'webhook-id')!;
  const timestamp = header(input.headers, 'webhook-timestamp')!;
  const given = header(input.headers, 'webhook-signature')!
    .split(' ')
    .map((entry) => entry.split(','))
    .filter(([version, value]) => version === 'v1' && value !== undefined)
    .map(([, value]) => Buffer.from(value!, 'base64'));
  let found = false;
  for (const key of keys) {
    const expected = signStandardWebhook(key, id, timestamp, input.rawBody);
    for (const candidate of given) {
      found = (candidate.length === expected.length && timingSafeEqual(candidate, expected)) || found;
    }
  }
  return found ? { ok: true } : { ok: false, why: 'mismatch' };
}

/** The Standard Webhooks headers: present, the timestamp fresh, the delivery id the signed one. */
function refuseStandardWebhookHeaders(headers: WebhookHeaders, now: number): Refusal | undefined {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) return { ok: false, why: 'missing' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, why: 'mismatch' };
  if (Math.abs(now - Number(timestamp) * 1000) > SIGNATURE_TOLERANCE_MS) return { ok: false, why: 'stale' };
  // The delivery id pushgate dedupes on is Idempotency-Key, which the signature does not
  // cover; GitLab sets it equal to the signed webhook-id. Holding it to that stops a captured
  // request from being replayed within the tolerance under a fresh id as a new delivery. A
  // sender that leaves it out (only X-Gitlab-Event-UUID then names the delivery) is not
  // refused: SPEC §3 makes that header the delivery id, and a replay of a signed push can
  // only add a job for a commit that is live or queued (the same job), older (superseded), or
  // still being fetched by a running job (one redundant re-apply).
  const idempotencyKey = header(headers, 'idempotency-key');
  if (idempotencyKey !== undefined && idempotencyKey !== id) return { ok: false, why: 'mismatch' };
  return undefined;
}
