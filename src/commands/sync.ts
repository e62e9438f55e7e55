import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runSync(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate sync is not implemented yet'));
}
