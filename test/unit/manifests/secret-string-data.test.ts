import { describe, expect, it } from 'vitest';
import { foldStringData } from '../../../src/manifests/secret-string-data.js';
import type { ManifestObject } from '../../../src/manifests/types.js';

function secret(fields: Record<string, unknown>, apiVersion = 'v1', kind = 'Secret'): ManifestObject {
  return { apiVersion, kind, metadata: { name: 'creds' }, type: 'Opaque', ...fields };
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('foldStringData', () => {
  it("moves a Secret's stringData into data as base64 of its UTF-8, keeping data's own keys", () => {
    const folded = foldStringData(
      secret({ data: { 'ca.crt': base64('cert') }, stringData: { user: 'admin', motto: 'grüß dich ✓' } }),
    );

    expect(folded).toEqual(
      secret({ data: { 'ca.crt': base64('cert'), user: base64('admin'), motto: base64('grüß dich ✓') } }),
    );
    expect(
      Buffer.from(String((folded.data as Record<string, string>).motto), 'base64').toString('utf8'),
    ).toBe('grüß dich ✓');
  });

  it('takes stringData over data for a key in both, as the API server does', () => {
    expect(foldStringData(secret({ data: { k: base64('old') }, stringData: { k: 'new' } }))).toEqual(
      secret({ data: { k: base64('new') } }),
    );
  });

  it('folds an empty value, a null one (`password:` with nothing after it) as the API server stores it, and an empty stringData', () => {
    expect(foldStringData(secret({ stringData: { empty: '' } }))).toEqual(secret({ data: { empty: '' } }));
    expect(foldStringData(secret({ stringData: { unset: null, b: 'x' } }))).toEqual(
      secret({ data: { unset: '', b: base64('x') } }),
    );
    expect(foldStringData(secret({ stringData: {} }))).toEqual(secret({ data: {} }));
  });

  it('leaves for the API server to refuse a value that is not a string, or a data that is not a mapping', () => {
    const numbered = secret({ stringData: { pin: 1234 } });
    expect(foldStringData(numbered)).toBe(numbered);
    const listed = secret({ data: ['x'], stringData: { a: 'b' } });
    expect(foldStringData(listed)).toBe(listed);
  });

  it('leaves other kinds, and a Secret of another group, as they are', () => {
    const custom = secret({ stringData: { a: 'b' } }, 'example.com/v1');
    expect(foldStringData(custom)).toBe(custom);
    const configMap = secret({ stringData: { a: 'b' } }, 'v1', 'ConfigMap');
    expect(foldStringData(configMap)).toBe(configMap);
  });
});
