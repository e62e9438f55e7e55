import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';

export function runRender(_args: CommandArgs): Promise<number> {
  return Promise.reject(new UsageError('pushgate render is not implemented yet'));
}
