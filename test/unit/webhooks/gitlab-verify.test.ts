import { describe, expect, it } from 'vitest';
import {
  createGitlabVerifier,
  signingKeyFromToken,
  SIGNATURE_TOLERANCE_MS,
} from '../../../src/webhooks/gitlab/verify.js';
import { GITLAB_SIGNING_TOKEN, signGitlab } from '../../fixtures/gitlab/payloads.js';

const BODY = '{"object_kind":"push"}';
const NOW = Date.UTC(2025, 0, 1, 12, 0, 0);
const TIMESTAMP = Math.floor(NOW / 1000);

function signed(options: { token?: string; timestamp?: number; body?: string; signature?: string } = {}) {
  const timestamp = options.timestamp ?? TIMESTAMP;
  const body = options.body ?? BODY;
  return {
    headers: {
      'idempotency-key': 'msg_1',
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(timestamp),
      'webhook-signature':
        options.signature ?? signGitlab(options.token ?? GITLAB_SIGNING_TOKEN, 'msg_1', timestamp, BODY),
    },
    rawBody: Buffer.from(body),
    now: NOW,
  };
}

describe('GitLab X-Gitlab-Token', () => {
  const verifier = createGitlabVerifier(['old-token', 'new-token'], []);

  it('accepts any configured token', () => {
    for (const token of ['old-token', 'new-token']) {
      expect(
        verifier.verify({ headers: { 'x-gitlab-token': token }, rawBody: Buffer.from(BODY), now: NOW }),
      ).toEqual({
        ok: true,
      });
    }
  });

  it('rejects a wrong, a longer or a missing token', () => {
    for (const headers of [
      { 'x-gitlab-token': 'new-toke' },
      { 'x-gitlab-token': 'new-token-and-more' },
      {},
    ]) {
      expect(verifier.verify({ headers, rawBody: Buffer.from(BODY), now: NOW }).ok).toBe(false);
    }
  });

  it('rejects everything when nothing is configured', () => {
    expect(
      createGitlabVerifier([], []).verify({
        headers: { 'x-gitlab-token': 'x' },
        rawBody: Buffer.from(BODY),
        now: NOW,
      }),
    ).toEqual({
      ok: false,
      why: 'not_configured',
    });
  });
});

describe('GitLab Standard Webhooks signature', () => {
  const verifier = createGitlabVerifier([], [GITLAB_SIGNING_TOKEN]);

  it('decodes a whsec_ signing token to its key bytes', () => {
    expect(signingKeyFromToken(GITLAB_SIGNING_TOKEN).toString()).toBe('pushgate-test-signing-key-32byte');
    expect(signingKeyFromToken(GITLAB_SIGNING_TOKEN.slice('whsec_'.length)).toString()).toBe(
      'pushgate-test-signing-key-32byte',
    );
  });

  it('accepts a valid signature', () => {
    expect(verifier.verify(signed())).toEqual({ ok: true });
  });

  it('accepts a list of signatures when one of them is valid', () => {
    const good = signGitlab(GITLAB_SIGNING_TOKEN, 'msg_1', TIMESTAMP, BODY);
    const other = signGitlab('whsec_b3RoZXI=', 'msg_1', TIMESTAMP, BODY);
    expect(verifier.verify(signed({ signature: `${other} v2,abc ${good}` }))).toEqual({ ok: true });
  });

  it('accepts a signature from any configured signing token (rotation)', () => {
    const rotated = createGitlabVerifier([], ['whsec_bmV3LWtleQ==', GITLAB_SIGNING_TOKEN]);
    expect(rotated.verify(signed())).toEqual({ ok: true });
  });

  it('rejects a signature made with another key, or over another body', () => {
    expect(verifier.verify(signed({ token: 'whsec_b3RoZXI=' }))).toEqual({ ok: false, why: 'mismatch' });
    expect(verifier.verify(signed({ body: `${BODY} ` }))).toEqual({ ok: false, why: 'mismatch' });
  });

  it('rejects timestamps more than five minutes old or ahead', () => {
    const skew = SIGNATURE_TOLERANCE_MS / 1000 + 1;
    expect(verifier.verify(signed({ timestamp: TIMESTAMP - skew }))).toEqual({ ok: false, why: 'stale' });
    expect(verifier.verify(signed({ timestamp: TIMESTAMP + skew }))).toEqual({ ok: false, why: 'stale' });
    expect(verifier.verify(signed({ timestamp: TIMESTAMP - skew + 2 }))).toEqual({ ok: true });
  });

  it('rejects a signature without webhook-id or webhook-timestamp', () => {
    const request = signed();
    const { 'webhook-id': _id, ...withoutId } = request.headers;
    expect(verifier.verify({ ...request, headers: withoutId }).ok).toBe(false);
    const { 'webhook-timestamp': _ts, ...withoutTimestamp } = request.headers;
    expect(verifier.verify({ ...request, headers: withoutTimestamp }).ok).toBe(false);
  });

  it('rejects an Idempotency-Key other than the signed webhook-id (a replay under a fresh delivery id)', () => {
    const request = signed();
    const replayed = { ...request, headers: { ...request.headers, 'idempotency-key': 'msg_2' } };
    expect(verifier.verify(replayed)).toEqual({ ok: false, why: 'mismatch' });
  });

  it('accepts a signed request without Idempotency-Key (X-Gitlab-Event-UUID names the delivery then)', () => {
    const request = signed();
    const { 'idempotency-key': _key, ...withoutKey } = request.headers;
    expect(verifier.verify({ ...request, headers: withoutKey })).toEqual({ ok: true });
  });

  it('checks X-Gitlab-Token only against configured tokens: with none, the signature alone decides', () => {
    const withToken = { ...signed(), headers: { ...signed().headers, 'x-gitlab-token': 'anything' } };
    expect(verifier.verify(withToken)).toEqual({ ok: true });
    const both = createGitlabVerifier(['token'], [GITLAB_SIGNING_TOKEN]);
    expect(both.verify(withToken)).toEqual({ ok: false, why: 'mismatch' });
  });

  it('does not let a valid token excuse a bad signature', () => {
    const both = createGitlabVerifier(['token'], [GITLAB_SIGNING_TOKEN]);
    const request = signed({ token: 'whsec_b3RoZXI=' });
    expect(both.verify({ ...request, headers: { ...request.headers, 'x-gitlab-token': 'token' } })).toEqual({
      ok: false,
      why: 'mismatch',
    });
    expect(both.verify({ ...signed(), headers: { ...signed().headers, 'x-gitlab-token': 'token' } })).toEqual(
      { ok: true },
    );
  });
});
