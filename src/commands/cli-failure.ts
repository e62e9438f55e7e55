import { readFileSync } from 'node:fs';
import { SECRET_VARIABLES } from '../config/secrets.js';
import type { Env } from '../config/load.js';
import { redactSecret } from '../git/redact.js';
import { KubeApiError } from '../kube/api-error.js';
import { embeddedRedisDir, readEmbeddedRedisUrl } from '../lib/embedded-redis-url-file.js';
import { errorMessage, PushgateError, type ErrorCode } from '../lib/errors.js';
import { CENSOR } from '../lib/redact-secrets.js';

/**
 * What a failed command says to a script that asked for `--json`, as `{"error": {"code",
 * "message"}}`: one of these codes, kept stable across versions (README, "Errors with
 * --json"). A new failure maps onto one of them (`failed` at worst) rather than adding a code
 * scripts do not know.
 */
export const CLI_ERROR_CODES = [
  /** Bad usage: an unknown command or option, an option given twice or not taken, a bad value. Exit 2. */
  'usage',
  /** The configuration cannot be loaded, or names no Redis the command can use. Exit 2. */
  'config_invalid',
  /** ENV, or a name --environment gives, is not in the configuration. Exit 2. */
  'environment_not_found',
  /** status JOB_ID: no such job; --wait: the job's record is gone. Exit 1. */
  'job_not_found',
  /** Redis (or, for diff, the cluster's API server) cannot be reached or used. Exit 1. */
  'unavailable',
  /** sync: the environment is suspended (pushgate resume ENV deploys it). Exit 1. */
  'suspended',
  /** --wait: the job followed (or the deploy that took its place) failed. Exit 1. */
  'deploy_failed',
  /** --wait: the job had not finished within --timeout; it goes on. Exit 1. */
  'timeout',
  /** --wait stopped by SIGINT or SIGTERM; the job goes on. Exit 130 or 143. */
  'interrupted',
  /** diff: the commit would be refused before its first write (manifests, policy, dry-run). Exit 1. */
  'commit_rejected',
  /** diff: the environment's repository could not be fetched or read. Exit 1. */
  'git_failed',
  /** Anything else the command could not do: the message says what. Exit 1. */
  'failed',
] as const;

export type CliErrorCode = (typeof CLI_ERROR_CODES)[number];

/**
 * A failure a command reports itself (an unknown environment, a refused sync, the end of a
 * --wait), with the code and exit code the CLI answers with.
 */
export class CliFailure extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: number;
  /** Already told on stdout as a command prints it without --json (a failed job's state line). */
  readonly shown: boolean;

  constructor(code: CliErrorCode, message: string, options: { exitCode?: number; shown?: boolean } = {}) {
    super(message);
    this.name = 'CliFailure';
    this.code = code;
    this.exitCode = options.exitCode ?? 1;
    this.shown = options.shown ?? false;
  }
}

/** What the CLI says of a failure: its code, its message and the exit code (SPEC §1). */
export interface CliError {
  code: CliErrorCode;
  message: string;
  exitCode: number;
  /** Printed already without --json: nothing more to say on stderr then. */
  shown: boolean;
}

const FROM_ERROR_CODE: Partial<Record<ErrorCode, CliErrorCode>> = {
  usage: 'usage',
  config_invalid: 'config_invalid',
  unavailable: 'unavailable',
  transient: 'unavailable',
  git_failed: 'git_failed',
  manifest_invalid: 'commit_rejected',
  policy_violation: 'commit_rejected',
  apply_rejected: 'commit_rejected',
  // Only a followed job's record goes missing in a client command.
  not_found: 'job_not_found',
};

const EXIT_BAD_USAGE = new Set<CliErrorCode>(['usage', 'config_invalid', 'environment_not_found']);

export function cliErrorOf(error: unknown): CliError {
  const message = errorMessage(error);
  if (error instanceof CliFailure)
    return { code: error.code, message, exitCode: error.exitCode, shown: error.shown };
  let code: CliErrorCode = 'failed';
  if (error instanceof PushgateError) code = FROM_ERROR_CODE[error.code] ?? 'failed';
  // No answer, an overloaded or failing API server: diff can be run again as it is.
  else if (error instanceof KubeApiError && (error.status === undefined || error.transient))
    code = 'unavailable';
  return { code, message, exitCode: EXIT_BAD_USAGE.has(code) ? 2 : 1, shown: false };
}

/**
 * `scheme://user:password@`: the password, up to the last `@` before the host (a password may
 * hold `@`), never a `[user:password@]` usage pattern.
 */
const URL_PASSWORD =
  /\b([a-z][a-z0-9+.-]*:\/\/[^\s/@'"[\]:]*):([^\s/'"[\]]+)@(?=[^\s/@'"[\]]*(?:[\s/'"]|$))/gi;
/** `scheme://user@` whose user name is long enough to be a token (GitHub takes one there alone). */
const URL_TOKEN_USER = /\b([a-z][a-z0-9+.-]*:\/\/)([A-Za-z0-9_-]{16,})@/gi;
/** A placeholder in a hint (`redis://:PASSWORD@host:port`), not a password. */
const PLACEHOLDER = /^(?:PASSWORD|TOKEN|SECRET|USER)$/;

/**
 * The message without any secret pushgate was given: the value of each secret variable and the
 * password of the Redis URL (REDIS_URL, or the file of a pushgate start here), should a message
 * quote one, and the password of any URL in it. Messages are written not to, but a script's
 * log of a JSON error is no place to find out.
 */
export function withoutSecrets(message: string, env: Env): string {
  let text = message
    .replace(URL_PASSWORD, (whole, before: string, password: string) =>
      PLACEHOLDER.test(password) ? whole : `${before}:${CENSOR}@`,
    )
    .replace(URL_TOKEN_USER, (whole, scheme: string, user: string) =>
      PLACEHOLDER.test(user) ? whole : `${scheme}${CENSOR}@`,
    );
  for (const secret of [...knownSecrets(env)].sort((a, b) => b.length - a.length))
    text = redactSecret(text, secret);
  return text;
}

/** Shorter values are too likely to be a word of the message itself. */
const SHORTEST_SECRET = 4;

function knownSecrets(env: Env): Set<string> {
  const found = new Set<string>();
  const add = (value: string | undefined): void => {
    if (value && value.length >= SHORTEST_SECRET) found.add(value);
  };
  for (const name of SECRET_VARIABLES) {
    for (const value of (env[name] ?? '').split(',')) add(value.trim());
    // Each file on its own: one that cannot be read (or a bad value elsewhere) hides no other.
    const file = env[`${name}_FILE`];
    if (!file) continue;
    try {
      for (const value of readFileSync(file, 'utf8').split(',')) add(value.trim());
    } catch {
      // A secret file that cannot be read holds nothing a message could quote.
    }
  }
  const redisUrls = [env.REDIS_URL];
  const readUrl = (read: () => string | undefined): void => {
    try {
      redisUrls.push(read());
    } catch {
      // As above.
    }
  };
  readUrl(() => (env.REDIS_URL_FILE ? readFileSync(env.REDIS_URL_FILE, 'utf8').trim() : undefined));
  readUrl(() => readEmbeddedRedisUrl(embeddedRedisDir()));
  for (const url of redisUrls) {
    if (!url) continue;
    try {
      const password = decodeURIComponent(new URL(url).password);
      add(password);
      add(encodeURIComponent(password));
    } catch {
      // Not a URL: nothing to take from it.
    }
  }
  return found;
}

/**
 * The one line a failure prints with --json. On stderr, as kubectl -o json, gh --json and
 * argocd -o json print their errors: stdout carries only what was asked for, so `pushgate
 * status --json | jq .environments` never reads an error as data and a failure leaves stdout
 * as the command's documented output (sync --wait's job lines included); the exit code says it
 * failed, and this line, the last on stderr, says why in a form a script can read.
 */
export function jsonErrorLine(error: Pick<CliError, 'code' | 'message'>): string {
  return `${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`;
}

/**
 * For `.catch` on waitForRedis: why Redis cannot be used, as `unavailable`. A Redis in the
 * other mode than redis.cluster says stays what it is, a configuration error.
 */
export function redisUnavailable(error: unknown): never {
  if (error instanceof PushgateError) throw error;
  throw new PushgateError('unavailable', errorMessage(error), { cause: error });
}
