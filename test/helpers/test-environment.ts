import { environmentSchema, type EnvironmentConfig } from '../../src/config/schema.js';
import { uniqueNamespaceName } from './kube.js';

/**
 * An environment of the test cluster (`test`) deploying into `namespace` and the namespaces
 * named `<namespace>-*`, no health waits, with a name of its own; `overrides` as in the config.
 */
export function testEnvironment(
  namespace: string,
  overrides: Record<string, unknown> = {},
): EnvironmentConfig {
  return environmentSchema.parse({
    name: uniqueNamespaceName('env').slice(0, 40),
    repo: { provider: 'github', name: 'acme/env', url: 'file:///nowhere' },
    branch: 'env/test',
    path: 'env',
    cluster: 'test',
    namespace,
    allow: { namespaces: [namespace, `${namespace}-*`], clusterScoped: false },
    healthTimeout: 0,
    ...overrides,
  });
}
