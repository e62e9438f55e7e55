import { describe, expect, it } from 'vitest';
import { verifyGithubSignature } from '../../../src/webhooks/github/verify.js';
import { signGithub } from '../../fixtures/github/payloads.js';

// The test vector from GitHub's "Validating webhook deliveries" documentation.
const DOC_SECRET = "It's a Secret to Everybody";
const DOC_BODY = 'Hello, World!';
const DOC_SIGNATURE = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

function input(signature: string | undefined, body = DOC_BODY) {
  return {
    headers: signature === undefined ? {} : { 'x-hub-signature-256': signature },
    rawBody: Buffer.from(body),
    now: Date.now(),
  };
}

describe('verifyGithubSignature', () => {
  it("accepts GitHub's documented test vector", async () => {
    expect(await verifyGithubSignature([DOC_SECRET], input(DOC_SIGNATURE))).toEqual({ ok: true });
  });

  it('computes the same signature as the documented vector', () => {
    expect(signGithub(DOC_SECRET, DOC_BODY)).toBe(DOC_SIGNATURE);
  });

  it('accepts any configured secret, so old and new both work during a rotation', async () => {
    expect(await verifyGithubSignature(['new-secret', DOC_SECRET], input(DOC_SIGNATURE))).toEqual({
      ok: true,
    });
    expect(
      await verifyGithubSignature([DOC_SECRET, 'new-secret'], input(signGithub('new-secret', DOC_BODY))),
    ).toEqual({
      ok: true,
    });
  });

  it('verifies a body that is not UTF-8 over its raw bytes', async () => {
    const rawBody = Buffer.from([0x7b, 0xff, 0x7d]);
    const signed = { headers: { 'x-hub-signature-256': signGithub(DOC_SECRET, rawBody) }, rawBody, now: 0 };
    expect(await verifyGithubSignature(['other', DOC_SECRET], signed)).toEqual({ ok: true });
    expect(await verifyGithubSignature(['other'], signed)).toEqual({ ok: false, why: 'mismatch' });
  });

  it('rejects a signature made with another secret', async () => {
    expect(await verifyGithubSignature(['other'], input(DOC_SIGNATURE))).toEqual({
      ok: false,
      why: 'mismatch',
    });
  });

  it('rejects a body changed after signing', async () => {
    expect(await verifyGithubSignature([DOC_SECRET], input(DOC_SIGNATURE, 'Hello, World?'))).toEqual({
      ok: false,
      why: 'mismatch',
    });
  });

  it('rejects a missing, malformed or SHA-1 signature', async () => {
    expect(await verifyGithubSignature([DOC_SECRET], input(undefined))).toEqual({
      ok: false,
      why: 'missing',
    });
    expect(await verifyGithubSignature([DOC_SECRET], input('sha256=zz'))).toEqual({
      ok: false,
      why: 'mismatch',
    });
    expect(await verifyGithubSignature([DOC_SECRET], input(`sha1=${'0'.repeat(40)}`))).toEqual({
      ok: false,
      why: 'mismatch',
    });
  });

  it('rejects everything when no secret is configured', async () => {
    expect(await verifyGithubSignature([], input(DOC_SIGNATURE))).toEqual({
      ok: false,
      why: 'not_configured',
    });
  });
});
