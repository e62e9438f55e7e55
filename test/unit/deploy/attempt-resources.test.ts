import { describe, expect, it } from 'vitest';
import { mergeAttemptResources } from '../../../src/deploy/attempt-resources.js';
import type { ResourceResult } from '../../../src/status/job-record.js';

const cm = (name: string, action: ResourceResult['action'], message?: string): ResourceResult => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  namespace: 'apps',
  name,
  action,
  ...(message ? { message } : {}),
});

describe('mergeAttemptResources', () => {
  it('keeps what an earlier attempt created, configured or pruned over what the retry found done', () => {
    const earlier = [cm('a', 'created'), cm('b', 'configured'), cm('gone', 'pruned'), cm('c', 'created')];
    const current = [cm('a', 'unchanged'), cm('b', 'unchanged'), cm('c', 'configured'), cm('d', 'created')];

    expect(mergeAttemptResources(earlier, current)).toEqual([
      cm('a', 'created'),
      cm('b', 'configured'),
      cm('c', 'created'),
      cm('d', 'created'),
      cm('gone', 'pruned'),
    ]);
  });

  it("lets this attempt's own failure or change stand, and forgets what the earlier one did not change", () => {
    const earlier = [cm('a', 'created'), cm('b', 'failed', 'conflict'), cm('c', 'skipped', 'not applied')];
    const current = [cm('a', 'failed', 'denied'), cm('b', 'configured')];

    expect(mergeAttemptResources(earlier, current)).toEqual([
      cm('a', 'failed', 'denied'),
      cm('b', 'configured'),
    ]);
  });
});
