import { describe, expect, it } from 'vitest';
import {
  MAYBE_CONFIGURED,
  MAYBE_CREATED,
  mergeAttemptResources,
  withUnsettledWrites,
} from '../../../src/deploy/attempt-resources.js';
import { configMapResult as cm } from '../../helpers/resource-results.js';

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
    const intents = { creating, configuring: new Set<string>() };
    const current = [cm('a', 'unchanged'), cm('b', 'configured'), cm('c', 'created'), cm('d', 'unchanged')];

    expect(mergeAttemptResources([], current, intents)).toEqual([
      cm('a', 'created'),
      cm('b', 'created'),
      cm('c', 'created'),
      cm('d', 'unchanged'),
    ]);
    // Failed now: this attempt's outcome stands. Not reached this time (its dry-run failed,
    // say): the killed attempt may have created it, and the record says so.
    expect(
      mergeAttemptResources([], [cm('a', 'skipped', 'not applied'), cm('b', 'failed', 'denied')], intents),
    ).toEqual([cm('a', 'skipped', MAYBE_CREATED), cm('b', 'failed', 'denied')]);
  });

  it('lists `configured` what an earlier attempt was about to change and this one found as git has it', () => {
    // The earlier attempt changed a and b and could not record it (killed, or the API server's
    // answers lost); it had not reached c; d it was about to create.
    const intents = {
      creating: new Set(['v1|ConfigMap|apps|d']),
      configuring: new Set(['v1|ConfigMap|apps|a', 'v1|ConfigMap|apps|b', 'v1|ConfigMap|apps|c']),
    };
    const earlier = [cm('a', 'failed', 'connection reset'), cm('b', 'skipped', 'not applied')];
    const current = [cm('a', 'unchanged'), cm('b', 'unchanged'), cm('c', 'configured'), cm('d', 'unchanged')];

    expect(mergeAttemptResources(earlier, current, intents)).toEqual([
      cm('a', 'configured'),
      cm('b', 'configured'),
      cm('c', 'configured'),
      cm('d', 'created'),
    ]);
    // Not reached this time: it may have changed. Failed now: this attempt's word stands.
    expect(
      mergeAttemptResources([], [cm('a', 'skipped', 'not applied'), cm('b', 'failed', 'denied')], intents),
    ).toEqual([cm('a', 'skipped', MAYBE_CONFIGURED), cm('b', 'failed', 'denied')]);
  });
});

describe('withUnsettledWrites', () => {
  it('says of each object a stopped attempt was about to write, and did not record, that it may have been', () => {
    const resources = [
      cm('a', 'created'),
      cm('b', 'skipped', 'not applied'),
      cm('c', 'skipped', 'not applied'),
    ];

    expect(
      withUnsettledWrites(resources, {
        creating: ['v1|ConfigMap|apps|a', 'v1|ConfigMap|apps|b', 'v1|ConfigMap|apps|new'],
        configuring: ['v1|ConfigMap|apps|c', 'v1|ConfigMap|apps|old'],
      }),
    ).toEqual([
      cm('a', 'created'),
      cm('b', 'skipped', MAYBE_CREATED),
      cm('c', 'skipped', MAYBE_CONFIGURED),
      cm('old', 'skipped', MAYBE_CONFIGURED),
      cm('new', 'skipped', MAYBE_CREATED),
    ]);
  });
});
