/**
 * Every key shares one hash tag, `{prefix}`, so that on a Redis Cluster the queue, the job
 * records and the locks live in one slot and multi-key scripts stay valid.
 */
export interface Keys {
  /** BullMQ's own prefix. */
  bullPrefix: string;
  job(id: string): string;
  /** The environment's deploy run a job's latest attempt started, and whether another job's came between two of them. */
  jobDeployRun(id: string): string;
  jobsAll: string;
  jobsByEnvironment(environment: string): string;
  /** The environment's finished re-syncs that changed nothing: history keeps only the newest few. */
  quietResyncs(environment: string): string;
  delivery(provider: string, deliveryId: string, environment: string): string;
  shaJob(environment: string, sha: string): string;
  environment(environment: string): string;
  environmentLock(environment: string): string;
  /** Set when a worker's configuration removed the environment's re-sync scheduler. */
  reconcileRemoved(environment: string): string;
  /** Claimed, for a minute, by the one worker that queues a new scheduler's first re-sync. */
  resyncFirstRunClaim(environment: string): string;
  /** The commit status owed to one commit of one environment: desired and delivered (status-outbox). */
  commitStatus(environment: string, sha: string): string;
  /** Commit statuses due for delivery, scored by the time of their next attempt. */
  commitStatusDue: string;
  /** Held by the one process sending a commit's status, so a commit's statuses go out in order. */
  commitStatusLease(environment: string, sha: string): string;
  /**
   * A key pushgate never writes, inside the hash tag: stands in a script's KEYS for a key a
   * job does not have (no delivery id, no sha), where `''` would name another cluster slot.
   */
  absent: string;
  /** This installation's id, made once: stamped on the inventories its deploys write. */
  installation: string;
  /** When a worker first handed the job back for configuration skew (see config-skew). */
  jobSkewSince(id: string): string;
  /** Set by the one worker that queues the deploy of a changed configuration (see target-change). */
  targetChangeQueued(environment: string, targetDigest: string): string;
  /** The running workers and where their configurations send each environment (worker-presence). */
  workers: string;
  /** When each configuration of the environment was first seen (worker-presence). */
  configSeen(environment: string): string;
  /** When a worker of each configuration of the environment last renewed its entry (worker-presence). */
  configLive(environment: string): string;
  /** Held by the one worker of a configuration that runs this interval's repair pass (queue-repair). */
  repairPass(configuration: string): string;
  /** The re-sync queued behind the environment's running deploy, at most one (job-intake). */
  queuedResync(environment: string): string;
  /**
   * The environment's manual sync that is queued and has not started: the job a new sync is
   * answered with (JobStore.claimMany), taken back once it starts or ends.
   */
  pendingSync(environment: string): string;
  /** Held by the one worker that runs this hour's drop of removed environments' histories. */
  retiredSweep: string;
  /** When a sweep first found that no running worker has the environment (retired-histories). */
  retiredSince(environment: string): string;
}

export function createKeys(prefix: string): Keys {
  const tag = `{${prefix}}`;
  return {
    bullPrefix: tag,
    job: (id) => `${tag}:job:${id}`,
    jobDeployRun: (id) => `${tag}:job-run:${id}`,
    jobsAll: `${tag}:jobs`,
    jobsByEnvironment: (environment) => `${tag}:jobs:env:${environment}`,
    quietResyncs: (environment) => `${tag}:jobs:quiet:${environment}`,
    delivery: (provider, deliveryId, environment) =>
      `${tag}:delivery:${provider}:${environment}:${deliveryId}`,
    shaJob: (environment, sha) => `${tag}:sha:${environment}:${sha}`,
    environment: (environment) => `${tag}:env:${environment}`,
    environmentLock: (environment) => `${tag}:lock:${environment}`,
    reconcileRemoved: (environment) => `${tag}:reconcile-removed:${environment}`,
    resyncFirstRunClaim: (environment) => `${tag}:resync-first-run:${environment}`,
    commitStatus: (environment, sha) => `${tag}:commit-status:${environment}:${sha}`,
    commitStatusDue: `${tag}:commit-status-due`,
    commitStatusLease: (environment, sha) => `${tag}:commit-status-lease:${environment}:${sha}`,
    absent: `${tag}:absent`,
    installation: `${tag}:installation`,
    jobSkewSince: (id) => `${tag}:skew-since:${id}`,
    workers: `${tag}:workers`,
    configSeen: (environment) => `${tag}:config-seen:${environment}`,
    configLive: (environment) => `${tag}:config-live:${environment}`,
    repairPass: (configuration) => `${tag}:repair-pass:${configuration}`,
    queuedResync: (environment) => `${tag}:queued-resync:${environment}`,
    pendingSync: (environment) => `${tag}:pending-sync:${environment}`,
    retiredSweep: `${tag}:retired-sweep`,
    retiredSince: (environment) => `${tag}:retired-since:${environment}`,
    targetChangeQueued: (environment, targetDigest) => `${tag}:target-change:${environment}:${targetDigest}`,
  };
}
