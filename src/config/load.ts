import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { ConfigError, errorMessage } from '../lib/errors.js';
import { configSchema, REDIS_CLUSTER_NEEDS_URL, redisSchema, type Config } from './schema.js';
import { readVariable } from './variable.js';

export const DEFAULT_CONFIG_PATH = 'config/pushgate.yaml';

export type Env = Record<string, string | undefined>;

/**
 * `--config F`, else `$PUSHGATE_CONFIG`, else `config/pushgate.yaml`. An empty PUSHGATE_CONFIG
 * (`PUSHGATE_CONFIG=` in a compose file or a unit) counts as unset, as an empty PORT does.
 */
export function resolveConfigPath(flag: string | undefined, env: Env = process.env): string {
  return flag ?? (env.PUSHGATE_CONFIG || DEFAULT_CONFIG_PATH);
}

export interface LoadOptions {
  /**
   * Fields (as `redis.url`) that count as not set when they are one `${VAR}` and it is missing,
   * rather than failing the load: SPEC §2's `url: ${REDIS_URL}` is optional in `pushgate start`.
   */
  unsetWhenVariableMissing?: readonly string[];
  /** Told of each such field left unset, and of the variable it names (for warnings that name it). */
  onUnset?: (path: string, variable: string) => void;
  /**
   * The command never connects to Redis (check, render, diff): `redis.cluster` with a
   * `redis.url` left unset by its missing variable is the receiver's configuration read where
   * its secrets are not, not a cluster without a node.
   */
  redisUnused?: boolean;
}

export function loadConfig(file: string, env: Env = process.env, options: LoadOptions = {}): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${file}: cannot read the configuration file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        cause: error,
      },
    );
  }
  return parseConfigText(text, file, env, options);
}

export function parseConfigText(
  text: string,
  file: string,
  env: Env = process.env,
  options: LoadOptions = {},
): Config {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    // linePos is only filled in with prettyErrors, whose message repeats the source; count lines instead.
    const line = lineCounter.linePos(first.pos[0]).line;
    throw new ConfigError(`${file}${line ? `:${line}` : ''}: invalid YAML: ${first.message.split('\n')[0]}`);
  }
  let raw: unknown;
  try {
    raw = document.toJS({ maxAliasCount: 50 }) ?? {};
  } catch (error) {
    // yaml throws on an alias bomb only here, after parsing: still a bad file (exit 2), not a crash.
    throw new ConfigError(`${file}: invalid YAML: ${errorMessage(error)}`, { cause: error });
  }
  const unsetPaths = new Set<string>();
  const unset = {
    paths: new Set(options.unsetWhenVariableMissing),
    notify: (path: string, variable: string) => {
      unsetPaths.add(path);
      options.onUnset?.(path, variable);
    },
  };
  const expanded = expandVariables(raw, [], file, env, unset);
  if (!isMapping(expanded)) {
    throw new ConfigError(`${file}: the configuration must be a YAML mapping`);
  }
  const port = env.PORT;
  if (port !== undefined && port !== '') {
    if (!/^\d+$/.test(port) || Number(port) > 65535)
      throw new ConfigError(`${file}: server.port: PORT="${port}" is not a port number (0 to 65535)`);
    // A `server` that is not a mapping is left for the schema to name.
    if (expanded.server === undefined) expanded.server = { port: Number(port) };
    else if (isMapping(expanded.server)) expanded.server.port = Number(port);
  }
  // As PORT for the port: a file that does not set the URL at all takes REDIS_URL (SPEC §1's
  // "with no REDIS_URL" means the variable, whatever the file).
  const redisUrl = isMapping(raw) && isMapping(raw.redis) ? raw.redis.url : undefined;
  if (redisUrl === undefined && (expanded.redis === undefined || isMapping(expanded.redis))) {
    const fromEnv = readVariableAt(`${file}: redis.url`, 'REDIS_URL', env);
    if (fromEnv) expanded.redis = { ...expanded.redis, url: fromEnv };
  }
  const result = configSchema.safeParse(expanded);
  const clusterWithoutUrl = (redis: { url?: string | undefined; cluster: boolean } | undefined) =>
    redis?.cluster === true &&
    !redis.url &&
    !(options.redisUnused && unsetPaths.has('redis.url')) &&
    `${file}: redis.cluster: ${REDIS_CLUSTER_NEEDS_URL}`;
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${file}: ${formatIssue(issue)}`);
    const redis = redisSchema.safeParse(expanded.redis ?? {});
    const cluster = redis.success && clusterWithoutUrl(redis.data);
    throw new ConfigError([...problems, ...(cluster ? [cluster] : [])].join('\n'));
  }
  const cluster = clusterWithoutUrl(result.data.redis);
  if (cluster) throw new ConfigError(cluster);
  return result.data;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readVariableAt(where: string, name: string, env: Env): string | undefined {
  try {
    return readVariable(name, env);
  } catch (error) {
    throw new ConfigError(`${where}: ${errorMessage(error)}`, { cause: error });
  }
}

export function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text === '' ? part : `${text}.${part}`),
    '',
  );
}

function formatIssue(issue: ZodIssue): string {
  const where = formatPath(issue.path) || '(top level)';
  if (issue.code === 'unrecognized_keys')
    return `${where}: unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return `${where}: ${issue.message}`;
}

interface UnsetWhenMissing {
  paths: ReadonlySet<string>;
  notify: LoadOptions['onUnset'];
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` (and `${VAR:-default}`) inside string values only, after parsing, so a
 * variable's content can never change the YAML structure. An unset VAR is read from the file
 * `VAR_FILE` names, as secrets are: `REDIS_URL` holds a password too.
 */
function expandVariables(
  value: unknown,
  path: (string | number)[],
  file: string,
  env: Env,
  unsetWhenMissing: UnsetWhenMissing,
): unknown {
  if (typeof value === 'string') {
    let missing = false;
    const expanded = value.replace(
      VARIABLE,
      (match: string, name: string, hasDefault: string | undefined, fallback: string | undefined) => {
        const where = `${file}: ${formatPath(path) || '(top level)'}`;
        let found: string | undefined;
        try {
          found = readVariable(name, env);
        } catch (error) {
          throw new ConfigError(`${where}: ${errorMessage(error)}`, { cause: error });
        }
        if (found !== undefined && found !== '') return found;
        if (hasDefault !== undefined) {
          // `url: ${REDIS_URL:-}`: not set either, and the variable is the one to name.
          if (!fallback && match === value && unsetWhenMissing.paths.has(formatPath(path)))
            unsetWhenMissing.notify?.(formatPath(path), name);
          return fallback ?? '';
        }
        // Only a field that is the variable alone: in `redis://:${PASSWORD}@redis:6379` a lost
        // password is a broken URL, not a request for pushgate start's private redis-server.
        if (match === value && unsetWhenMissing.paths.has(formatPath(path))) {
          missing = true;
          unsetWhenMissing.notify?.(formatPath(path), name);
          return '';
        }
        const emptyFile = env[`${name}_FILE`];
        if (emptyFile) throw new ConfigError(`${where}: ${name}_FILE: ${emptyFile} is empty`);
        throw new ConfigError(`${where}: environment variable ${name} is not set`);
      },
    );
    // Emptied whole, so the mapping below drops the field as not set.
    return missing ? '' : expanded;
  }
  if (Array.isArray(value))
    return value.map((item, index) => expandVariables(item, [...path, index], file, env, unsetWhenMissing));
  if (typeof value === 'object' && value !== null) {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const expanded = expandVariables(item, [...path, key], file, env, unsetWhenMissing);
      // An optional field set to an empty variable (`url: ${REDIS_URL:-}`) means "not set";
      // an empty string written as such stays, so the schema can say what is wrong with it.
      const emptiedByVariable = expanded === '' && typeof item === 'string' && item !== '';
      if (!emptiedByVariable) result[key] = expanded;
    }
    return result;
  }
  return value;
}
