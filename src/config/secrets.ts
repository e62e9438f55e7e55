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
  apiTokens: string[];
}

export function readSecrets(env: Env = process.env): Secrets {
  return {
    githubWebhookSecrets: readList('GITHUB_WEBHOOK_SECRET', env),
    gitlabWebhookTokens: readList('GITLAB_WEBHOOK_TOKEN', env),
    gitlabSigningTokens: readSigningTokens(env),
    gitToken: readList('GIT_TOKEN', env)[0],
    githubToken: readList('GITHUB_TOKEN', env)[0],
    gitlabToken: readList('GITLAB_TOKEN', env)[0],
    apiTokens: readList('PUSHGATE_API_TOKEN', env),
  };
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
