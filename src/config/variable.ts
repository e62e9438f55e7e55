import { readFileSync } from 'node:fs';
import { ConfigError } from '../lib/errors.js';
import type { Env } from './load.js';

/**
 * The value of the environment variable NAME, else the content of the file NAME_FILE names
 * (Docker and Kubernetes secrets mounted as files) less one trailing newline, else undefined.
 * An empty NAME counts as not set. NAME and NAME_FILE both set is refused rather than one
 * quietly winning: whoever set the other meant it to be used. Messages name the variables and
 * the path, never the content.
 */
export function readVariable(name: string, env: Env): string | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  const hasDirect = direct !== undefined && direct !== '';
  if (!file) return hasDirect ? direct : undefined;
  if (hasDirect) throw new ConfigError(`${name} and ${name}_FILE are both set: set only one of them`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: error },
    );
  }
  // `echo secret > file` and editors add one; a value that really ends in a newline keeps the rest.
  return text.replace(/\r?\n$/, '');
}

/** Why readVariable found nothing, for a warning: the empty file, when NAME_FILE names one. */
export function unsetVariable(name: string, env: Env): string {
  const file = env[`${name}_FILE`];
  return file ? `${name}_FILE: ${file} is empty` : `${name} is not set`;
}
