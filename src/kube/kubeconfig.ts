import { readFileSync } from 'node:fs';
import http from 'node:http';
import type https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { Cluster, Context, KubeConfig, User } from '@kubernetes/client-node';
import { newClusters, newContexts, newUsers } from '@kubernetes/client-node/dist/config_types.js';
import { parse } from 'yaml';
import type { Env } from '../config/load.js';
import { errorMessage } from '../lib/errors.js';
import {
  ExecCredentialSource,
  type ExecConfig,
  type ExecCredential,
  type PluginFailure,
} from './exec-credential.js';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A kubeconfig user with the fields client-node's parser drops, read from the entry itself. */
export interface KubeUser extends User {
  /** `tokenFile`, absolute: read again on every credential load, as client-go re-reads it. */
  readonly tokenFile?: string;
  /** `as-groups`, `as-uid`, `as-user-extra`: the rest of the identity `as` impersonates. */
  readonly impersonateGroups?: readonly string[];
  readonly impersonateUid?: string;
  readonly impersonateExtra?: Readonly<Record<string, readonly string[]>>;
}

/** What client-node's `newUsers` leaves out of a kubeconfig's `users` entry. */
type DroppedUserFields = Pick<
  KubeUser,
  'tokenFile' | 'impersonateGroups' | 'impersonateUid' | 'impersonateExtra'
>;

/** Where a KubeAccess came from, to load it again when that changed: see KubeAccess.watch. */
export interface KubeconfigSource {
  /** What the files hold now (content hashes): unchanged means nothing to load. */
  identity(): string;
  /** The kubeconfig as the files hold it now; throws when they do not load. */
  load(): KubeAccess;
}

/**
 * The part of client-node's `KubeConfig` the apply engine uses. Importing client-node's
 * `KubeConfig` loads its whole generated API client (~75 MiB of a worker's memory), so
 * kubeconfig files are parsed with client-node's own entry parsers, certificates and
 * tokens are read here, exec credential plugins are run here (see ExecCredentialSource for
 * why not by client-node), and the full library is imported only for credentials that need
 * its auth providers or a proxy.
 */
export class KubeAccess {
  clusters: Cluster[] = [];
  users: KubeUser[] = [];
  contexts: Context[] = [];
  currentContext = '';
  private clientNode: Promise<KubeConfig> | undefined;
  /** By cluster name: the `client.authentication.k8s.io/exec` extension kubectl passes to plugins. */
  private execExtensions = new Map<string, unknown>();
  /** By user name: a plugin's credential is shared by every request until it expires. */
  private readonly execSources = new Map<string, ExecCredentialSource>();
  /** The files this was loaded from, and what they held then. */
  private watched: { source: KubeconfigSource; identity: string } | undefined;
  /** Why the files, changed since, do not load (a half-written file): the last good ones serve. */
  private reloadFailure: string | undefined;

  /**
   * `env`: what exec credential plugins inherit (less pushgate's secrets). `onPluginFailure`:
   * told a failed plugin's stderr, which its error leaves out (failureHint).
   */
  constructor(
    private readonly env: Env = process.env,
    private readonly onPluginFailure?: (failure: PluginFailure) => void,
  ) {}

  loadFromFile(file: string): void {
    const document = (parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
    const dir = path.dirname(path.resolve(file));
    this.clusters = newClusters(document.clusters).map((cluster) => ({
      ...cluster,
      caFile: absolute(dir, cluster.caFile),
    }));
    // client-node drops cluster extensions; exec plugins may be handed theirs.
    this.execExtensions = execExtensions(document.clusters);
    const dropped = droppedUserFields(document.users);
    this.users = newUsers(document.users).map((user) => {
      const { tokenFile, ...impersonation } = dropped.get(user.name) ?? {};
      return {
        ...user,
        ...impersonation,
        certFile: absolute(dir, user.certFile),
        keyFile: absolute(dir, user.keyFile),
        exec: execRelativeTo(dir, user.exec as ExecConfig | null | undefined),
        ...(tokenFile ? { tokenFile: absolute(dir, tokenFile) } : {}),
      };
    });
    this.contexts = newContexts(document.contexts);
    const current = document['current-context'];
    this.currentContext = typeof current === 'string' ? current : '';
  }

  /** The pod's service account, as client-node's `loadFromCluster` describes it. */
  loadFromCluster(env: Record<string, string | undefined> = process.env): void {
    const host = env.KUBERNETES_SERVICE_HOST ?? '';
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
    const serverHost = net.isIPv6(host) ? `[${host}]` : host;
    this.clusters = [
      {
        name: 'inCluster',
        server: `${scheme}://${serverHost}:${port}`,
        caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
        skipTLSVerify: false,
      },
    ];
    this.users = [
      {
        name: 'inClusterUser',
        authProvider: { name: 'tokenFile', config: { tokenFile: `${SERVICE_ACCOUNT_DIR}/token` } },
      },
    ];
    this.contexts = [{ name: 'inClusterContext', cluster: 'inCluster', user: 'inClusterUser' }];
    this.currentContext = 'inClusterContext';
  }

  /** Loaded from `source` when it held `identity`: reloadIfChanged compares with that. */
  watch(source: KubeconfigSource, identity: string): void {
    this.watched = { source, identity };
  }

  /**
   * Loads the kubeconfig again if its files changed since (a Secret-mounted one rotated: a
   * token, certificates, the CA or the server inline), taking what it says for every request
   * after. Files that do not load (caught half-written) leave the last good ones in use, and
   * are tried again at the next call. Callers call it whenever they load credentials.
   */
  reloadIfChanged(): void {
    const watched = this.watched;
    if (!watched) return;
    const identity = watched.source.identity();
    if (identity === watched.identity) {
      this.reloadFailure = undefined;
      return;
    }
    let fresh: KubeAccess;
    try {
      fresh = watched.source.load();
    } catch (error) {
      this.reloadFailure = errorMessage(error);
      return;
    }
    this.clusters = fresh.clusters;
    this.users = fresh.users;
    this.contexts = fresh.contexts;
    this.currentContext = fresh.currentContext;
    this.execExtensions = fresh.execExtensions;
    // A plugin's credential was for the old user entry: run it (as the new one says) again.
    this.execSources.clear();
    this.clientNode = undefined;
    watched.identity = identity;
    this.reloadFailure = undefined;
  }

  /** Why the changed kubeconfig is not in use, if it is not: see reloadIfChanged. */
  get reloadProblem(): string | undefined {
    return this.reloadFailure;
  }

  getContexts(): Context[] {
    return this.contexts;
  }
  getClusters(): Cluster[] {
    return this.clusters;
  }
  getUsers(): KubeUser[] {
    return this.users;
  }
  getCluster(name: string): Cluster | null {
    return this.clusters.find((cluster) => cluster.name === name) ?? null;
  }
  getUser(name: string): KubeUser | null {
    return this.users.find((user) => user.name === name) ?? null;
  }
  getContextObject(name: string): Context | null {
    return this.contexts.find((context) => context.name === name) ?? null;
  }
  getCurrentContext(): string {
    return this.currentContext;
  }
  setCurrentContext(name: string): void {
    this.currentContext = name;
  }
  addCluster(cluster: Cluster): void {
    this.clusters.push(cluster);
  }
  addUser(user: KubeUser): void {
    this.users.push(user);
  }
  addContext(context: Context): void {
    this.contexts.push(context);
  }
  getCurrentCluster(): Cluster | null {
    const context = this.getContextObject(this.currentContext);
    return context ? this.getCluster(context.cluster) : null;
  }
  getCurrentUser(): KubeUser | null {
    const context = this.getContextObject(this.currentContext);
    return context?.user ? this.getUser(context.user) : null;
  }

  /**
   * TLS material and credentials for a request, as client-node's method of the same name sets
   * them. Returns the exec plugin's credential it applied, if any: the caller keeps these
   * options no longer than it may be used, and names it when the API server refuses it.
   */
  async applyToHTTPSOptions(options: https.RequestOptions): Promise<ExecCredential | undefined> {
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    // The cluster's TLS whatever the user: without it a context with no user (or one naming
    // a user the file lacks) would not check the server against its CA.
    if (cluster) applyClusterTls(cluster, options);
    if (user) applyOwnCredentials(user, options);
    if (user && usesAuthProvider(user)) {
      const authorization = await this.authProviderHeader();
      if (authorization) options.headers = { ...(options.headers ?? {}), Authorization: authorization };
    }
    if (!user?.exec) return undefined;
    const credential = await this.execSource(user).get();
    if (credential.token) {
      options.headers = { ...(options.headers ?? {}), Authorization: `Bearer ${credential.token}` };
    }
    if (credential.clientCertificateData && credential.clientKeyData) {
      options.cert = Buffer.from(credential.clientCertificateData);
      options.key = Buffer.from(credential.clientKeyData);
    }
    return credential;
  }

  /**
   * After the API server answered 401 to a request that carried `used` (undefined: whatever
   * it carried): exec plugins are run again for the next request.
   */
  forgetCredentials(used?: ExecCredential): void {
    for (const source of this.execSources.values()) source.forget(used);
  }

  private execSource(user: User): ExecCredentialSource {
    let source = this.execSources.get(user.name);
    if (!source) {
      const cluster = this.getCurrentCluster();
      const execCluster = cluster && { ...cluster, execExtension: this.execExtensions.get(cluster.name) };
      source = new ExecCredentialSource(
        user.exec as ExecConfig,
        execCluster,
        this.env,
        undefined,
        this.onPluginFailure,
      );
      this.execSources.set(user.name, source);
    }
    return source;
  }

  /**
   * The agent of a cluster with `proxy-url` (http CONNECT, socks), which client-node knows how
   * to build: built from `tls` as requests will use it, an exec plugin's client certificate
   * included. client-node is given the server and proxy only, so that it adds nothing of its own.
   */
  async proxyAgent(tls: https.AgentOptions): Promise<http.Agent> {
    const cluster = this.getCurrentCluster();
    if (!cluster?.proxyUrl) throw new Error('the kubeconfig cluster has no proxy-url');
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'proxied', server: cluster.server, proxyUrl: cluster.proxyUrl, skipTLSVerify: false },
      ],
      users: [{ name: 'none' }],
      contexts: [{ name: 'proxied', cluster: 'proxied', user: 'none' }],
      currentContext: 'proxied',
    });
    const options: https.RequestOptions = { ...tls };
    await kc.applyToHTTPSOptions(options);
    if (!(options.agent instanceof http.Agent)) throw new Error(`no agent for proxy-url ${cluster.proxyUrl}`);
    return options.agent;
  }

  /** The Authorization header of an auth provider (oidc, azure, gcp): client-node runs those. */
  private async authProviderHeader(): Promise<string | undefined> {
    const scratch: https.RequestOptions = {};
    await (await this.loadClientNode()).applyToHTTPSOptions(scratch);
    // client-node sets headers as an object (OutgoingHttpHeaders), never as a raw list.
    const authorization = (scratch.headers as http.OutgoingHttpHeaders | undefined)?.Authorization;
    return typeof authorization === 'string' ? authorization : undefined;
  }

  private loadClientNode(): Promise<KubeConfig> {
    this.clientNode ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: this.clusters,
        // Exec plugins are run here, with the environment they should see.
        users: this.users.map((user) => ({ ...user, exec: undefined })),
        contexts: this.contexts,
        currentContext: this.currentContext,
      });
      return kc;
    });
    return this.clientNode;
  }
}

/** client-go's words for a cluster both checked against a CA and not checked at all. */
export const INSECURE_WITH_CA = 'specifying a root certificates file with the insecure flag is not allowed';

/** How the server is checked: its CA, the name its certificate is checked for, or not at all. */
function applyClusterTls(cluster: Cluster, options: https.RequestOptions): void {
  // Refused as kubectl refuses it: the CA would be ignored, and any server taken.
  if (cluster.skipTLSVerify && (cluster.caFile || cluster.caData)) throw new Error(INSECURE_WITH_CA);
  if (cluster.skipTLSVerify) options.rejectUnauthorized = false;
  if (cluster.tlsServerName) options.servername = cluster.tlsServerName;
  const ca = fileOrBase64(cluster.caFile, cluster.caData);
  if (ca) options.ca = ca;
}

/** The user's client certificate and credentials read from the kubeconfig (inline data before files, as kubectl). */
function applyOwnCredentials(user: KubeUser, options: https.RequestOptions): void {
  const cert = fileOrBase64(user.certFile, user.certData);
  if (cert) options.cert = cert;
  const key = fileOrBase64(user.keyFile, user.keyData);
  if (key) options.key = key;
  const headers: Record<string, string | string[]> = { ...impersonationHeaders(user) };
  // `token` wins over `tokenFile`, as the kubeconfig format says.
  const token = user.token || readTokenFile(user);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (user.username) options.auth = `${user.username}:${user.password ?? ''}`;
  options.headers = { ...(options.headers ?? {}), ...headers };
}

/**
 * Re-read on every call: projected service-account tokens and Secret-mounted ones rotate
 * (callers cache briefly). An empty file is one caught mid-rotation, as client-go treats it.
 */
function readTokenFile(user: KubeUser): string | undefined {
  const provider = user.authProvider as { config?: { tokenFile?: string } } | undefined;
  const file = user.tokenFile ?? provider?.config?.tokenFile;
  if (!file) return undefined;
  const token = readFileSync(file, 'utf8').trim();
  if (!token) throw new Error(`the token file ${file} is empty`);
  return token;
}

/** What client-node's `newUsers` leaves out of a kubeconfig's `users` entries, by user name. */
function droppedUserFields(users: unknown): Map<string, DroppedUserFields> {
  const found = new Map<string, DroppedUserFields>();
  if (!Array.isArray(users)) return found;
  for (const entry of users as { name?: unknown; user?: Record<string, unknown> | null }[]) {
    const user = entry?.user;
    if (typeof entry?.name !== 'string' || !user) continue;
    const fields: DroppedUserFields = {
      tokenFile: text(user.tokenFile),
      impersonateGroups: texts(user['as-groups']),
      impersonateUid: text(user['as-uid']),
      impersonateExtra: extra(user['as-user-extra']),
    };
    found.set(
      entry.name,
      Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)),
    );
  }
  return found;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function texts(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const found = value.filter((item): item is string => typeof item === 'string');
  return found.length > 0 ? found : undefined;
}

function extra(value: unknown): Record<string, string[]> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const found: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(value)) {
    const list = texts(values);
    if (list) found[key] = list;
  }
  return Object.keys(found).length > 0 ? found : undefined;
}

/** client-go's headers for `as`, `as-groups`, `as-uid` and `as-user-extra`: a group or value a header each. */
function impersonationHeaders(user: KubeUser): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  if (user.impersonateUser) headers['Impersonate-User'] = user.impersonateUser;
  if (user.impersonateUid) headers['Impersonate-Uid'] = user.impersonateUid;
  if (user.impersonateGroups) headers['Impersonate-Group'] = [...user.impersonateGroups];
  for (const [key, values] of Object.entries(user.impersonateExtra ?? {}))
    headers[`Impersonate-Extra-${escapeHeaderKey(key)}`] = [...values];
  return headers;
}

/** RFC 7230 token characters but `%`: what client-go leaves as is in an extra's key. */
const HEADER_KEY_BYTE = /^[A-Za-z0-9!#$&'*+.^_`|~-]$/;

/**
 * As client-go: an extra's key (`example.com/scopes`) percent-encoded byte by byte where a
 * header name may not hold it; the API server decodes it.
 */
export function escapeHeaderKey(key: string): string {
  let escaped = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    const char = String.fromCharCode(byte);
    escaped += HEADER_KEY_BYTE.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}

/** An auth provider other than the in-cluster token file, which is read here. */
function usesAuthProvider(user: KubeUser): boolean {
  const provider = user.authProvider as { config?: { tokenFile?: string } } | null | undefined;
  return provider !== undefined && provider !== null && !provider.config?.tokenFile;
}

function absolute(dir: string, file: string | undefined): string | undefined {
  return file && !path.isAbsolute(file) ? path.join(dir, file) : file;
}

const EXEC_EXTENSION = 'client.authentication.k8s.io/exec';

function execExtensions(clusters: unknown): Map<string, unknown> {
  const found = new Map<string, unknown>();
  if (!Array.isArray(clusters)) return found;
  for (const entry of clusters as { name?: unknown; cluster?: { extensions?: unknown } }[]) {
    const extensions = entry?.cluster?.extensions;
    if (typeof entry?.name !== 'string' || !Array.isArray(extensions)) continue;
    const exec = (extensions as { name?: unknown; extension?: unknown }[]).find(
      (extension) => extension?.name === EXEC_EXTENSION,
    );
    if (exec) found.set(entry.name, exec.extension);
  }
  return found;
}

/** As kubectl: a command with a slash in it is relative to its kubeconfig, a bare name is looked up on PATH. */
function execRelativeTo(dir: string, exec: ExecConfig | null | undefined): ExecConfig | undefined {
  if (!exec) return undefined;
  const { command } = exec;
  if (typeof command !== 'string' || !command.includes('/') || path.isAbsolute(command)) return exec;
  return { ...exec, command: path.join(dir, command) };
}

/**
 * Inline data before the file when both are set, as kubectl (client-go: "CAData takes
 * precedence over CAFile") and unlike client-node: a kubeconfig that works with kubectl must
 * not fail here on a stale file it also names.
 */
function fileOrBase64(file: string | undefined, data: string | undefined): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(file);
  return undefined;
}
