import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runCheck(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate check is not implemented yet'));
}
