import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { FlowcontrolApiserverV1Api } from '@kubernetes/client-node';
import { kubeConfigFromTest, uniqueNamespaceName } from './kube.js';
import { until } from './until.js';

/**
 * The test API server throttling for real, through API Priority and Fairness: the ConfigMap
 * patches of `namespace`'s ServiceAccounts go to a priority level of their own, with no seats
 * and `Reject` as its answer to overload.
 *
 * Why a held request: a level with no seats still admits a request while none of its own is
 * executing (so no level is ever starved outright), and turns away every other one with
 * 429 and Retry-After while one is. `hold()` sends a patch's headers and only part of its body:
 * APF admits a request before the handler reads the body, so it occupies the level until
 * `release()` sends the rest.
 */
export interface ApfThrottle {
  /** The FlowSchema and PriorityLevelConfiguration name, also the metrics' label. */
  name: string;
  /** From its return until `release()`, the level's other requests are answered 429. */
  hold(): Promise<void>;
  /** Lets the held request finish: the level admits requests again. */
  release(): Promise<void>;
  /** apiserver_flowcontrol_rejected_requests_total for the level. */
  rejected(): Promise<number>;
  cleanup(): Promise<void>;
}

/**
 * `token`: a ServiceAccount token of `namespace` allowed to patch its ConfigMaps.
 * `discovery`: the ServiceAccounts' discovery requests (GET /api/v1, /apis/<group>/<version>:
 * non-resource URLs to the API server) go to the level too, and are turned away with the rest.
 */
export async function createApfThrottle(
  namespace: string,
  token: string,
  options: { discovery?: boolean } = {},
): Promise<ApfThrottle> {
  const kc = kubeConfigFromTest();
  const flowcontrol = kc.makeApiClient(FlowcontrolApiserverV1Api);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.caData) throw new Error('the test kubeconfig has no cluster CA');
  const server = new URL(cluster.server);
  const ca = Buffer.from(cluster.caData, 'base64');
  const name = uniqueNamespaceName('pushgate-throttle');

  await flowcontrol.createPriorityLevelConfiguration({
    body: {
      metadata: { name },
      spec: {
        type: 'Limited',
        limited: {
          nominalConcurrencyShares: 0,
          lendablePercent: 0,
          borrowingLimitPercent: 0,
          limitResponse: { type: 'Reject' },
        },
      },
    },
  });
  const flowSchema = await flowcontrol.createFlowSchema({
    body: {
      metadata: { name },
      spec: {
        priorityLevelConfiguration: { name },
        // Before `service-accounts` (9000); the admin (system:masters, `exempt`) is not matched.
        matchingPrecedence: 1000,
        distinguisherMethod: { type: 'ByUser' },
        rules: [
          {
            subjects: [{ kind: 'Group', group: { name: `system:serviceaccounts:${namespace}` } }],
            resourceRules: [
              { verbs: ['patch'], apiGroups: [''], resources: ['configmaps'], namespaces: [namespace] },
            ],
            ...(options.discovery
              ? {
                  nonResourceRules: [
                    { verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*'] },
                  ],
                }
              : {}),
          },
        ],
      },
    },
  });

  const patchPath = `/api/v1/namespaces/${namespace}/configmaps/pushgate-throttle-hold?dryRun=All&fieldManager=pushgate-test`;
  const patchBody = Buffer.from(
    JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pushgate-throttle-hold' } }),
  );
  const openPatch = () =>
    https.request(new URL(patchPath, server), {
      method: 'PATCH',
      ca,
      agent: false,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/apply-patch+yaml',
        'Content-Length': String(patchBody.length),
      },
    });
  const answer = (request: ReturnType<typeof openPatch>) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve(response));
      });
      request.on('error', reject);
    });

  // The API server takes up new APF objects asynchronously: until a patch is classified by
  // this FlowSchema (the answer names it), a held request would land in another level.
  await until(async () => {
    const request = openPatch();
    const response = answer(request);
    request.end(patchBody);
    return (await response).headers['x-kubernetes-pf-flowschema-uid'] === flowSchema.metadata?.uid;
  });

  const metrics = async (): Promise<string> => {
    const options: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    return new Promise<string>((resolve, reject) => {
      https
        .get(new URL('/metrics', server), { ...options, agent: false }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          response.on('error', reject);
        })
        .on('error', reject);
    });
  };
  /** Sum of a metric's samples for this level. */
  const sample = async (metric: string): Promise<number> =>
    (await metrics())
      .split('\n')
      .filter((line) => line.startsWith(`${metric}{`) && line.includes(`priority_level="${name}"`))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  const executing = () => sample('apiserver_flowcontrol_current_executing_requests');

  let held: { request: ReturnType<typeof openPatch>; response: Promise<IncomingMessage> } | undefined;
  return {
    name,
    async hold() {
      const request = openPatch();
      held = { request, response: answer(request) };
      held.response.catch(() => undefined);
      request.write(patchBody.subarray(0, 10));
      await until(async () => (await executing()) === 1);
    },
    async release() {
      if (!held) return;
      const { request, response } = held;
      held = undefined;
      request.end(patchBody.subarray(10));
      await response;
      await until(async () => (await executing()) === 0);
    },
    rejected: () => sample('apiserver_flowcontrol_rejected_requests_total'),
    async cleanup() {
      held?.request.destroy();
      held = undefined;
      const gone = (error: unknown) => {
        if ((error as { code?: number }).code !== 404) throw error;
      };
      await flowcontrol.deleteFlowSchema({ name }).catch(gone);
      await flowcontrol.deletePriorityLevelConfiguration({ name }).catch(gone);
    },
  };
}
