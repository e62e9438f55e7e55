import { describe, expect, it } from 'vitest';
import { headline } from '../../../src/deploy/job-run.js';

describe('headline (the failure line a commit status shows)', () => {
  it('is the first line of a failure', () => {
    expect(headline('web.yaml document 2: metadata.name is required\nmore detail')).toBe(
      'web.yaml document 2: metadata.name is required',
    );
  });

  it('takes the first entry along when the first line announces a list', () => {
    expect(
      headline('workloads not ready after 300s:\n\n  Deployment web: 0/2 ready\n  Deployment api: 1/2 ready'),
    ).toBe('workloads not ready after 300s: Deployment web: 0/2 ready');
  });

  it('keeps a bare headline when no entry follows', () => {
    expect(headline('workloads not ready after 300s:\n')).toBe('workloads not ready after 300s:');
  });
});
