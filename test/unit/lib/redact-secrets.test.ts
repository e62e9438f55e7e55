import { describe, expect, it } from 'vitest';
import { withoutPassword } from '../../../src/lib/redact-secrets.js';

describe('withoutPassword', () => {
  it.each([
    ['redis://:s3cret@127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['rediss://app:s3cret@redis.example:6380/2', 'rediss://app@redis.example:6380/2'],
    ['redis://:p@ss@host:6379', 'redis://host:6379'],
    ['redis://app@host:6379', 'redis://app@host:6379'],
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['redis://host:6379/0?name=a@b', 'redis://host:6379/0?name=a@b'],
  ])('shows %s as %s', (url, shown) => {
    expect(withoutPassword(url)).toBe(shown);
  });
});
