import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeApiError } from '../../src/kube/api-error.js';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import { KubeTransport, type KubeResponse } from '../../src/kube/http.js';
import type { ThrottledWait, ThrottleRetryOptions } from '../../src/kube/throttle-retry.js';
import { createApfThrottle, type ApfThrottle } from '../helpers/apf-throttle.js';
import { createTestNamespace, namespacedKubeconfig, type TestNamespace } from '../helpers/kube.js';
import { until } from '../helpers/until.js';

let namespace: TestNamespace;
let dir: string;
let access: Awaited<ReturnType<typeof namespacedKubeconfig>>;
let throttle: ApfThrottle;
const transports: KubeTransport[] = [];

beforeEach(async () => {
  namespace = await createTestNamespace('transport-throttle');
  dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-throttle-'));
  access = await namespacedKubeconfig(
    dir,
    [namespace.name],
    [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create', 'patch'] }],
  );
  // Discovery too: its GETs are turned away with the ConfigMap patches.
  throttle = await createApfThrottle(namespace.name, access.token, { discovery: true });
});

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  closeClusterClients();
  await throttle.cleanup();
  await access.cleanup();
  await namespace.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** The ServiceAccount's transport, as a worker running with that kubeconfig has it. */
function transportOf(throttleOptions?: Partial<ThrottleRetryOptions>): KubeTransport {
  const { kubeConfig } = createClusterClient({ name: 'test', kubeconfig: access.path });
  const transport = new KubeTransport(kubeConfig, 'test', { throttle: throttleOptions });
  transports.push(transport);
  return transport;
}

/**
 * Watches a request's first wait for Retry-After: `expectCutShort` holds when the request
 * ended before that wait would have run out (measured from its start, as the transport told
 * of it, so a slow test process does not count against it).
 */
function waitWatch() {
  let told: (wait: ThrottledWait & { at: number }) => void = () => undefined;
  const started = new Promise<ThrottledWait & { at: number }>((resolve) => (told = resolve));
  let first: (ThrottledWait & { at: number }) | undefined;
  return {
    started,
    onThrottled: (wait: ThrottledWait) => {
      first ??= { ...wait, at: Date.now() };
      told(first);
    },
    expectCutShort: () => {
      expect(first, 'the request was told of no wait').toBeDefined();
      // The API server's Retry-After is 1 s: a wait that ran out would take it all.
      expect(first!.waitMs).toBeGreaterThanOrEqual(1_000);
      expect(Date.now() - first!.at).toBeLessThan(first!.waitMs);
    },
  };
}

/** The server-side apply dry-run a deploy sends for each object. */
function dryRunApply(
  transport: KubeTransport,
  signal?: AbortSignal,
  onThrottled?: (wait: ThrottledWait) => void,
): Promise<KubeResponse<{ kind?: string }>> {
  return transport.request({
    onThrottled,
    method: 'PATCH',
    path: `/api/v1/namespaces/${namespace.name}/configmaps/web`,
    query: { dryRun: 'All', fieldManager: 'pushgate' },
    contentType: 'application/apply-patch+yaml',
    body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web' }, data: { v: '1' } },
    signal,
  });
}

/** Settled without an unhandled rejection while the test acts on the server meanwhile. */
function outcome<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

describe('Kubernetes transport: an API server that throttles (API Priority and Fairness)', () => {
  it('sends a throttled request again after Retry-After, and the caller sees only the answer', async () => {
    const transport = transportOf();
    await throttle.hold();
    const before = await throttle.rejected();

    const pending = outcome(dryRunApply(transport));
    await until(async () => (await throttle.rejected()) > before);
    await throttle.release();
    const result = await pending;

    expect(result).not.toHaveProperty('error');
    const { value } = result as { value: KubeResponse<{ kind?: string }> };
    expect(value.status).toBe(201);
    expect(value.body.kind).toBe('ConfigMap');
  });

  it('fails with 429 once the retries are spent, saying it was throttled and how often it was retried', async () => {
    const transport = transportOf({ maxRetries: 2 });
    await throttle.hold();
    const before = await throttle.rejected();

    const result = await outcome(dryRunApply(transport));

    expect(result).toHaveProperty('error');
    const error = (result as { error: unknown }).error;
    expect(error).toBeInstanceOf(KubeApiError);
    expect((error as KubeApiError).status).toBe(429);
    expect((error as KubeApiError).transient).toBe(true);
    expect((error as KubeApiError).message).toMatch(
      /^PATCH \/api\/v1\/namespaces\/[a-z0-9-]+\/configmaps\/web: HTTP 429: .+ \(throttled by the API server: 429 Too Many Requests, retried 2 times\)$/,
    );
    // The first try and two retries, all turned away by the server.
    expect((await throttle.rejected()) - before).toBe(3);
  });

  it('ends a request waiting out Retry-After at once when its signal aborts, with the abort', async () => {
    const transport = transportOf();
    await throttle.hold();
    const controller = new AbortController();
    const reason = new Error('worker shutting down');

    const wait = waitWatch();
    const pending = outcome(dryRunApply(transport, controller.signal, wait.onThrottled));
    await wait.started;
    controller.abort(reason);
    const result = await pending;

    expect(result).toEqual({ error: reason });
    wait.expectCutShort();
  });
});

describe('discovery against an API server that throttles it', () => {
  const configMaps = { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true };

  it('ends a discovery lookup waiting out Retry-After at once when its signal aborts, with the abort', async () => {
    const { discovery } = createClusterClient({ name: 'test', kubeconfig: access.path });
    await throttle.hold();
    const controller = new AbortController();
    const reason = new Error('job superseded');

    const wait = waitWatch();
    const pending = outcome(
      discovery.resolve('v1', 'ConfigMap', { signal: controller.signal, onThrottled: wait.onThrottled }),
    );
    await wait.started;
    controller.abort(reason);
    const result = await pending;

    expect(result).toEqual({ error: reason });
    wait.expectCutShort();
  });

  it('one lookup aborted fails no other lookup of the cluster, waiting or to come, and leaves nothing cached', async () => {
    const { discovery } = createClusterClient({ name: 'test', kubeconfig: access.path });
    await throttle.hold();
    const before = await throttle.rejected();
    const aborted = new AbortController();
    const reason = new Error('worker shutting down');

    // Two jobs of the cluster on the same request of /api/v1; the first is aborted.
    const first = outcome(discovery.resolve('v1', 'ConfigMap', { signal: aborted.signal }));
    const second = outcome(discovery.resolve('v1', 'ConfigMap', { signal: new AbortController().signal }));
    await until(async () => (await throttle.rejected()) > before);
    aborted.abort(reason);
    expect(await first).toEqual({ error: reason });
    await throttle.release();

    expect(await second).toEqual({ value: configMaps });
    expect(await discovery.resolve('v1', 'ConfigMap')).toEqual(configMaps);
  });

  it('a request every lookup gave up on is asked anew by the next lookup, not handed its abort', async () => {
    const { discovery } = createClusterClient({ name: 'test', kubeconfig: access.path });
    await throttle.hold();
    const before = await throttle.rejected();
    const aborted = new AbortController();
    const reason = new Error('job superseded');

    const first = outcome(discovery.resolve('v1', 'ConfigMap', { signal: aborted.signal }));
    await until(async () => (await throttle.rejected()) > before);
    aborted.abort(reason);
    // At once, before the aborted request has unwound: it must not be the one this joins.
    const next = outcome(discovery.resolve('v1', 'ConfigMap'));
    expect(await first).toEqual({ error: reason });
    await throttle.release();

    expect(await next).toEqual({ value: configMaps });
  });
});
