import { splitApiVersion, type ResourceInfo } from '../manifests/resource-info.js';
import { isNotFound } from './api-error.js';
import type { KubeTransport, RequestOptions } from './http.js';
import { SharedRequest } from './shared-request.js';

interface ApiResourceList {
  resources?: { name: string; kind: string; namespaced: boolean }[];
}

interface ApiGroup {
  versions?: { groupVersion: string }[];
  preferredVersion?: { groupVersion: string };
}

interface CacheEntry {
  /** undefined: the API does not serve this group/version. */
  kinds: SharedRequest<Map<string, ResourceInfo> | undefined>;
  fetchedAt: number;
}

/** Long enough to serve a whole deploy from one fetch, short enough to see new CRDs soon. */
const DEFAULT_TTL_MS = 30_000;
/**
 * A kind the cache says is not served is asked for again once its answer is older than this:
 * the CRD may have been created since (by another worker's deploy, say), and an unknown kind
 * fails a deploy for good.
 */
const MISS_RECHECK_AFTER_MS = 1_000;

/**
 * API discovery, one group/version at a time and only for the ones a deploy uses
 * (`/api/v1`, `/apis/<group>/<version>`), cached per client; concurrent lookups of the same
 * group/version share one request. The cache serves every job of the cluster: a lookup's
 * signal ends its own wait, and the shared request only when no lookup waits for it any
 * more (SharedRequest), so one job's abort fails no other job's lookup and leaves nothing
 * in the cache.
 */
export class Discovery {
  private readonly cache = new Map<string, CacheEntry>();

  constructor(
    private readonly transport: KubeTransport,
    private readonly ttlMs = DEFAULT_TTL_MS,
  ) {}

  readonly resolve = async (
    apiVersion: string,
    kind: string,
    options: RequestOptions = {},
  ): Promise<ResourceInfo | undefined> => {
    options.signal?.throwIfAborted();
    const entry = this.entry(apiVersion);
    const found = (await entry.kinds.join(options))?.get(kind);
    if (found !== undefined || Date.now() - entry.fetchedAt < MISS_RECHECK_AFTER_MS) return found;
    // Concurrent misses share one new request: only the first drops the old answer.
    if (this.cache.get(apiVersion) === entry) this.cache.delete(apiVersion);
    return (await this.entry(apiVersion).kinds.join(options))?.get(kind);
  };

  /**
   * The kind in the version given or, when that is no longer served (removed in a cluster
   * upgrade, say), in another version of its group, preferred first: an object outlives the
   * version it was written in, and prune must still find it.
   */
  readonly resolveInAnyVersion = async (
    apiVersion: string,
    kind: string,
    options: RequestOptions = {},
  ): Promise<ResourceInfo | undefined> => {
    const exact = await this.resolve(apiVersion, kind, options);
    const { group } = splitApiVersion(apiVersion);
    if (exact !== undefined || group === '' || !/^[a-z0-9.-]+$/.test(group)) return exact;
    let served: ApiGroup;
    try {
      served = (await this.transport.request<ApiGroup>({ method: 'GET', path: `/apis/${group}`, ...options }))
        .body;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const versions = [served.preferredVersion, ...(served.versions ?? [])]
      .map((version) => version?.groupVersion)
      .filter((version): version is string => version !== undefined && version !== apiVersion);
    for (const version of new Set(versions)) {
      const found = await this.resolve(version, kind, options);
      if (found !== undefined) return found;
    }
    return undefined;
  };

  /** Forget everything, e.g. after CRDs were applied. */
  invalidate(): void {
    this.cache.clear();
  }

  private entry(apiVersion: string): CacheEntry {
    const cached = this.cache.get(apiVersion);
    // Abandoned: aborted by the last lookup that waited for it, and not yet out of the cache.
    if (cached && !cached.kinds.abandoned && Date.now() - cached.fetchedAt < this.ttlMs) return cached;
    const kinds = new SharedRequest((options) => this.fetch(apiVersion, options));
    const entry = { kinds, fetchedAt: Date.now() };
    this.cache.set(apiVersion, entry);
    kinds.answer.catch(() => {
      if (this.cache.get(apiVersion) === entry) this.cache.delete(apiVersion);
    });
    return entry;
  }

  private async fetch(
    apiVersion: string,
    options: RequestOptions,
  ): Promise<Map<string, ResourceInfo> | undefined> {
    const { group, version } = splitApiVersion(apiVersion);
    if (!/^[a-z0-9.-]*$/.test(group) || !/^[a-z0-9]+$/.test(version)) return undefined;
    const path = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
    let list: ApiResourceList;
    try {
      list = (await this.transport.request<ApiResourceList>({ method: 'GET', path, ...options })).body;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const kinds = new Map<string, ResourceInfo>();
    for (const resource of list.resources ?? []) {
      // Subresources (deployments/status, pods/log) share the kind of their parent.
      if (resource.name.includes('/')) continue;
      kinds.set(resource.kind, {
        group,
        version,
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced,
      });
    }
    return kinds;
  }
}
