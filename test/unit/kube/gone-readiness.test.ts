import { describe, expect, it } from 'vitest';
import type { LiveObject } from '../../../src/kube/cluster.js';
import { goneReadiness } from '../../../src/kube/wait.js';

const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: {} };
const job = (spec: Record<string, unknown>, status?: Record<string, unknown>): LiveObject => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'migrate' },
  spec,
  ...(status ? { status } : {}),
});

describe('goneReadiness (an object the health wait does not find)', () => {
  it('fails at once when the wait never found it: it was deleted after it was applied, and nothing brings it back', () => {
    expect(goneReadiness(undefined, deployment)).toEqual({
      state: 'failed',
      message: 'deleted before the health wait first read it',
    });
    expect(goneReadiness(undefined, job({ ttlSecondsAfterFinished: 0 }))).toEqual({
      state: 'failed',
      message:
        'deleted before the health wait first read it (its ttlSecondsAfterFinished: 0 removes it once finished, before the wait could see how)',
    });
  });

  it('waits out the deadline for a custom resource it never found: one API server of several may not serve it yet', () => {
    const certificate = { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'web' } };
    expect(goneReadiness(undefined, certificate)).toEqual({ state: 'progressing', message: 'not found' });
  });

  it('fails when one it found goes, but takes a Job it saw succeed as done', () => {
    expect(goneReadiness({ ...deployment, status: {} }, deployment).message).toBe(
      'deleted during the health wait',
    );
    const complete = { conditions: [{ type: 'Complete', status: 'True' }] };
    expect(
      goneReadiness(job({ ttlSecondsAfterFinished: 5 }, complete), job({ ttlSecondsAfterFinished: 5 })),
    ).toEqual({
      state: 'ready',
      message: 'succeeded, then deleted',
    });
  });
});
