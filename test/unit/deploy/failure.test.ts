import { describe, expect, it } from 'vitest';
import { isPermanentFailure, resourcesOf } from '../../../src/deploy/failure.js';
import { summarise } from '../../../src/deploy/job-run.js';
import { KubeApiError } from '../../../src/kube/api-error.js';
import { DeployError } from '../../../src/kube/types.js';
import { PushgateError } from '../../../src/lib/errors.js';

describe('isPermanentFailure', () => {
  it('fails bad manifests and policy violations at once', () => {
    expect(isPermanentFailure(new PushgateError('manifest_invalid', 'a.yaml document 1: bad'))).toBe(true);
    expect(isPermanentFailure(new PushgateError('policy_violation', 'kube-system not allowed'))).toBe(true);
  });

  it('follows the permanent flag of engine errors', () => {
    expect(isPermanentFailure(new DeployError('apply_rejected', 'invalid', { permanent: true }))).toBe(true);
    expect(isPermanentFailure(new DeployError('transient', '503', { permanent: false }))).toBe(false);
  });

  it('fails at once on what the API server refuses as sent, and retries its faults, throttling and conflicts', () => {
    const answered = (status: number | undefined) => new KubeApiError('x', { status });
    expect([400, 413, 422].map((status) => isPermanentFailure(answered(status)))).toEqual([true, true, true]);
    expect([undefined, 409, 429, 500, 503].map((status) => isPermanentFailure(answered(status)))).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('retries network errors, git timeouts and unknown errors', () => {
    expect(isPermanentFailure(new PushgateError('git_failed', 'timed out after 60000 ms'))).toBe(false);
    expect(isPermanentFailure(new Error('ECONNRESET'))).toBe(false);
  });
});

describe('resourcesOf', () => {
  it('carries what the engine did before failing into the job record', () => {
    const resources = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'a', action: 'skipped' as const }];
    expect(resourcesOf(new DeployError('apply_rejected', 'x', { permanent: true, resources }))).toEqual(
      resources,
    );
    expect(resourcesOf(new Error('x'))).toBeUndefined();
  });
});

describe('summarise', () => {
  it('counts objects by action', () => {
    const ref = { apiVersion: 'v1', kind: 'ConfigMap' };
    expect(
      summarise([
        { ...ref, name: 'a', action: 'created' },
        { ...ref, name: 'b', action: 'unchanged' },
        { ...ref, name: 'c', action: 'unchanged' },
      ]),
    ).toBe('3 objects: 1 created, 2 unchanged');
    expect(summarise([])).toBe('0 objects');
  });
});
