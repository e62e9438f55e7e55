import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterConfig } from '../config/schema.js';
import { ConfigError, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ResourceInfo } from '../manifests/resource-info.js';
import type { ManifestObject } from '../manifests/types.js';
import { foldStringData } from '../manifests/secret-string-data.js';
import { Discovery } from './discovery.js';
import type { PluginFailure } from './exec-credential.js';
import { INSECURE_WITH_CA, KubeAccess } from './kubeconfig.js';
import { isNotFound } from './api-error.js';
import { KubeTransport, type KubeRequest, type KubeResponse, type RequestOptions } from './http.js';
import { collectionPath, objectPath } from './paths.js';

export const FIELD_MANAGER = 'pushgate';
const LIST_PAGE_SIZE = 500;

/** An object as the API server returns it. */
export interface LiveObject extends ManifestObject {
  metadata: ManifestObject['metadata'] & {
    uid?: string;
    resourceVersion?: string;
    generation?: number;
  };
}

export interface ApplyOptions {
  dryRun?: boolean;
  signal?: AbortSignal;
}

/** What every request of one job carries: see KubeRequest.onThrottled. */
export type JobHooks = Pick<KubeRequest, 'onThrottled'>;

/**
 * One cluster as the apply engine sees it: an HTTP transport with keep-alive through the
 * KubeConfig, cached discovery and the handful of verbs a GitOps apply needs.
 */
export class ClusterClient {
  readonly discovery: Discovery;

  constructor(
    readonly name: string,
    readonly kubeConfig: KubeAccess,
    readonly transport: KubeTransport = new KubeTransport(kubeConfig, name),
    discovery?: Discovery,
    private readonly hooks: JobHooks = {},
  ) {
    this.discovery = discovery ?? new Discovery(transport);
  }

  /**
   * This client as one job uses it: the same connections and discovery cache, every request
   * (discovery's too) carrying `hooks`, so that the job, not the shared transport, logs what
   * happens to its requests, on lines that name the job. Not to be closed: its connections
   * are the cluster's.
   */
  forJob(hooks: JobHooks): ClusterClient {
    return new ClusterClient(this.name, this.kubeConfig, this.transport, this.discovery, hooks);
  }

  /** A request the verbs below do not cover (a SubjectAccessReview, say), with the job's hooks. */
  request<T>(req: KubeRequest): Promise<KubeResponse<T>> {
    return this.transport.request<T>({ ...this.hooks, ...req });
  }

  /** The kind's API resource, by discovery (cached; see Discovery.resolve). */
  resolve(apiVersion: string, kind: string, signal?: AbortSignal): Promise<ResourceInfo | undefined> {
    return this.discovery.resolve(apiVersion, kind, this.options(signal));
  }

  /** The kind in the version given or another its group still serves (Discovery.resolveInAnyVersion). */
  resolveInAnyVersion(
    apiVersion: string,
    kind: string,
    signal?: AbortSignal,
  ): Promise<ResourceInfo | undefined> {
    return this.discovery.resolveInAnyVersion(apiVersion, kind, this.options(signal));
  }

  private options(signal: AbortSignal | undefined): RequestOptions {
    return signal ? { ...this.hooks, signal } : this.hooks;
  }

  /** The live object, or undefined when it does not exist. */
  async get(
    resource: ResourceInfo,
    namespace: string | undefined,
    name: string,
    signal?: AbortSignal,
  ): Promise<LiveObject | undefined> {
    try {
      const response = await this.request<LiveObject>({
        method: 'GET',
        path: objectPath(resource, namespace, name),
        signal,
      });
      return response.body;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Every object of a collection (one namespace, or cluster-wide for cluster-scoped kinds),
   * paged, or the first `firstOnly` of them. Items come back with apiVersion and kind set, like a GET.
   */
  async list(
    resource: ResourceInfo,
    namespace: string | undefined,
    signal?: AbortSignal,
    labelSelector?: string,
    /** Read only the first page, of this many. */
    firstOnly?: number,
  ): Promise<LiveObject[]> {
    const items: LiveObject[] = [];
    const apiVersion = resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
    let continueToken: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(firstOnly ?? LIST_PAGE_SIZE) };
      if (labelSelector) query.labelSelector = labelSelector;
      if (continueToken) query.continue = continueToken;
      const response = await this.request<{
        items?: LiveObject[];
        metadata?: { continue?: string };
      }>({
        method: 'GET',
        path: collectionPath(resource, namespace),
        query,
        signal,
      });
      for (const item of response.body.items ?? []) items.push({ ...item, apiVersion, kind: resource.kind });
      continueToken = firstOnly === undefined ? response.body.metadata?.continue || undefined : undefined;
    } while (continueToken);
    return items;
  }

  /**
   * Server-side apply as field manager `pushgate`, taking over conflicting fields (as Flux does).
   * A Secret's `stringData` goes as `data` (secret-string-data.ts).
   */
  async apply(
    resource: ResourceInfo,
    object: ManifestObject,
    options: ApplyOptions = {},
  ): Promise<LiveObject> {
    // Strict, as kubectl: a misspelt field fails the dry-run instead of being dropped silently.
    const query: Record<string, string> = {
      fieldManager: FIELD_MANAGER,
      force: 'true',
      fieldValidation: 'Strict',
    };
    if (options.dryRun) query.dryRun = 'All';
    const response = await this.request<LiveObject>({
      method: 'PATCH',
      path: objectPath(resource, object.metadata.namespace, object.metadata.name),
      query,
      // JSON is YAML: the apply-patch content type accepts it as is.
      contentType: 'application/apply-patch+yaml',
      body: foldStringData(object),
      signal: options.signal,
    });
    return response.body;
  }

  /**
   * Rewrites the object's field ownership (`metadata.managedFields`) and nothing else, only if
   * the object is still at `resourceVersion` (a JSON patch `test`): see field-takeover.ts.
   */
  async replaceManagedFields(
    resource: ResourceInfo,
    live: LiveObject,
    managedFields: readonly unknown[],
    signal?: AbortSignal,
  ): Promise<LiveObject> {
    const response = await this.request<LiveObject>({
      method: 'PATCH',
      path: objectPath(resource, live.metadata.namespace, live.metadata.name),
      contentType: 'application/json-patch+json',
      body: [
        { op: 'test', path: '/metadata/resourceVersion', value: live.metadata.resourceVersion },
        { op: 'replace', path: '/metadata/managedFields', value: managedFields },
      ],
      signal,
    });
    return response.body;
  }

  /**
   * Removes one label from the exact object that was inspected, only while the label still
   * has the value read (JSON patch `test`s of its uid and of the label).
   */
  async removeLabel(
    resource: ResourceInfo,
    live: LiveObject,
    label: { name: string; value: string },
    signal?: AbortSignal,
  ): Promise<void> {
    const labelPath = `/metadata/labels/${label.name.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    await this.request<LiveObject>({
      method: 'PATCH',
      path: objectPath(resource, live.metadata.namespace, live.metadata.name),
      contentType: 'application/json-patch+json',
      body: [
        { op: 'test', path: '/metadata/uid', value: live.metadata.uid },
        { op: 'test', path: labelPath, value: label.value },
        { op: 'remove', path: labelPath },
      ],
      signal,
    });
  }

  /**
   * Deletes in the background (dependents are collected by the garbage collector), only the
   * exact object that was inspected (uid precondition). Resolves false when already gone.
   */
  async delete(
    resource: ResourceInfo,
    namespace: string | undefined,
    name: string,
    uid: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const body: Record<string, unknown> = {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      propagationPolicy: 'Background',
    };
    if (uid) body.preconditions = { uid };
    try {
      await this.request({
        method: 'DELETE',
        path: objectPath(resource, namespace, name),
        body,
        signal,
      });
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  close(): void {
    this.transport.close();
  }
}

export type Env = Record<string, string | undefined>;

export interface ClusterClientOptions {
  /** The worker's log: a failed exec credential plugin's stderr goes there, at debug level only. */
  logger?: Pick<Logger, 'debug'>;
}

const clients = new Map<string, ClusterClient>();

/**
 * The client for a configured cluster, one per process and cluster (so discovery and
 * keep-alive connections are shared by every deploy). The KubeConfig comes from
 * `cluster.kubeconfig`, else `$KUBECONFIG` (a path list, merged, missing files skipped), else `~/.kube/config`,
 * else the in-cluster service account.
 */
export function createClusterClient(
  cluster: ClusterConfig,
  env: Env = process.env,
  options: ClusterClientOptions = {},
): ClusterClient {
  const key = JSON.stringify([cluster.name, cluster.kubeconfig, cluster.context, env.KUBECONFIG]);
  const cached = clients.get(key);
  if (cached) return cached;
  const { logger } = options;
  const onPluginFailure = logger
    ? (failure: PluginFailure): void =>
        logger.debug({ cluster: cluster.name, ...failure }, 'exec credential plugin failed')
    : undefined;
  const client = new ClusterClient(cluster.name, loadKubeConfig(cluster, env, onPluginFailure));
  clients.set(key, client);
  return client;
}

/** Drops every cached client and its connections (tests, shutdown). */
export function closeClusterClients(): void {
  for (const client of clients.values()) client.close();
  clients.clear();
}

/**
 * Why a kubeconfig did not load, without its text: a YAML error's message quotes the lines
 * around the fault, and those may hold a token or a key. (Not kept as the cause either, since
 * error logs print causes.)
 */
function loadFailure(error: unknown): string {
  if (error instanceof Error && error.name === 'YAMLParseError') {
    // "<reason> at line L, column C:" and then the quoted lines: keep the first line only.
    return `not valid YAML: ${error.message.split('\n', 1)[0]!.replace(/:$/, '')}`;
  }
  return errorMessage(error);
}

/**
 * The cluster's kubeconfig, loaded again when its files change (see KubeAccess.reloadIfChanged):
 * a kubeconfig mounted from a Secret is replaced in place when the Secret is rotated.
 */
export function loadKubeConfig(
  cluster: ClusterConfig,
  env: Env = process.env,
  onPluginFailure?: (failure: PluginFailure) => void,
): KubeAccess {
  const source = {
    identity: () => kubeconfigIdentity(cluster, env),
    load: () => readKubeConfig(cluster, env, onPluginFailure),
  };
  // Taken before the read: a file replaced in between is read again at the next check.
  const identity = source.identity();
  const kc = source.load();
  kc.watch(source, identity);
  return kc;
}

/**
 * What the kubeconfig files hold, as content hashes: a Secret volume swaps its files by a
 * symlink (new inode, maybe the same size and mtime second), an editor may rewrite one in
 * place. A few KiB hashed once a minute. Files it names (certificates, CA, tokenFile) are read
 * on every credential load anyway.
 */
function kubeconfigIdentity(cluster: ClusterConfig, env: Env): string {
  let files: string[];
  try {
    files = kubeconfigFiles(cluster, env);
  } catch (error) {
    return `unlisted: ${errorMessage(error)}`;
  }
  const hashes = files.map((file) => {
    try {
      return createHash('sha256').update(readFileSync(file)).digest('hex');
    } catch (error) {
      return `unreadable: ${errorMessage(error)}`;
    }
  });
  return JSON.stringify([files, hashes]);
}

function readKubeConfig(
  cluster: ClusterConfig,
  env: Env,
  onPluginFailure: ((failure: PluginFailure) => void) | undefined,
): KubeAccess {
  const kc = new KubeAccess(env, onPluginFailure);
  const files = kubeconfigFiles(cluster, env);
  try {
    if (files.length > 0) {
      const [first, ...rest] = files as [string, ...string[]];
      kc.loadFromFile(first);
      for (const file of rest) {
        const other = new KubeAccess(env);
        other.loadFromFile(file);
        mergeFirstWins(kc, other);
      }
    } else if (env.KUBERNETES_SERVICE_HOST) {
      kc.loadFromCluster(env);
    } else {
      throw new Error(
        'no kubeconfig given, $KUBECONFIG unset, no ~/.kube/config and not running in a cluster',
      );
    }
  } catch (error) {
    throw new ConfigError(`cluster ${cluster.name}: cannot load kubeconfig: ${loadFailure(error)}`);
  }

  if (cluster.context) {
    if (!kc.getContextObject(cluster.context)) {
      const available = kc.getContexts().map((context) => context.name);
      throw new ConfigError(
        `cluster ${cluster.name}: context "${cluster.context}" is not in the kubeconfig (available: ${available.join(', ') || 'none'})`,
      );
    }
    kc.setCurrentContext(cluster.context);
  }
  const current = kc.getCurrentCluster();
  if (!current) {
    throw new ConfigError(`cluster ${cluster.name}: the kubeconfig has no current context with a cluster`);
  }
  if (current.skipTLSVerify && (current.caFile || current.caData)) {
    throw new ConfigError(
      `cluster ${cluster.name}: kubeconfig cluster "${current.name}" has insecure-skip-tls-verify and a certificate authority: ${INSECURE_WITH_CA}`,
    );
  }
  // As client-go, rather than go out as system:anonymous.
  const context = kc.getContextObject(kc.getCurrentContext());
  if (context?.user && !kc.getUser(context.user)) {
    throw new ConfigError(
      `cluster ${cluster.name}: user "${context.user}" was not found for context "${context.name}"`,
    );
  }
  return kc;
}

export interface KubeconfigProblem {
  cluster: string;
  /** Why it cannot be loaded, naming the cluster: loadKubeConfig's message. */
  message: string;
}

/**
 * The clusters whose kubeconfig or context cannot be loaded, as render and the worker would
 * load them. Files only, no request: `check` may run where the API servers are not reachable.
 */
export function kubeconfigProblems(
  clusters: readonly ClusterConfig[],
  env: Env = process.env,
): KubeconfigProblem[] {
  const problems: KubeconfigProblem[] = [];
  for (const cluster of clusters) {
    try {
      loadKubeConfig(cluster, env);
    } catch (error) {
      problems.push({ cluster: cluster.name, message: errorMessage(error) });
    }
  }
  return problems;
}

/** kubectl's rule for a $KUBECONFIG list: the first file to define a name wins (client-node would throw). */
function mergeFirstWins(kc: KubeAccess, other: KubeAccess): void {
  for (const cluster of other.getClusters()) if (!kc.getCluster(cluster.name)) kc.addCluster(cluster);
  for (const user of other.getUsers()) if (!kc.getUser(user.name)) kc.addUser(user);
  for (const context of other.getContexts()) if (!kc.getContextObject(context.name)) kc.addContext(context);
  if (!kc.getCurrentContext()) kc.setCurrentContext(other.getCurrentContext());
}

/**
 * As kubectl: files of a $KUBECONFIG list that do not exist are skipped (one list serves
 * several machines), but a list naming no file that exists is an error, not a fall-back.
 */
function kubeconfigFiles(cluster: ClusterConfig, env: Env): string[] {
  if (cluster.kubeconfig) return [cluster.kubeconfig];
  const fromEnv = (env.KUBECONFIG ?? '').split(path.delimiter).filter((file) => file !== '');
  if (fromEnv.length > 0) {
    const existing = fromEnv.filter((file) => existsSync(file));
    if (existing.length > 0) return existing;
    throw new ConfigError(
      `cluster ${cluster.name}: cannot load kubeconfig: no file of $KUBECONFIG exists (${fromEnv.join(', ')})`,
    );
  }
  const home = env.HOME ?? os.homedir();
  const standard = path.join(home, '.kube', 'config');
  return existsSync(standard) ? [standard] : [];
}
