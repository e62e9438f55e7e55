import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runServe(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate serve is not implemented yet'));
}
