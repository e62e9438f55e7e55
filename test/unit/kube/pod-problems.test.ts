import { describe, expect, it } from 'vitest';
import type { LiveObject } from '../../../src/kube/cluster.js';
import { podProblem, selectorQuery } from '../../../src/kube/pod-problems.js';

function pod(status: Record<string, unknown>): LiveObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'apps' }, status };
}

const notReady = [{ type: 'Ready', status: 'False' }];

describe('podProblem', () => {
  it('names what a waiting container waits on, with the last exit of a crash loop', () => {
    expect(
      podProblem(
        pod({
          phase: 'Pending',
          conditions: notReady,
          containerStatuses: [
            {
              name: 'app',
              ready: false,
              state: {
                waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "web:nope"' },
              },
            },
          ],
        }),
      ),
    ).toBe('app: ImagePullBackOff: Back-off pulling image "web:nope"');
    expect(
      podProblem(
        pod({
          phase: 'Running',
          conditions: notReady,
          containerStatuses: [
            { name: 'sidecar', ready: true, state: { running: {} } },
            {
              name: 'app',
              ready: false,
              state: { waiting: { reason: 'CrashLoopBackOff' } },
              lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } },
            },
          ],
        }),
      ),
    ).toBe('app: CrashLoopBackOff; last exit OOMKilled (exit code 137)');
  });

  it('says a pod cannot be scheduled, and an init container that fails before the app starts', () => {
    expect(
      podProblem(
        pod({
          phase: 'Pending',
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message: '0/3 nodes are available: 3 Insufficient memory.',
            },
          ],
        }),
      ),
    ).toBe('Unschedulable: 0/3 nodes are available: 3 Insufficient memory.');
    expect(
      podProblem(
        pod({
          phase: 'Pending',
          conditions: notReady,
          initContainerStatuses: [
            { name: 'migrate', ready: false, state: { terminated: { reason: 'Error', exitCode: 1 } } },
          ],
          containerStatuses: [
            { name: 'app', ready: false, state: { waiting: { reason: 'PodInitializing' } } },
          ],
        }),
      ),
    ).toBe('migrate: Error (exit code 1)');
  });

  it('says nothing of a ready or succeeded pod, nor of one merely starting', () => {
    expect(
      podProblem(pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] })),
    ).toBeUndefined();
    expect(podProblem(pod({ phase: 'Succeeded' }))).toBeUndefined();
    expect(
      podProblem(
        pod({
          phase: 'Pending',
          conditions: notReady,
          containerStatuses: [
            { name: 'app', ready: false, state: { waiting: { reason: 'ContainerCreating' } } },
          ],
        }),
      ),
    ).toBeUndefined();
  });

  it("names an evicted pod by the pod's own reason, not its containers' unknown state", () => {
    expect(
      podProblem(
        pod({
          phase: 'Failed',
          reason: 'Evicted',
          message: 'The node was low on resource: memory.',
          containerStatuses: [
            {
              name: 'app',
              ready: false,
              state: { terminated: { reason: 'ContainerStatusUnknown', exitCode: 137 } },
            },
          ],
        }),
      ),
    ).toBe('Evicted: The node was low on resource: memory.');
  });

  it("leaves out a container's termination message: with FallbackToLogsOnError it is its log's tail", () => {
    expect(
      podProblem(
        pod({
          phase: 'Failed',
          containerStatuses: [
            {
              name: 'migrate',
              ready: false,
              state: {
                terminated: {
                  reason: 'Error',
                  exitCode: 1,
                  message: 'connecting to postgres://app:hunter2@db',
                },
              },
            },
          ],
        }),
      ),
    ).toBe('migrate: Error (exit code 1)');
  });
});

describe('selectorQuery', () => {
  it('writes matchLabels and matchExpressions as a label selector query', () => {
    expect(
      selectorQuery({
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['a', 'b'] },
          { key: 'canary', operator: 'DoesNotExist' },
          { key: 'zone', operator: 'NotIn', values: ['x'] },
          { key: 'team', operator: 'Exists' },
        ],
      }),
    ).toBe('app=web,tier in (a,b),!canary,zone notin (x),team');
  });

  it('reads no pods for an empty or unknown selector', () => {
    expect(selectorQuery({})).toBeUndefined();
    expect(selectorQuery(undefined)).toBeUndefined();
    expect(
      selectorQuery({ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }),
    ).toBeUndefined();
  });
});
