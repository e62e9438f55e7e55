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

  it('blanks a stringData value quoted base64-encoded, as it is applied in data', () => {
    const encoded = Buffer.from('hunter2-long').toString('base64');
    expect(redactSecretValues(`data[password]: invalid value "${encoded}"`, secret)).toBe(
      'data[password]: invalid value "[redacted]"',
    );
  });

  it("blanks the API server's dump of a value of the wrong type", () => {
    const message = '.stringData.password: expected string, got &value.valueUnstructured{Value:42}';
    expect(redactSecretValues(message, { ...secret, stringData: { password: 42 } })).toBe(
      '.stringData.password: expected string, got &value.valueUnstructured{Value:[redacted]}',
    );
  });

  it('blanks nested values and whole Go value dumps, braces and all', () => {
    const nested = {
      ...secret,
      stringData: { x: ['secretvalue1', 'secretvalue2'], yy: { a: 'nestedsecretA', b: 'nestedsecretB' } },
    };
    const message =
      '.stringData.yy: expected string, got &value.valueUnstructured{Value:map[string]interface {}{"a":"nestedsecretA", "b":"nestedsecretB"}}; ' +
      '.stringData.x: got []interface {}{"secretvalue1", "secretvalue2"}';
    expect(redactSecretValues(message, nested)).toBe(
      '.stringData.yy: expected string, got &value.valueUnstructured{Value:[redacted]}; ' +
        '.stringData.x: got []interface {}{"[redacted]", "[redacted]"}',
    );
    const plain = { ...secret, data: 'c3VwZXJzZWNyZXRiYXNlNjQ=', stringData: 'plainstringsecretvalue' };
    expect(redactSecretValues('.stringData: expected map, got &{plainstringsecretvalue}', plain)).toBe(
      '.stringData: expected map, got &{[redacted]}',
    );
    expect(redactSecretValues('.data: expected map, got c3VwZXJzZWNyZXRiYXNlNjQ=', plain)).toBe(
      '.data: expected map, got [redacted]',
    );
  });

  it('leaves values too short to blank without garbling the message, and other kinds, alone', () => {
    expect(redactSecretValues('key abc is invalid', secret)).toBe('key abc is invalid');
    expect(redactSecretValues('hunter2-long', { ...secret, kind: 'ConfigMap' })).toBe('hunter2-long');
  });
});
