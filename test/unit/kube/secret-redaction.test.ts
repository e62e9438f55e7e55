import { describe, expect, it } from 'vitest';
import { redactSecretValues } from '../../../src/kube/secret-redaction.js';

const secret = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'db' },
  data: { token: Buffer.from('s3cr3t-token').toString('base64') },
  stringData: { password: 'hunter2-long', pin: 'abc' },
};

describe('redactSecretValues', () => {
  it("blanks a Secret's values, encoded and decoded, wherever the message quotes them", () => {
    const message = `bad: "hunter2-long", ${secret.data.token}, s3cr3t-token`;
    expect(redactSecretValues(message, secret)).toBe('bad: "[redacted]", [redacted], [redacted]');
  });

  it("blanks the API server's dump of a value of the wrong type", () => {
    const message = '.stringData.password: expected string, got &value.valueUnstructured{Value:42}';
    expect(redactSecretValues(message, { ...secret, stringData: { password: 42 } })).toBe(
      '.stringData.password: expected string, got &value.valueUnstructured{Value:[redacted]}',
    );
  });

  it('leaves values too short to blank without garbling the message, and other kinds, alone', () => {
    expect(redactSecretValues('key abc is invalid', secret)).toBe('key abc is invalid');
    expect(redactSecretValues('hunter2-long', { ...secret, kind: 'ConfigMap' })).toBe('hunter2-long');
  });
});
