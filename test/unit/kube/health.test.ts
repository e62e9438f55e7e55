import { describe, expect, it } from 'vitest';
import { isHealthChecked, readinessOf } from '../../../src/kube/health.js';

function deployment(status: Record<string, unknown>, replicas = 2, generation = 3) {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { generation }, spec: { replicas }, status };
}

describe('readinessOf', () => {
  it('Deployment: ready when the controller observed the spec and all replicas are updated and available', () => {
    expect(
      readinessOf(
        deployment({ observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }),
      ).state,
    ).toBe('ready');
  });

  it.each([
    [{}, 'not yet observed by its controller'],
    [{ observedGeneration: 2 }, 'controller has seen generation 2 of 3'],
    [
      { observedGeneration: 3, replicas: 2, updatedReplicas: 1, availableReplicas: 2 },
      '1/2 replicas updated',
    ],
    [
      { observedGeneration: 3, replicas: 3, updatedReplicas: 2, availableReplicas: 2 },
      '1 old replicas pending termination',
    ],
    [
      { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 0 },
      '0/2 replicas available',
    ],
  ])('Deployment with status %j is progressing: %s', (status, message) => {
    expect(readinessOf(deployment(status))).toEqual({ state: 'progressing', message });
  });

  it('Deployment: fails at once on ProgressDeadlineExceeded', () => {
    const status = {
      observedGeneration: 3,
      conditions: [
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: 'rs "web-1" has timed out',
        },
      ],
    };
    expect(readinessOf(deployment(status))).toEqual({
      state: 'failed',
      message: 'progress deadline exceeded: rs "web-1" has timed out',
    });
  });

  it('Deployment: a deadline exceeded by the previous rollout does not fail the new generation', () => {
    // Right after the fix is applied: generation 4, the controller has not seen it yet and the
    // stuck rollout's condition is still there.
    const status = {
      observedGeneration: 3,
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }],
    };
    expect(readinessOf(deployment(status, 2, 4)).state).toBe('progressing');
  });

  it("Deployment: a deadline written before pushgate last changed it is the previous rollout's, even once the generation is observed (a revert)", () => {
    // The controller marks the reverted generation observed before it resets the condition.
    const stale = {
      observedGeneration: 4,
      conditions: [
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          lastUpdateTime: '2026-12-07T10:00:00Z',
        },
      ],
    };
    const appliedAt = (time: string) => ({
      ...deployment(stale, 2, 4),
      metadata: {
        generation: 4,
        managedFields: [
          { manager: 'kubectl', operation: 'Update', time: '2026-12-07T11:00:00Z' },
          { manager: 'pushgate', operation: 'Apply', time },
        ],
      },
    });

    expect(readinessOf(appliedAt('2026-12-07T10:05:00Z'))).toEqual({
      state: 'progressing',
      message: 'the previous rollout exceeded its progress deadline; waiting for this one to start',
    });
    // Written after pushgate's apply, or in the same second: this rollout's own stall.
    expect(readinessOf(appliedAt('2026-12-07T09:55:00Z')).state).toBe('failed');
    expect(readinessOf(appliedAt('2026-12-07T10:00:00Z')).state).toBe('failed');
    expect(readinessOf(deployment(stale, 2, 4)).state).toBe('failed');
  });

  it('Deployment paused before its new template rolled out is not ready, saying it is paused', () => {
    // The controller observes the paused spec but creates no ReplicaSet for the new template.
    const object = {
      ...deployment({ observedGeneration: 3, replicas: 3, updatedReplicas: 0, availableReplicas: 3 }, 3),
      spec: { replicas: 3, paused: true },
    };
    expect(readinessOf(object)).toEqual({
      state: 'progressing',
      message: 'paused (spec.paused): 0/3 replicas on the new template',
    });
    const rolledOut = { observedGeneration: 3, replicas: 3, updatedReplicas: 3, availableReplicas: 3 };
    expect(readinessOf({ ...object, status: rolledOut }).state).toBe('ready');
  });

  it('Deployment: a ReplicaFailure condition says why replicas are missing', () => {
    const status = {
      observedGeneration: 3,
      replicas: 0,
      updatedReplicas: 0,
      availableReplicas: 0,
      conditions: [
        {
          type: 'ReplicaFailure',
          status: 'True',
          reason: 'FailedCreate',
          message: 'pods "web-1-x" is forbidden: exceeded quota: pods',
        },
      ],
    };
    expect(readinessOf(deployment(status))).toEqual({
      state: 'progressing',
      message:
        '0/2 replicas updated; ReplicaFailure=True: FailedCreate: pods "web-1-x" is forbidden: exceeded quota: pods',
    });
  });

  it('Deployment: one replica by default', () => {
    const object = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { generation: 1 },
      spec: {},
      status: { observedGeneration: 1, updatedReplicas: 1, availableReplicas: 1, replicas: 1 },
    };
    expect(readinessOf(object).state).toBe('ready');
  });

  it('StatefulSet: ready only when every replica is ready, current and on the update revision', () => {
    const base = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { generation: 1 },
      spec: { replicas: 2 },
    };
    const done = {
      observedGeneration: 1,
      readyReplicas: 2,
      currentReplicas: 2,
      updatedReplicas: 2,
      currentRevision: 'r2',
      updateRevision: 'r2',
    };
    expect(readinessOf({ ...base, status: done }).state).toBe('ready');
    expect(readinessOf({ ...base, status: { ...done, readyReplicas: 1 } }).message).toBe(
      '1/2 replicas ready',
    );
    expect(readinessOf({ ...base, status: { ...done, currentRevision: 'r1' } }).message).toBe(
      'rolling out revision r2',
    );
  });

  it('StatefulSet with minReadySeconds: ready once its pods have stayed ready that long (available)', () => {
    const object = (minReadySeconds: number | undefined, availableReplicas: number | undefined) => ({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { generation: 1 },
      spec: { replicas: 2, ...(minReadySeconds === undefined ? {} : { minReadySeconds }) },
      status: {
        observedGeneration: 1,
        readyReplicas: 2,
        currentReplicas: 2,
        updatedReplicas: 2,
        currentRevision: 'r1',
        updateRevision: 'r1',
        ...(availableReplicas === undefined ? {} : { availableReplicas }),
      },
    });
    expect(readinessOf(object(30, 1))).toEqual({
      state: 'progressing',
      message: '1/2 replicas available (ready for minReadySeconds 30)',
    });
    expect(readinessOf(object(30, 2)).state).toBe('ready');
    // Without minReadySeconds available follows ready; an API server that reports none is read as before.
    expect(readinessOf(object(undefined, 0)).state).toBe('ready');
    expect(readinessOf(object(30, undefined)).state).toBe('ready');
  });

  it.each([
    ['RollingUpdate', {}],
    ['a partition', { type: 'RollingUpdate', rollingUpdate: { partition: 1 } }],
    ['OnDelete', { type: 'OnDelete' }],
  ])('StatefulSet scaled down (%s) waits for the pods past spec.replicas to go', (_, updateStrategy) => {
    const object = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { generation: 2 },
      spec: { replicas: 2, updateStrategy },
      // From 5 to 2: ordinals 2 to 4 are still terminating, and still counted ready.
      status: {
        observedGeneration: 2,
        replicas: 5,
        readyReplicas: 5,
        currentReplicas: 5,
        updatedReplicas: 5,
        currentRevision: 'r1',
        updateRevision: 'r1',
      },
    };
    expect(readinessOf(object)).toEqual({ state: 'progressing', message: '3 pods pending termination' });
  });

  it('StatefulSet with a partition: ready once the pods from the partition up are updated', () => {
    const object = (status: Record<string, unknown>) => ({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { generation: 2 },
      spec: { replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } },
      status: {
        observedGeneration: 2,
        replicas: 3,
        readyReplicas: 3,
        currentRevision: 'r1',
        updateRevision: 'r2',
        ...status,
      },
    });
    // The canary (ordinal 2) runs r2; ordinals 0 and 1 stay on r1 until the partition moves.
    expect(readinessOf(object({ currentReplicas: 2, updatedReplicas: 1 })).state).toBe('ready');
    expect(readinessOf(object({ currentReplicas: 3, updatedReplicas: 0 }))).toEqual({
      state: 'progressing',
      message: '0/1 replicas updated (partition 2)',
    });
  });

  it('DaemonSet: ready when every scheduled pod is updated and available', () => {
    const base = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { generation: 1 } };
    const status = {
      observedGeneration: 1,
      desiredNumberScheduled: 3,
      updatedNumberScheduled: 3,
      numberAvailable: 3,
    };
    expect(readinessOf({ ...base, status }).state).toBe('ready');
    expect(readinessOf({ ...base, status: { ...status, numberAvailable: 2 } }).message).toBe(
      '2/3 pods available',
    );
  });

  it('DaemonSet with OnDelete: ready once every scheduled pod is available, updated or not (they change as they are deleted)', () => {
    const base = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { generation: 2 },
      spec: { updateStrategy: { type: 'OnDelete' } },
    };
    const status = {
      observedGeneration: 2,
      desiredNumberScheduled: 3,
      updatedNumberScheduled: 0,
      numberAvailable: 3,
    };
    expect(readinessOf({ ...base, status }).state).toBe('ready');
    expect(readinessOf({ ...base, status: { ...status, numberAvailable: 2 } }).message).toBe(
      '2/3 pods available',
    );
    expect(readinessOf({ ...base, status: { ...status, observedGeneration: 1 } }).state).toBe('progressing');
    // Rolling (the default): the pods must be on the new template.
    expect(readinessOf({ ...base, spec: {}, status }).message).toBe('0/3 pods updated');
  });

  it('Job: ready when Complete, failed when Failed, counting its failed pods', () => {
    expect(
      readinessOf({
        apiVersion: 'batch/v1',
        kind: 'Job',
        status: { conditions: [{ type: 'Complete', status: 'True' }] },
      }).state,
    ).toBe('ready');
    expect(
      readinessOf({
        apiVersion: 'batch/v1',
        kind: 'Job',
        status: {
          failed: 7,
          conditions: [{ type: 'Failed', status: 'True', message: 'BackoffLimitExceeded' }],
        },
      }),
    ).toEqual({
      state: 'failed',
      message: 'failed: BackoffLimitExceeded (7 failed pods)',
    });
    expect(
      readinessOf({ apiVersion: 'batch/v1', kind: 'Job', status: { active: 1, failed: 3 } }).message,
    ).toBe('not complete (0 succeeded, 1 active, 3 failed)');
  });

  it('Job: fails at once on FailureTarget, before its pods have terminated and Failed is set', () => {
    const status = {
      failed: 7,
      active: 1,
      conditions: [
        {
          type: 'FailureTarget',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
        },
      ],
    };
    expect(readinessOf({ apiVersion: 'batch/v1', kind: 'Job', status })).toEqual({
      state: 'failed',
      message: 'failed: Job has reached the specified backoff limit (7 failed pods)',
    });
  });

  it('Job: ready at SuccessCriteriaMet (Kubernetes 1.31+), before its pods have terminated and Complete is set', () => {
    const status = {
      succeeded: 2,
      active: 1,
      conditions: [
        {
          type: 'SuccessCriteriaMet',
          status: 'True',
          reason: 'SuccessPolicy',
          message: 'Matched rules at index 0',
        },
      ],
    };
    expect(readinessOf({ apiVersion: 'batch/v1', kind: 'Job', status })).toEqual({
      state: 'ready',
      message: 'succeeded (SuccessCriteriaMet; Complete follows once its pods have terminated)',
    });
    // Not yet: a condition written False (or Unknown) decides nothing.
    const pending = { ...status, conditions: [{ type: 'SuccessCriteriaMet', status: 'False' }] };
    expect(readinessOf({ apiVersion: 'batch/v1', kind: 'Job', status: pending }).state).toBe('progressing');
  });

  it('Job suspended is ready, as kstatus has it: nothing runs until it is resumed', () => {
    const job = (spec: Record<string, unknown>, conditions: unknown[] = []) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      spec,
      status: { conditions },
    });
    const suspendedCondition = { type: 'Suspended', status: 'True', reason: 'JobSuspended' };
    expect(readinessOf(job({ suspend: true }))).toEqual({ state: 'ready', message: 'suspended' });
    expect(readinessOf(job({}, [suspendedCondition]))).toEqual({ state: 'ready', message: 'suspended' });
    // Resumed (spec.suspend false) before its controller has cleared the condition: it runs now.
    expect(readinessOf(job({ suspend: false }, [suspendedCondition])).state).toBe('progressing');
  });

  it.each([
    ['apps/v1', 'Deployment'],
    ['apps/v1', 'StatefulSet'],
    ['apps/v1', 'DaemonSet'],
    ['batch/v1', 'Job'],
    ['cert-manager.io/v1', 'Certificate'],
  ])('%s %s being deleted has failed at once, whatever its status says', (apiVersion, kind) => {
    // Its controller keeps writing status until the finalizers let it go.
    const object = {
      apiVersion,
      kind,
      metadata: {
        generation: 1,
        deletionTimestamp: '2026-01-01T00:00:00Z',
        finalizers: ['example.com/hold', 'foregroundDeletion'],
      },
      spec: { replicas: 1 },
      status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    };
    expect(readinessOf(object)).toEqual({
      state: 'failed',
      message:
        'being deleted (finalizers: example.com/hold, foregroundDeletion): apply cannot keep it; it goes once its finalizers finish',
    });
  });

  it.each(['Complete', 'SuccessCriteriaMet'])(
    'a Job that succeeded (%s) is ready while it is deleted in the foreground',
    (type) => {
      const object = {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['foregroundDeletion'] },
        spec: { ttlSecondsAfterFinished: 30 },
        status: { succeeded: 1, conditions: [{ type, status: 'True' }] },
      };
      expect(readinessOf(object).state).toBe('ready');
    },
  );

  it('a Job that failed says its failure, not its deletion, while its TTL deletes it in the foreground', () => {
    const object = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['foregroundDeletion'] },
      spec: { ttlSecondsAfterFinished: 30 },
      status: { failed: 2, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] },
    };
    expect(readinessOf(object)).toEqual({
      state: 'failed',
      message: 'failed: BackoffLimitExceeded (2 failed pods)',
    });
  });

  it('other kinds are ready once applied', () => {
    expect(readinessOf({ apiVersion: 'v1', kind: 'ConfigMap' }).state).toBe('ready');
  });
});

describe('custom resources (kstatus rules by condition)', () => {
  const certificate = (status?: Record<string, unknown>, generation = 2) => ({
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'web', generation },
    ...(status ? { status } : {}),
  });

  it('are watched when their group is not one of Kubernetes’ own', () => {
    expect(isHealthChecked({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: 'web' })).toBe(
      true,
    );
    expect(isHealthChecked({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' })).toBe(true);
    expect(isHealthChecked({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'web' })).toBe(false);
    expect(isHealthChecked({ apiVersion: 'v1', kind: 'ConfigMap', name: 'web' })).toBe(false);
  });

  it('are judged by their conditions even when their kind is also a built-in workload’s', () => {
    // A Volcano Job is done when Ready, not when a batch/v1 Complete condition appears.
    const volcanoJob = {
      apiVersion: 'batch.volcano.sh/v1alpha1',
      kind: 'Job',
      metadata: { name: 'train', generation: 1 },
      status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True' }] },
    };
    expect(readinessOf(volcanoJob)).toEqual({ state: 'ready', message: 'ready' });
    expect(isHealthChecked({ apiVersion: 'batch.volcano.sh/v1alpha1', kind: 'Job', name: 'train' })).toBe(
      true,
    );
    expect(
      readinessOf({ ...volcanoJob, apiVersion: 'example.com/v1', kind: 'Deployment', status: {} }).state,
    ).toBe('ready');
  });

  it('follow Ready, Reconciling, Stalled and observedGeneration; none of them is ready', () => {
    const ready = { type: 'Ready', status: 'True' };
    const notReady = { type: 'Ready', status: 'False', reason: 'Issuing', message: 'waiting for the CA' };
    expect(readinessOf(certificate())).toEqual({ state: 'ready', message: 'ready' });
    expect(readinessOf(certificate({ observedGeneration: 2, conditions: [ready] })).state).toBe('ready');
    expect(readinessOf(certificate({ observedGeneration: 1, conditions: [ready] }))).toEqual({
      state: 'progressing',
      message: 'controller has seen generation 1 of 2',
    });
    expect(readinessOf(certificate({ observedGeneration: 2, conditions: [notReady] }))).toEqual({
      state: 'progressing',
      message: 'Ready=False: Issuing: waiting for the CA',
    });
    expect(
      readinessOf(
        certificate({ conditions: [ready, { type: 'Stalled', status: 'True', reason: 'BadConfig' }] }),
      ),
    ).toEqual({ state: 'failed', message: 'stalled: BadConfig' });
  });

  it('are in progress while Reconciling=True, even when Stalled=True too (kstatus order)', () => {
    const reconciling = { type: 'Reconciling', status: 'True', reason: 'Progressing', message: 'retrying' };
    const stalled = { type: 'Stalled', status: 'True', reason: 'DependencyNotReady' };
    for (const conditions of [
      [reconciling, stalled],
      [stalled, reconciling],
    ]) {
      expect(readinessOf(certificate({ observedGeneration: 2, conditions }))).toEqual({
        state: 'progressing',
        message: 'reconciling: Progressing: retrying',
      });
    }
  });

  it('leave out a condition whose own observedGeneration is behind metadata.generation', () => {
    const condition = (type: string, status: string, observedGeneration: number) => ({
      type,
      status,
      reason: type,
      observedGeneration,
    });
    // Ready=True of the previous spec: the controller has not looked at this one yet.
    expect(readinessOf(certificate({ conditions: [condition('Ready', 'True', 1)] }))).toEqual({
      state: 'progressing',
      message: 'Ready condition is of generation 1 of 2',
    });
    // Stalled or Reconciling left from the previous spec say nothing of this one.
    expect(
      readinessOf(
        certificate({ conditions: [condition('Stalled', 'True', 1), condition('Ready', 'True', 2)] }),
      ),
    ).toEqual({ state: 'ready', message: 'ready' });
    expect(
      readinessOf(
        certificate({ conditions: [condition('Reconciling', 'True', 1), condition('Ready', 'True', 2)] }),
      ),
    ).toEqual({ state: 'ready', message: 'ready' });
  });
});
