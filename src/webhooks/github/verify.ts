import { isUtf8 } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { verify } from '@octokit/webhooks-methods';
import { matchesAnySecret } from '../constant-time.js';
import { header, type Refusal, type VerifyInput, type VerifyResult, type WebhookHeaders } from '../types.js';

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * `X-Hub-Signature-256` against every configured secret, so the old and the new secret are
 * both accepted while a rotation is under way. @octokit/webhooks-methods compares in
 * constant time; it takes the payload as a string, which re-encodes to the raw bytes only when
 * they are UTF-8 (GitHub's always are). Other bytes are checked as they came, so a signed body
 * that is not UTF-8 is refused as malformed (400), not as forged (401).
 */
export async function verifyGithubSignature(
  secrets: readonly string[],
  input: VerifyInput,
): Promise<VerifyResult> {
  const refused = refuseGithubHeaders(secrets, input.headers);
  if (refused) return refused;
  const signature = header(input.headers, 'x-hub-signature-256')!;
  if (input.rawBody.length === 0) return { ok: false, why: 'mismatch' };
  if (input.text === undefined && !isUtf8(input.rawBody))
    return signedOverBytes(secrets, input.rawBody, signature) ? { ok: true } : { ok: false, why: 'mismatch' };
  const payload = input.text ?? input.rawBody.toString('utf8');
  const results = await Promise.all(
    secrets.map((secret) => verify(secret, payload, signature).catch(() => false)),
  );
  return results.some(Boolean) ? { ok: true } : { ok: false, why: 'mismatch' };
}

function signedOverBytes(secrets: readonly string[], body: Buffer, signature: string): boolean {
  const expected = secrets.map(
    (secret) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  );
  return matchesAnySecret(signature, expected);
}

/** What the headers alone decide, before any of the body is read: no or a malformed signature. */
export function refuseGithubHeaders(
  secrets: readonly string[],
  headers: WebhookHeaders,
): Refusal | undefined {
  if (secrets.length === 0) return { ok: false, why: 'not_configured' };
  const signature = header(headers, 'x-hub-signature-256');
  if (!signature) return { ok: false, why: 'missing' };
  if (!SIGNATURE.test(signature)) return { ok: false, why: 'mismatch' };
  return undefined;
}
