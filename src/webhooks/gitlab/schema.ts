import { z } from 'zod';

/**
 * The part of GitLab's Push Hook payload pushgate reads. `project.path_with_namespace` names
 * the repository; the URLs in `project` and `repository` are never used.
 */
export const gitlabPushSchema = z.object({
  object_kind: z.string().optional(),
  ref: z.string().min(1),
  before: z.string().optional(),
  after: z.string().min(1),
  user_username: z.string().nullish(),
  user_name: z.string().nullish(),
  project: z.object({ path_with_namespace: z.string().min(1) }),
});
export type GitlabPush = z.infer<typeof gitlabPushSchema>;
