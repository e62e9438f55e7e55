import { readFileSync } from 'node:fs';
import type { Cluster } from '@kubernetes/client-node';
import type { Env } from '../config/load.js';
import { SECRET_VARIABLES } from '../config/secrets.js';
import { killProcessGroup, spawnProcessGroup } from '../lib/process-group.js';

/** A kubeconfig user's `exec` entry (client.authentication.k8s.io). */
export interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  interactiveMode?: string;
  provideClusterInfo?: boolean;
  /** Shown when the command is not installed, as kubectl does. */
  installHint?: string;
}

/** The cluster a plugin may be told about, with its `client.authentication.k8s.io/exec` extension. */
export interface ExecCluster extends Cluster {
  execExtension?: unknown;
}

/** A plugin that exited with an error, with its whole stderr tail: for the worker's debug log only. */
export interface PluginFailure {
  command: string;
  exitCode: number | null;
  signal: string | null;
  stderr: string;
}

/** What a plugin answers: a bearer token, a client certificate, or both. */
export interface ExecCredential {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  /** Epoch ms; undefined when the plugin gave none (kept until the API server refuses it). */
  expiresAt?: number;
}

const API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
/** A plugin that hangs (a login prompt nobody answers) must not hang every deploy. */
const PLUGIN_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Kept for the debug log only: see failureHint for what the error may carry. */
const STDERR_TAIL_CHARS = 1000;
const HINT_MAX_CHARS = 120;
/** Renewed this long before the plugin's expiry, so no request leaves with a token about to lapse. */
const EXPIRY_MARGIN_MS = 10_000;

/**
 * Runs exec credential plugins (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`) as
 * kubectl does, with one difference: the plugin gets the worker's environment without
 * pushgate's own secrets (webhook secrets, git and API tokens, the Redis URL with its
 * password), which no credential plugin needs and which a third-party binary should not see.
 * A plugin that needs one of those names it in its kubeconfig `env` list.
 */
export class ExecCredentialSource {
  private cached: ExecCredential | undefined;
  private running: Promise<ExecCredential> | undefined;

  constructor(
    private readonly exec: ExecConfig,
    private readonly cluster: ExecCluster | null,
    private readonly env: Env,
    private readonly timeoutMs = PLUGIN_TIMEOUT_MS,
    private readonly onFailure?: (failure: PluginFailure) => void,
  ) {}

  /** The plugin's credential, run again once it has expired or was forgotten; one run at a time. */
  get(now = Date.now()): Promise<ExecCredential> {
    const cached = this.cached;
    const until = cached && ExecCredentialSource.usableUntil(cached);
    if (cached && (until === undefined || until > now)) return Promise.resolve(cached);
    this.running ??= runPlugin(this.exec, this.cluster, this.env, this.timeoutMs, this.onFailure)
      .then((credential) => {
        this.cached = credential;
        return credential;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /**
   * After the API server refused `used`: the next `get` runs the plugin again, unless the
   * plugin has handed out a newer credential meanwhile (a late 401 must not drop a fresh one).
   */
  forget(used?: ExecCredential): void {
    if (used === undefined || used === this.cached) this.cached = undefined;
  }

  /** When a request should stop using `credential`: a little before the plugin said it expires. */
  static usableUntil(credential: ExecCredential): number | undefined {
    return credential.expiresAt === undefined ? undefined : credential.expiresAt - EXPIRY_MARGIN_MS;
  }
}

function describe(exec: ExecConfig): string {
  return `exec credential plugin "${exec.command}"`;
}

/** The environment a plugin runs with: pushgate's, less its secrets, plus the kubeconfig's `env`. */
export function pluginEnvironment(exec: ExecConfig, cluster: ExecCluster | null, env: Env): Env {
  const withheld = new Set<string>(['REDIS_URL', 'REDIS_URL_FILE']);
  for (const name of SECRET_VARIABLES) withheld.add(name).add(`${name}_FILE`);
  const result: Env = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !withheld.has(name)) result[name] = value;
  }
  for (const entry of exec.env ?? []) result[entry.name] = entry.value;
  result.KUBERNETES_EXEC_INFO = JSON.stringify(execInfo(exec, cluster));
  return result;
}

/** What kubectl tells a plugin in KUBERNETES_EXEC_INFO: never interactive here. */
function execInfo(exec: ExecConfig, cluster: ExecCluster | null): unknown {
  const spec: Record<string, unknown> = { interactive: false };
  if (exec.provideClusterInfo && cluster) {
    spec.cluster = {
      server: cluster.server,
      'tls-server-name': cluster.tlsServerName,
      'insecure-skip-tls-verify': cluster.skipTLSVerify || undefined,
      // As kubectl: a CA file is passed as its content.
      'certificate-authority-data':
        cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined),
      'proxy-url': cluster.proxyUrl,
      config: cluster.execExtension,
    };
  }
  return { apiVersion: exec.apiVersion, kind: 'ExecCredential', spec };
}

function checkConfig(exec: ExecConfig): void {
  if (!exec.command) throw new Error('exec credential plugin: the kubeconfig user has no exec command');
  if (!exec.apiVersion || !API_VERSIONS.includes(exec.apiVersion)) {
    throw new Error(
      `${describe(exec)}: apiVersion "${exec.apiVersion ?? ''}" is not one of ${API_VERSIONS.join(', ')}`,
    );
  }
  if (exec.interactiveMode === 'Always') {
    throw new Error(
      `${describe(exec)}: interactiveMode Always needs a terminal, and pushgate runs unattended; use a plugin mode that needs no prompt`,
    );
  }
}

async function runPlugin(
  exec: ExecConfig,
  cluster: ExecCluster | null,
  env: Env,
  timeoutMs: number,
  onFailure?: (failure: PluginFailure) => void,
): Promise<ExecCredential> {
  checkConfig(exec);
  const stdout = await spawnPlugin(exec, pluginEnvironment(exec, cluster, env), timeoutMs, onFailure);
  return parseCredential(exec, stdout);
}

/**
 * The plugin runs in a process group of its own, killed whole on a timeout: a wrapper script's
 * hung child would otherwise outlive it, hold its pipes open and keep the deploy waiting. The
 * group also ends with the worker, so a plugin waiting on a login nobody completes does not
 * outlive a SIGKILLed one.
 */
function spawnPlugin(
  exec: ExecConfig,
  env: Env,
  timeoutMs: number,
  onFailure?: (failure: PluginFailure) => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnProcessGroup(exec.command, exec.args ?? [], { env });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      return true;
    };
    const fail = (error: Error): void => {
      if (!settle()) return;
      killProcessGroup(child.pid);
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`${describe(exec)} did not answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > MAX_OUTPUT_BYTES) fail(new Error(`${describe(exec)} wrote more than 1 MiB`));
      else out.push(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ENOENT' && exec.installHint ? `\n${exec.installHint.trim()}` : '';
      fail(new Error(`cannot run ${describe(exec)}: ${error.message}${hint}`));
    });
    child.on('close', (code, signal) => {
      if (!settle()) return;
      if (code === 0) {
        resolve(Buffer.concat(out).toString('utf8'));
        return;
      }
      onFailure?.({ command: exec.command, exitCode: code, signal, stderr });
      const status = code === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${code}`;
      reject(new Error(`${describe(exec)} ${status}${failureHint(stderr)}`));
    });
  });
}

/** A line that may carry a value: a shell trace (`set -x`: `+ TOKEN=…`), an assignment, `--flag=…`. */
const MAY_CARRY_VALUE = /^\s*\+|[\w-]=/;
/** A long run of token characters: an opaque value (a token, a key, a JWT) if it mixes letters and digits. */
const LONG_RUN = /[A-Za-z0-9+/_.~-]{20,}={0,2}/g;

/**
 * What the error (the job's record, its commit status, info logs) may say of the plugin's
 * stderr: the last line that is not a shell trace or an assignment, opaque runs cut out,
 * clipped. Plugins print their tokens, refresh tokens included, under `set -x` or a verbose
 * flag; the whole tail goes to the worker's debug log only (onFailure).
 */
export function failureHint(stderr: string): string {
  const line = stderr
    .split('\n')
    .map((candidate) => candidate.trim())
    .filter((candidate) => candidate !== '' && !MAY_CARRY_VALUE.test(candidate))
    .at(-1);
  if (line === undefined) return '';
  // A path (`/var/run/secrets/…/token`) says where to look, so a run of letters alone stays.
  const cut = line.replace(LONG_RUN, (run) => (/\d/.test(run) && /[A-Za-z]/.test(run) ? '…' : run));
  const clipped = cut.length > HINT_MAX_CHARS ? `${cut.slice(0, HINT_MAX_CHARS - 1)}…` : cut;
  return `: ${clipped}`;
}

/** The plugin's answer, checked as kubectl checks it; the message never quotes the credential. */
function parseCredential(exec: ExecConfig, stdout: string): ExecCredential {
  const invalid = (why: string): Error => new Error(`${describe(exec)} answered ${why}`);
  let answer: unknown;
  try {
    answer = JSON.parse(stdout);
  } catch {
    throw invalid('something that is not JSON');
  }
  const object = (answer ?? {}) as { apiVersion?: unknown; kind?: unknown; status?: unknown };
  if (object.kind !== 'ExecCredential') throw invalid(`kind "${String(object.kind)}", not ExecCredential`);
  if (object.apiVersion !== exec.apiVersion) {
    throw invalid(
      `apiVersion "${String(object.apiVersion)}", but its kubeconfig asks for ${exec.apiVersion}`,
    );
  }
  const status = (object.status ?? {}) as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const value = status[key];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const credential: ExecCredential = {
    token: text('token'),
    clientCertificateData: text('clientCertificateData'),
    clientKeyData: text('clientKeyData'),
  };
  if (!credential.clientCertificateData !== !credential.clientKeyData)
    throw invalid('a client certificate without its key, or a key without its certificate');
  if (!credential.token && !credential.clientCertificateData)
    throw invalid('no status.token and no status.clientCertificateData');
  const expiry = text('expirationTimestamp');
  if (expiry !== undefined) {
    const expiresAt = Date.parse(expiry);
    if (Number.isNaN(expiresAt)) throw invalid(`status.expirationTimestamp "${expiry}", not a time`);
    credential.expiresAt = expiresAt;
  }
  return credential;
}
