import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runStart(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate start is not implemented yet'));
}
