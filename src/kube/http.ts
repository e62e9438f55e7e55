import http from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import { errorMessage } from '../lib/errors.js';
import { apiError, KubeApiError } from './api-error.js';
import { ExecCredentialSource, type ExecCredential } from './exec-credential.js';
import type { KubeAccess } from './kubeconfig.js';
import {
  parseRetryAfter,
  sendThrottled,
  THROTTLE_RETRY,
  type ThrottledWait,
  type ThrottleRetryOptions,
} from './throttle-retry.js';

export interface KubeRequest {
  method: 'GET' | 'PATCH' | 'DELETE' | 'POST' | 'PUT';
  /** Absolute API path, e.g. `/api/v1/namespaces/apps/configmaps/web`. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /**
   * Told of each wait for Retry-After before it starts. The transport serves every job of
   * its cluster, so it logs nothing itself: the job that sent the request does, on its own
   * log lines (jobId, environment). See ThrottleLog.
   */
  onThrottled?: (wait: ThrottledWait) => void;
}

/** What travels with a request besides the request itself, for whoever asks on a job's behalf. */
export type RequestOptions = Pick<KubeRequest, 'signal' | 'onThrottled'>;

export interface KubeResponse<T> {
  status: number;
  body: T;
}

interface Credentials {
  /** Arrays are sent as one header line each (Impersonate-Group). */
  headers: Record<string, string | string[]>;
  expiresAt: number;
  /** The exec plugin's credential in `headers` or the agent, to name when it is refused. */
  exec: ExecCredential | undefined;
}

/**
 * Tokens from exec plugins and projected service-account files rotate, and so do kubeconfigs
 * mounted from Secrets; re-read them this often (and after a 401).
 */
const CREDENTIAL_TTL_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Enough sockets for the engine's parallelism, few enough not to swamp an API server. */
const MAX_SOCKETS = 64;

/**
 * Raw HTTPS to the API server through the KubeAccess's TLS material and credentials.
 *
 * Why not client-node's generated APIs: they build a new TLS agent per request (no
 * keep-alive: a handshake per call would dominate a 1,000-object apply) and deserialize
 * into typed models (Dates, dropped unknown fields) that would spoil the byte-for-byte
 * comparison of live and dry-run objects. One keep-alive agent per cluster serves all.
 */
export class KubeTransport {
  /** The kubeconfig's `server`, as base and where: a rotated kubeconfig may move it. */
  private server: string;
  private base: URL;
  /** Who did not answer, for network errors: `cluster prod (https://10.0.0.1:6443)`. */
  private where: string;
  private agent: http.Agent | undefined;
  private credentials: Promise<Credentials> | undefined;
  private readonly throttle: ThrottleRetryOptions;
  private readonly credentialTtlMs: number;

  /** `clusterName`: the configured cluster's name, which network errors carry. */
  constructor(
    private readonly kubeConfig: KubeAccess,
    private readonly clusterName?: string,
    options: { throttle?: Partial<ThrottleRetryOptions>; credentialTtlMs?: number } = {},
  ) {
    this.throttle = { ...THROTTLE_RETRY, ...options.throttle };
    this.credentialTtlMs = options.credentialTtlMs ?? CREDENTIAL_TTL_MS;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error(`kubeconfig context "${kubeConfig.getCurrentContext()}" names no cluster`);
    this.server = cluster.server;
    ({ base: this.base, where: this.where } = serverOf(cluster.server, clusterName));
  }

  private async createAgent(tls: https.AgentOptions): Promise<http.Agent> {
    // From the TLS options as sent, an exec plugin's client certificate included.
    if (this.kubeConfig.getCurrentCluster()?.proxyUrl) return this.kubeConfig.proxyAgent(tls);
    const options = { keepAlive: true, maxSockets: MAX_SOCKETS };
    if (this.base.protocol === 'http:') return new http.Agent(options);
    // TLS material lives in the agent, not in each request: the agent keys its socket pool
    // by the request's TLS options, which would otherwise be re-serialized on every call.
    return new https.Agent({ ...options, ...tls });
  }

  private async loadCredentials(): Promise<Credentials> {
    this.kubeConfig.reloadIfChanged();
    const server = this.kubeConfig.getCurrentCluster()?.server;
    if (server !== undefined && server !== this.server) {
      this.server = server;
      ({ base: this.base, where: this.where } = serverOf(server, this.clusterName));
    }
    const options: https.RequestOptions = {};
    const exec = await this.kubeConfig.applyToHTTPSOptions(options);
    const headers: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(options.headers ?? {})) {
      if (typeof value === 'string' || typeof value === 'number') headers[key] = String(value);
      else if (Array.isArray(value)) headers[key] = value.map(String);
    }
    if (options.auth) headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
    const tls: https.AgentOptions = {
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      servername: options.servername,
    };
    if (options.rejectUnauthorized !== undefined) tls.rejectUnauthorized = options.rejectUnauthorized;
    const fingerprint = JSON.stringify(
      [
        this.base.protocol,
        this.kubeConfig.getCurrentCluster()?.proxyUrl,
        tls.ca,
        tls.cert,
        tls.key,
        tls.servername,
        tls.rejectUnauthorized,
      ].map(String),
    );
    if (!this.agent || fingerprint !== this.tlsFingerprint) {
      const unusable = this.base.protocol === 'https:' ? unusableTls(tls) : undefined;
      // A certificate and key caught mid-rotation (written one after the other, a key that is
      // not the certificate's): the pair in use serves until the new one goes together.
      if (unusable && !this.agent)
        throw new Error(`the client certificate, key or CA cannot be used: ${unusable}`);
      this.tlsProblem = unusable;
      if (!unusable) {
        // Rotated client certificates (exec plugins, files) take effect on new connections.
        const previous = this.agent;
        this.agent = await this.createAgent(tls);
        this.tlsFingerprint = fingerprint;
        // Requests in flight finish on the old connections; idle ones close with it afterwards.
        if (previous) setTimeout(() => previous.destroy(), REQUEST_TIMEOUT_MS).unref();
      }
    }
    // Not past the plugin's own expiry: an expired token would draw a 401 per request.
    const execUntil = exec ? ExecCredentialSource.usableUntil(exec) : undefined;
    const expiresAt = Math.min(Date.now() + this.credentialTtlMs, execUntil ?? Infinity);
    return { headers, expiresAt, exec };
  }

  private tlsFingerprint = '';
  /** Why the TLS material the kubeconfig gives now is not in use: see loadCredentials. */
  private tlsProblem: string | undefined;

  private async currentCredentials(): Promise<Credentials> {
    const cached = this.credentials;
    if (cached) {
      const value = await cached;
      if (value.expiresAt > Date.now()) return value;
    }
    const next = this.loadCredentials();
    this.credentials = next;
    next.catch(() => {
      if (this.credentials === next) this.credentials = undefined;
    });
    return next;
  }

  /** Waits out an API server that sheds load (429 with Retry-After), as client-go does. */
  request<T>(req: KubeRequest): Promise<KubeResponse<T>> {
    return sendThrottled(() => this.requestOnce<T>(req), req, this.throttle);
  }

  private async requestOnce<T>(req: KubeRequest): Promise<KubeResponse<T>> {
    const used = await this.credentialsFor(req);
    try {
      return await this.send<T>(req, used);
    } catch (error) {
      // An expired token (exec plugin, projected service-account file): refresh once and retry.
      if (!(error instanceof KubeApiError) || error.status !== 401) throw error;
      // Unless a request refused before this one has refreshed them already.
      if (this.credentials && (await this.credentials.catch(() => undefined)) === used)
        this.credentials = undefined;
      this.kubeConfig.forgetCredentials(used.exec);
      try {
        return await this.send<T>(req, await this.credentialsFor(req));
      } catch (refused) {
        throw this.withStaleReason(refused);
      }
    }
  }

  /**
   * A 401 with the last good credentials, when the kubeconfig's new ones could not be taken
   * (a file that does not load, a key that is not its certificate's): that is the fix to make.
   */
  private withStaleReason(error: unknown): unknown {
    if (!(error instanceof KubeApiError) || error.status !== 401) return error;
    const reload = this.kubeConfig.reloadProblem;
    const reasons = [
      ...(reload
        ? [`the kubeconfig has changed but does not load, so the last good one was used: ${reload}`]
        : []),
      ...(this.tlsProblem
        ? [
            `the client certificate, key or CA it gives now cannot be used, so the previous ones were: ${this.tlsProblem}`,
          ]
        : []),
    ];
    if (reasons.length === 0) return error;
    return new KubeApiError(`${error.message}; ${reasons.join('; ')}`, {
      status: error.status,
      reason: error.reason,
      cause: error,
    });
  }

  /**
   * Credentials that could not be had (an exec plugin that failed, a token file mid-rotation)
   * say nothing about the request: like a network error, no status, so transient.
   */
  private async credentialsFor(req: KubeRequest): Promise<Credentials> {
    try {
      return await this.currentCredentials();
    } catch (error) {
      throw new KubeApiError(
        `${this.where}: ${req.method} ${req.path}: cannot load the cluster credentials: ${errorMessage(error).trim()}`,
        { cause: error },
      );
    }
  }

  private async send<T>(req: KubeRequest, credentials: Credentials): Promise<KubeResponse<T>> {
    const url = new URL(this.base.href);
    url.pathname = `${this.base.pathname.replace(/\/$/, '')}${req.path}`;
    for (const [key, value] of Object.entries(req.query ?? {})) url.searchParams.set(key, value);
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: Record<string, string | string[]> = { ...credentials.headers, Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = req.contentType ?? 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const module = url.protocol === 'http:' ? http : https;
    const describe = `${req.method} ${req.path}`;
    // No answer at all (refused, reset, TLS, timeout): the request alone does not say which
    // cluster of several is down. Still without a status, so still transient.
    const networkError = (error: Error): KubeApiError =>
      new KubeApiError(`${this.where}: ${describe}: ${error.message}`, { cause: error });

    return new Promise<KubeResponse<T>>((resolve, reject) => {
      const receive = (response: http.IncomingMessage): void => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(networkError(error)));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = text;
          }
          if (status >= 200 && status < 300) {
            resolve({ status, body: body as T });
            return;
          }
          const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
          reject(apiError(status, body, describe, this.where, retryAfterMs));
        });
      };
      let request: http.ClientRequest;
      try {
        request = module.request(
          url,
          { method: req.method, headers, agent: this.agent, signal: req.signal, timeout: REQUEST_TIMEOUT_MS },
          receive,
        );
      } catch (error) {
        // Thrown before anything was sent (TLS material node cannot use, a header value it
        // refuses): the cluster's credentials or kubeconfig, not the object; no status, so transient.
        reject(networkError(error instanceof Error ? error : new Error(String(error))));
        return;
      }
      // A silent server (idle socket) fails the request instead of hanging the deploy.
      request.on('timeout', () =>
        request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000}s`)),
      );
      request.on('error', (error) => reject(networkError(error)));
      request.end(payload);
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}

/** The base URL of `server`, and how errors name it: origin and path, no user:password it might carry. */
function serverOf(server: string, clusterName: string | undefined): { base: URL; where: string } {
  const base = new URL(server);
  const shown = `${base.origin}${base.pathname.replace(/\/$/, '')}`;
  return {
    base,
    where: clusterName === undefined ? `API server ${shown}` : `cluster ${clusterName} (${shown})`,
  };
}

/** Why node cannot make a TLS context of `tls` (a key that is not the certificate's), if it cannot. */
function unusableTls(tls: https.AgentOptions): string | undefined {
  try {
    createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
    return undefined;
  } catch (error) {
    return errorMessage(error);
  }
}
