import { readFileSync } from 'node:fs';
import { ConfigError } from '../lib/errors.js';
import type { Env } from './load.js';
import { readVariable } from './variable.js';

/**
 * Every variable pushgate reads a secret from, each also as NAME_FILE. Programs pushgate runs
 * that have no use for them (credential plugins) get the environment without these.
 */
export const SECRET_VARIABLES = [
  'GITHUB_WEBHOOK_SECRET',
  'GITLAB_WEBHOOK_TOKEN',
  'GITLAB_WEBHOOK_SIGNING_TOKEN',
  'GIT_TOKEN',
  'GITHUB_TOKEN',
  'GITLAB_TOKEN',
  'PUSHGATE_API_TOKEN',
  'PUSHGATE_METRICS_TOKEN',
] as const;

type SecretVariable = (typeof SECRET_VARIABLES)[number];

/** Secrets never live in the config file: each comes from NAME or from the file NAME_FILE points at. */
export interface Secrets {
  githubWebhookSecrets: string[];
  gitlabWebhookTokens: string[];
  gitlabSigningTokens: string[];
  gitToken: string | undefined;
  githubToken: string | undefined;
  gitlabToken: string | undefined;
  /** GITHUB_TOKEN_FILE when the token came from it: read again at each use (rotated tokens). */
  githubTokenFile?: string | undefined;
  gitlabTokenFile?: string | undefined;
  apiTokens: string[];
  /** Tokens that open `/metrics` only: a Prometheus scrape needs no token that can suspend or sync. */
  metricsTokens?: string[];
  /**
   * NAME_FILE of each secret whose file holds nothing, by NAME: a warning that the secret is
   * missing names the file, not NAME, which its reader has not set.
   */
  emptyFiles?: Partial<Record<SecretVariable, string>>;
}

export function readSecrets(env: Env = process.env): Secrets {
  return {
    githubWebhookSecrets: readList('GITHUB_WEBHOOK_SECRET', env),
    gitlabWebhookTokens: readList('GITLAB_WEBHOOK_TOKEN', env),
    gitlabSigningTokens: readSigningTokens(env),
    gitToken: readList('GIT_TOKEN', env)[0],
    githubToken: readList('GITHUB_TOKEN', env)[0],
    gitlabToken: readList('GITLAB_TOKEN', env)[0],
    githubTokenFile: env.GITHUB_TOKEN_FILE || undefined,
    gitlabTokenFile: env.GITLAB_TOKEN_FILE || undefined,
    apiTokens: readBearerTokens('PUSHGATE_API_TOKEN', 'the status API', env),
    metricsTokens: readBearerTokens('PUSHGATE_METRICS_TOKEN', '/metrics', env),
    emptyFiles: emptySecretFiles(env),
  };
}

function emptySecretFiles(env: Env): Partial<Record<SecretVariable, string>> {
  const files: Partial<Record<SecretVariable, string>> = {};
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file && readList(name, env).length === 0) files[name] = file;
  }
  return files;
}

/** Why a secret has no value, for warnings: `NAME is not set`, or `NAME_FILE: path is empty`. */
export function unsetSecret(name: SecretVariable, secrets: Pick<Secrets, 'emptyFiles'>): string {
  const file = secrets.emptyFiles?.[name];
  return file === undefined ? `${name} is not set` : `${name}_FILE: ${file} is empty`;
}

/**
 * The current value of a provider token, or undefined when neither the token nor its file is
 * set. A token from a file is read again at each use, so a token a sidecar rotates (GitHub App
 * installation tokens live an hour) is picked up without a restart; a file that cannot be read
 * meanwhile keeps the last value. A file still empty (the sidecar has not written it yet) fails
 * the send, naming the file, and the status is retried as after a network error.
 */
export function tokenReader(
  variable: 'GITHUB_TOKEN' | 'GITLAB_TOKEN',
  token: string | undefined,
  file: string | undefined,
): (() => string) | undefined {
  if (!file) return token ? () => token : undefined;
  let last = token;
  return () => {
    try {
      const fresh = firstEntry(readFileSync(file, 'utf8').replace(/\r?\n$/, ''));
      if (fresh) last = fresh;
    } catch {
      // Mid-rotation (the file replaced) or gone: the last token read is the best there is.
    }
    if (!last) throw new Error(`${variable}_FILE: ${file} holds no token yet`);
    return last;
  };
}

function firstEntry(text: string): string | undefined {
  return text
    .split(',')
    .map((part) => part.trim())
    .find((part) => part !== '');
}

/** A comma-separated list allows rotation: the new and the old secret are both accepted. */
function readList(name: SecretVariable, env: Env): string[] {
  const text = readVariable(name, env);
  if (!text) return [];
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/**
 * Bearer tokens (the status API's, or `/metrics`' own). Set to nothing (an empty value or
 * file, or only commas: a Secret made from a shell variable that was not set, say) is refused
 * rather than read as unset: that would leave what they guard open to anyone, which only an
 * unset variable may ask for.
 */
function readBearerTokens(
  name: 'PUSHGATE_API_TOKEN' | 'PUSHGATE_METRICS_TOKEN',
  guards: string,
  env: Env,
): string[] {
  const tokens = readList(name, env);
  if (tokens.length === 0 && (env[name] !== undefined || env[`${name}_FILE`])) {
    const from = env[`${name}_FILE`] ? `${name}_FILE` : name;
    throw new ConfigError(
      `${from} is set but holds no token, which would leave ${guards} open: give it a token, or unset it${name === 'PUSHGATE_API_TOKEN' ? ' to run the API without one' : ''}`,
    );
  }
  // `Authorization: Bearer <token>` carries no whitespace: such a token could never match,
  // and every client would get a 401 that no fix on their side can end.
  const spaced = tokens.findIndex((token) => /\s/.test(token));
  if (spaced >= 0) {
    const from = env[`${name}_FILE`] ? `${name}_FILE` : name;
    throw new ConfigError(
      `${from}: entry ${spaced + 1} of ${tokens.length} holds whitespace, which an Authorization: Bearer header cannot carry: give tokens without spaces (several are comma-separated)`,
    );
  }
  return tokens;
}

const SIGNING_TOKEN = /^(?:whsec_)?[A-Za-z0-9+/]+={0,2}$/;

/**
 * Standard Webhooks signing tokens (`whsec_<base64>`, as GitLab shows them). One that is not
 * base64 would decode to another key and every signed delivery would be refused as a
 * mismatch, so it is refused at start instead, naming its place in the list, not its value.
 */
function readSigningTokens(env: Env): string[] {
  const name = 'GITLAB_WEBHOOK_SIGNING_TOKEN';
  const tokens = readList(name, env);
  tokens.forEach((token, index) => {
    if (!SIGNING_TOKEN.test(token)) {
      throw new ConfigError(
        `${name}: entry ${index + 1} of ${tokens.length} is not a signing token: expected whsec_ followed by base64, as GitLab shows it`,
      );
    }
  });
  return tokens;
}
