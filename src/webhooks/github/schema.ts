import { z } from 'zod';

/**
 * The part of GitHub's `push` payload pushgate reads. Everything else (clone URLs included)
 * is ignored: the repository to clone comes from the configuration only.
 */
export const githubPushSchema = z.object({
  ref: z.string().min(1),
  before: z.string().optional(),
  after: z.string().min(1),
  deleted: z.boolean().optional(),
  repository: z.object({ full_name: z.string().min(1) }),
  pusher: z.object({ name: z.string().optional() }).nullish(),
  sender: z.object({ login: z.string().optional() }).nullish(),
});
export type GithubPush = z.infer<typeof githubPushSchema>;
