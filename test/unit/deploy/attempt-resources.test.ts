import { describe, expect, it } from 'vitest';
import { MAYBE_CREATED, mergeAttemptResources } from '../../../src/deploy/attempt-resources.js';
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

  it('lists `created` what an earlier attempt was about to create and this one found in place', () => {
    // The earlier attempt was killed after writing a and b, before it could record them.
    const creating = new Set(['v1|ConfigMap|apps|a', 'v1|ConfigMap|apps|b', 'v1|ConfigMap|apps|c']);
    const current = [cm('a', 'unchanged'), cm('b', 'configured'), cm('c', 'created'), cm('d', 'unchanged')];

    expect(mergeAttemptResources([], current, creating)).toEqual([
      cm('a', 'created'),
      cm('b', 'created'),
      cm('c', 'created'),
      cm('d', 'unchanged'),
    ]);
    // Failed now: this attempt's outcome stands. Not reached this time (its dry-run failed,
    // say): the killed attempt may have created it, and the record says so.
    expect(
      mergeAttemptResources([], [cm('a', 'skipped', 'not applied'), cm('b', 'failed', 'denied')], creating),
    ).toEqual([cm('a', 'skipped', MAYBE_CREATED), cm('b', 'failed', 'denied')]);
  });
});
