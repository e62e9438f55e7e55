import { ConfigError } from './errors.js';

type Env = Record<string, string | undefined>;

/** Node's timers take at most 2^31-1 ms (about 24.8 days); beyond, they fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A positive whole number from the environment, undefined when unset or empty; anything else
 * is invalid configuration (exit 2) naming the variable, what it holds and what it takes.
 */
function positiveInteger(
  env: Env,
  name: string,
  unit: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    const upTo = max === Number.MAX_SAFE_INTEGER ? '' : ` up to ${max}`;
    throw new ConfigError(`${name}="${raw}" must be a positive integer${unit}${upTo}`);
  }
  return value;
}

export function countFromEnv(env: Env, name: string): number | undefined {
  return positiveInteger(env, name, '');
}

export function millisecondsFromEnv(env: Env, name: string): number | undefined {
  return positiveInteger(env, name, ' of milliseconds', MAX_TIMER_MS);
}

export function bytesFromEnv(env: Env, name: string): number | undefined {
  return positiveInteger(env, name, ' of bytes');
}
