import { describe, expect, it } from 'vitest';
import { attemptsAllowed, isPermanentFailure, REFUSED_ATTEMPTS } from '../../../src/deploy/failure.js';
import { KubeApiError } from '../../../src/kube/api-error.js';
import {
  CREDENTIALS_REFUSED,
  failuresError,
  objectFailure,
  shortenQuotedValues,
} from '../../../src/kube/failures.js';
import type { PreparedObject } from '../../../src/manifests/prepare.js';

const object = (name: string): PreparedObject => ({
  object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'apps' } },
  source: { file: `env/${name}.yaml`, document: 1 },
  ref: { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'apps', name },
  resource: { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  stage: 2,
  kindFromSet: false,
});

const refused = new KubeApiError(
  "cluster prod (https://10.0.0.1:6443): PATCH /api/v1/namespaces/apps/configmaps/a: the API server refused the kubeconfig's credentials (401 Unauthorized: a wrong or expired token or client certificate)",
  { status: 401, reason: 'Unauthorized' },
);

describe('failuresError', () => {
  it('fails a dry-run the API server refused the credentials of as a credentials problem, tried again a few times', () => {
    const failure = objectFailure(object('a'), 'dry-run rejected', refused);
    const error = failuresError([failure], 'server-side dry-run rejected the set, nothing was changed', []);

    expect(failure).toMatchObject({ permanent: false, unauthorized: true });
    expect(error.code).toBe('unauthorized');
    expect(error.message.startsWith(`${CREDENTIALS_REFUSED} (server-side dry-run rejected the set`)).toBe(
      true,
    );
    expect(isPermanentFailure(error)).toBe(false);
    expect(attemptsAllowed(error, 10)).toBe(REFUSED_ATTEMPTS);
  });

  it('names the credentials even when other objects met other refusals', () => {
    const invalid = new KubeApiError('ConfigMap "b" is invalid', { status: 422, reason: 'Invalid' });
    const error = failuresError(
      [
        objectFailure(object('a'), 'apply failed', refused),
        objectFailure(object('b'), 'apply failed', invalid),
      ],
      'apply failed',
      [],
    );

    expect(error.code).toBe('unauthorized');
    expect(isPermanentFailure(error)).toBe(false);
  });

  it('leaves other refusals as they were: a 422 is the manifest’s, permanent', () => {
    const invalid = new KubeApiError('ConfigMap "b" is invalid', { status: 422, reason: 'Invalid' });
    const error = failuresError([objectFailure(object('b'), 'apply failed', invalid)], 'apply failed', []);

    expect(error.code).toBe('apply_rejected');
    expect(isPermanentFailure(error)).toBe(true);
    expect(attemptsAllowed(error, 10)).toBe(10);
  });
});

describe('shortenQuotedValues', () => {
  it('cuts long quoted values, JSON or Go, and keeps short ones and the reason after them', () => {
    const json = `{"labels":{"a":"}{"},"Spec":${JSON.stringify({ containers: [{ name: 'x'.repeat(200) }] })}}`;
    const go = `core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:"${'y'.repeat(200)}"}}`;

    expect(shortenQuotedValues(`spec.template: Invalid value: ${json}: field is immutable`)).toBe(
      'spec.template: Invalid value: {…}: field is immutable',
    );
    expect(shortenQuotedValues(`spec.template: Invalid value: ${go}: field is immutable`)).toBe(
      'spec.template: Invalid value: core.PodTemplateSpec{…}: field is immutable',
    );
    expect(shortenQuotedValues('spec.selector: Invalid value: {"app":"web"}: field is immutable')).toBe(
      'spec.selector: Invalid value: {"app":"web"}: field is immutable',
    );
  });
});
