import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';
import { environmentTargetSchema, type EnvironmentTarget, type Trigger } from '../queue/job-data.js';
import { jobRecordSchema, type JobRecord, type JobState } from './job-record.js';
import { SuspensionStore, suspensionFrom, type Suspension } from './suspensions.js';

/** `commitStatus` of GET /jobs/:id. */
export interface CommitStatusView {
  state: string;
  delivered: boolean;
  error?: string;
}

/** Records kept per environment at most; older finished ones are dropped as jobs finish (see TRIM_SCRIPT). */
export const HISTORY_PER_ENVIRONMENT = 500;
const DELIVERY_TTL_SECONDS = 7 * 24 * 3600;
const SHA_TTL_SECONDS = 30 * 24 * 3600;
/**
 * A pending sync is taken back when it starts or ends; this only bounds a key whose job was
 * lost some other way (a claim never claimed back), which a new sync then replaces anyway.
 */
const PENDING_SYNC_TTL_SECONDS = 7 * 24 * 3600;
/**
 * Marks a job another request was answered with (its record key plus this suffix), so undoing
 * the claim that created it cannot delete a job someone else holds a 202 for. A claim is
 * undone within a second or so of being made; the mark outlives that by far.
 */
const SHARED_SUFFIX = ':shared';
const SHARED_TTL_SECONDS = 3600;
/**
 * The shared mark of a queued job that the deploy ahead of it is finishing (JobStore.sealClaim):
 * a push of its commit from then on gets a job of its own instead of joining one about to end.
 */
const SEALED = 'sealed';

/**
 * deployingSha's value while a deploy has not chosen its commit: never a sha, so no commit is
 * live then (the claim script compares it to one).
 */
const DEPLOY_STARTING = '~starting:';

/**
 * KEYS: environment hash, the job's deploy-run hash. ARGV: this run's mark, that hash's TTL.
 * What the mark replaces is kept aside, unless it is another run's mark (that run died or lost
 * its lock): then what that one replaced stays. Returns 1 when another job's run came between
 * two of this job's (JobStore.recordDeployStarting), else 0.
 */
const START_DEPLOYING_SCRIPT = `
local current = redis.call('HGET', KEYS[1], 'deployingSha')
if not (current and string.sub(current, 1, ${DEPLOY_STARTING.length}) == '${DEPLOY_STARTING}') then
  if current then redis.call('HSET', KEYS[1], 'deployingBefore', current)
  else redis.call('HDEL', KEYS[1], 'deployingBefore') end
end
redis.call('HSET', KEYS[1], 'deployingSha', ARGV[1])
-- Numbered in the same step as the job's own record of its runs: an attempt killed right after
-- cannot leave its run unrecorded, and so look to the next like another job's.
local run = redis.call('HINCRBY', KEYS[1], 'deployRuns', 1)
local previous = redis.call('HGET', KEYS[2], 'run')
if previous and tonumber(previous) + 1 ~= run then redis.call('HSET', KEYS[2], 'afterOther', 1) end
redis.call('HSET', KEYS[2], 'run', run)
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[2], 'afterOther') then return 1 end
return 0
`;
/** Dropped when the job finishes (JobStore.finish); this bounds one whose job ended some other way. */
const JOB_DEPLOY_RUN_TTL_SECONDS = 7 * 24 * 3600;

/** KEYS: environment hash. ARGV: this run's mark. Puts back what the marks replaced. */
const RESTORE_DEPLOYING_SCRIPT = `
if redis.call('HGET', KEYS[1], 'deployingSha') ~= ARGV[1] then return 0 end
local before = redis.call('HGET', KEYS[1], 'deployingBefore')
if before then redis.call('HSET', KEYS[1], 'deployingSha', before)
else redis.call('HDEL', KEYS[1], 'deployingSha') end
return 1
`;

export interface EnvironmentStatus {
  /** The commit of the last successful deploy. */
  lastAppliedSha: string | null;
  lastAppliedAt: string | null;
  lastJobId: string | null;
  /**
   * The namespaces that hold an inventory of the environment, by pushgate's record: its
   * `namespace` and, while a change of that setting is not yet carried out, the one before.
   */
  inventoryNamespaces: string[];
  /**
   * The commit the cluster holds as a whole: `lastAppliedSha`, unless a deploy of another
   * commit has started since (it may have written part or all of that commit, then failed).
   * What "already live" means to the webhook claim and to newest-wins.
   */
  liveSha: string | null;
  /**
   * The commit of the deploy that started last (running, or finished however it ended); null
   * also while a deploy has started and not yet chosen its commit (`deployStarting`).
   */
  deployingSha: string | null;
  /** A deploy has started and not chosen its commit yet (or its worker died meanwhile). */
  deployStarting: boolean;
  /** Set while the environment is suspended (see SuspensionStore). */
  suspended: Suspension | null;
  /**
   * Where the last successful deploy applied `lastAppliedSha` (branch, path, cluster,
   * namespace); null when not known (it was recorded by a version that did not keep it). The
   * commit is live only where it was applied: after a change of the configuration it is not.
   */
  lastAppliedTarget: EnvironmentTarget | null;
}

export interface ClaimRequest {
  id: string;
  environment: string;
  trigger: Trigger;
  receivedAt: string;
  statusUrl?: string;
  /** Webhook jobs: where the receiver's configuration sends the environment (see config-skew). */
  target?: EnvironmentTarget;
  /**
   * Manual syncs: `join` answers with the environment's pending sync (a manual job queued that
   * has never started) when there is one, and otherwise becomes it; `lead` always creates a
   * job, which becomes the pending sync later ones join (a resume: see DeployProducer.enqueue).
   */
  pendingSync?: 'join' | 'lead';
}

export type ClaimOutcome =
  | { id: string; created: true }
  | { id: string; created: false; matchedBy: 'delivery' | 'sha' | 'pendingSync' };

/**
 * Creates the job record unless the same delivery, or the same commit still queued or
 * running (or already live, or failed with nothing queued or deployed since), already has one; or, for a manual sync, unless the environment
 * has a pending sync: a manual job queued that has never started (still `queued`, no attempt
 * made). A manual job deploys the branch head as it fetches it once started, so a sync asked
 * for before that is covered by it, while one asked for once it runs must get a job of its
 * own (the head may have moved since its fetch). Its record is read here, in the script, so a
 * job that a worker has marked `running` (which it does before it fetches) is never joined,
 * whatever becomes of the pending-sync key. One script, so two concurrent deliveries of one
 * push, or two syncs, can never both create a job. It takes any number of claims, decided in
 * order (seven keys and five arguments each), so the webhooks of one event-loop turn share
 * one call's overhead. Every key it touches shares the hash tag, in KEYS[] or not (the
 * matched job's record), and a job without a delivery id, sha or pending sync passes
 * `keys.absent` for it, so the script stays valid on a Redis Cluster.
 */
const CLAIM_SCRIPT = `
local jobPrefix, absent = ARGV[1], ARGV[2]
-- Counts the requests answered with the job: one joining while a deploy fetches the head is
-- seen (JobStore.claimMarks), so the deploy does not finish it on a head older than its push.
-- A sealed mark (JobStore.sealClaim) stays sealed unless told to unseal (the job runs its commit).
local function share(markKey, unseal)
  if not pcall(redis.call, 'INCR', markKey) and unseal then redis.call('SET', markKey, 1) end
  redis.call('EXPIRE', markKey, ${SHARED_TTL_SECONDS})
end
local function claim(deliveryKey, shaKey, envKey, recordKey, allKey, envJobsKey, pendingKey, id, record, score, sha, pendingMode)
  local found = redis.call('MGET', deliveryKey, shaKey)
  local byDelivery, bySha = found[1], found[2]
  if byDelivery and redis.call('EXISTS', jobPrefix .. byDelivery) == 1 then
    share(jobPrefix .. byDelivery .. '${SHARED_SUFFIX}')
    return {byDelivery, 'delivery'}
  end
  if bySha then
    local raw = redis.call('GET', jobPrefix .. bySha)
    -- An unreadable record (written by hand, say) counts as finished: it must not fail the
    -- other claims of the call.
    local ok, rec = pcall(cjson.decode, raw or '')
    if ok and type(rec) == 'table' then
      -- A running job counts only while it deploys this commit: one that moved on to a newer
      -- head (or has not chosen yet) would leave a force-push back to this commit undeployed.
      local active = rec.state == 'queued' or (rec.state == 'running' and rec.sha == sha)
      -- Live: the last success, and no deploy of another commit started since (a failed one
      -- leaves the cluster holding part of it, and a force-push back must deploy again).
      local env = redis.call('HMGET', envKey, 'lastAppliedSha', 'deployingSha')
      local live = env[1] == sha and (not env[2] or env[2] == sha)
      -- Failed on this commit, and nothing since: no deploy of another commit has started and no
      -- job of the environment was queued after it. A late duplicate must not re-run a failed
      -- deploy (a sync or the next re-sync does); a force-push back after a push of another
      -- commit must deploy.
      local failedLast = rec.state == 'failed' and rec.sha == sha and env[2] == sha
        and redis.call('ZREVRANGE', envJobsKey, 0, 0)[1] == bySha
      local markKey = jobPrefix .. bySha .. '${SHARED_SUFFIX}'
      -- Queued, but being finished by the deploy ahead of it on another head: a new job.
      local ending = rec.state == 'queued' and redis.call('GET', markKey) == '${SEALED}'
      if (active or live or failedLast) and not ending then
        if deliveryKey ~= absent then redis.call('SET', deliveryKey, bySha, 'EX', ${DELIVERY_TTL_SECONDS}) end
        share(markKey, true)
        return {bySha, 'sha'}
      end
    end
  end
  if pendingMode == 'join' then
    local pending = redis.call('GET', pendingKey)
    if pending then
      local ok, rec = pcall(cjson.decode, redis.call('GET', jobPrefix .. pending) or '')
      if ok and type(rec) == 'table' and rec.state == 'queued' and rec.attempts == 0
        and type(rec.trigger) == 'table' and rec.trigger.kind == 'manual' then
        share(jobPrefix .. pending .. '${SHARED_SUFFIX}')
        return {pending, 'pendingSync'}
      end
    end
  end
  redis.call('SET', recordKey, record)
  redis.call('ZADD', allKey, score, id)
  redis.call('ZADD', envJobsKey, score, id)
  if deliveryKey ~= absent then redis.call('SET', deliveryKey, id, 'EX', ${DELIVERY_TTL_SECONDS}) end
  if shaKey ~= absent then redis.call('SET', shaKey, id, 'EX', ${SHA_TTL_SECONDS}) end
  if pendingKey ~= absent then redis.call('SET', pendingKey, id, 'EX', ${PENDING_SYNC_TTL_SECONDS}) end
  return {id, 'created'}
end
local outcomes = {}
for n = 1, #KEYS / 7 do
  local k, a = (n - 1) * 7, 2 + (n - 1) * 5
  outcomes[n] = claim(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6],
    KEYS[k + 7], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end
return outcomes
`;

/**
 * Drops an environment's records beyond the kept history, walking from the newest. A re-sync
 * that changed nothing goes once QUIET_RESYNCS_KEPT newer such are kept: a re-sync every
 * minute would otherwise push every deploy out of the history within a day, and out of the
 * environment's page within 20 minutes. Past the HISTORY_ALWAYS_KEPT newest, any record goes
 * once HISTORY_PER_ENVIRONMENT newer ones are kept, or once the kept ones hold
 * HISTORY_BYTES_PER_ENVIRONMENT (a record lists every object of its deploy, so an environment
 * of 1,000 objects writes ~100 KB per job). Never a job still queued or running (its sender
 * holds a 202, and a worker drops a queue entry that has no record), the job just finished
 * (the environment's lastJob), or one finished after ARGV[3] (ISO time): whoever follows it
 * (`sync --wait`, the 202's status URL) reads it next. The sha and delivery keys that name a
 * dropped job go with it: a claim takes a job without a record for finished anyway. Runs when
 * a job finishes, never on the webhook path, over at most TRIM_SCAN_LIMIT records.
 * KEYS: environment index, all-jobs index, quiet re-syncs. ARGV: record key prefix, the job
 * just finished, the cutoff, the environment's sha key prefix, its GitHub and GitLab delivery
 * key prefixes, its pending-sync key.
 */
const TRIM_SCAN_LIMIT = 1500;
/** Finished this recently, a record is kept whatever the bound: someone may be following it. */
export const RECENTLY_FINISHED_MS = 10 * 60_000;
export const HISTORY_BYTES_PER_ENVIRONMENT = 16 * 1024 * 1024;
/** `GET /environments/:name` shows 20 recent jobs: those stay whatever their size or number. */
const HISTORY_ALWAYS_KEPT = 20;
export const QUIET_RESYNCS_KEPT = 10;
/** Dropped at most per trim, so one call never holds Redis long; the next finish goes on. */
const TRIM_MAX_DROPS = 100;
/** Enough for every field before `resources` (ids, names, a pusher, shas, times). */
const RECORD_HEAD_BYTES = 4096;
/** Where a record's object list starts: every field a summary needs comes before it. */
const RESOURCES_FIELD = ',"resources":';

const jobSummarySchema = jobRecordSchema.pick({
  id: true,
  state: true,
  sha: true,
  finishedAt: true,
  supersededBy: true,
});
/** What `GET /environments` shows of an environment's newest job. */
export type JobSummary = z.infer<typeof jobSummarySchema>;
/** How many superseding deploys lastJob follows on, one after the other, at most (as sync --wait). */
const SUCCESSORS_MAX = 10;
const TRIM_SCRIPT = `
local envKey, allKey, quietKey = KEYS[1], KEYS[2], KEYS[3]
local prefix, justFinished, cutoff, shaPrefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local deliveryPrefix = { github = ARGV[5], gitlab = ARGV[6] }
local pendingSyncKey = ARGV[7]
-- The record's fields before its object list, decoded: a record of 1,000 objects is ~100 KB,
-- and decoding hundreds whole would hold Redis for seconds.
local function fieldsBeforeResources(id)
  local head = redis.call('GETRANGE', prefix .. id, 0, ${RECORD_HEAD_BYTES} - 1)
  local cut = string.find(head, ',"resources":', 1, true)
  local text = head
  if cut then text = string.sub(head, 1, cut - 1) .. '}'
  elseif #head == ${RECORD_HEAD_BYTES} then text = redis.call('GET', prefix .. id) or '' end
  local ok, record = pcall(cjson.decode, text)
  if ok and type(record) == 'table' then return record end
  return nil
end
local ids = redis.call('ZREVRANGE', envKey, 0, ${TRIM_SCAN_LIMIT} - 1)
if #ids <= ${QUIET_RESYNCS_KEPT} then return 0 end
local quiet = {}
for _, id in ipairs(redis.call('ZRANGE', quietKey, 0, -1)) do quiet[id] = true end
local kept, bytes, quietKept, full, drop = 0, 0, 0, false, {}
for n, id in ipairs(ids) do
  if #drop >= ${TRIM_MAX_DROPS} then break end
  local size = redis.call('STRLEN', prefix .. id)
  -- Once the history is full, every older record goes: none is kept past one that was not.
  if n > ${HISTORY_ALWAYS_KEPT} and (kept >= ${HISTORY_PER_ENVIRONMENT} or bytes + size > ${HISTORY_BYTES_PER_ENVIRONMENT}) then
    full = true
  end
  local over = (quiet[id] and quietKept >= ${QUIET_RESYNCS_KEPT}) or (n > ${HISTORY_ALWAYS_KEPT} and full)
  if over and id ~= justFinished then
    local record = fieldsBeforeResources(id)
    local finishedAt = record and type(record.finishedAt) == 'string' and record.finishedAt
    if record and (record.state == 'queued' or record.state == 'running' or (finishedAt and finishedAt > cutoff)) then
      over = false
    else
      drop[#drop + 1] = { id, record }
    end
  else
    over = false
  end
  if not over then
    kept, bytes = kept + 1, bytes + size
    if quiet[id] then quietKept = quietKept + 1 end
  end
end
local function dropKeyNaming(key, id)
  if redis.call('GET', key) == id then redis.call('DEL', key) end
end
for _, dropped in ipairs(drop) do
  local id, record = dropped[1], dropped[2]
  if record then
    local trigger = type(record.trigger) == 'table' and record.trigger or {}
    if type(record.sha) == 'string' then dropKeyNaming(shaPrefix .. record.sha, id) end
    if type(trigger.sha) == 'string' then dropKeyNaming(shaPrefix .. trigger.sha, id) end
    local deliveries = type(trigger.provider) == 'string' and deliveryPrefix[trigger.provider]
    if deliveries and type(trigger.deliveryId) == 'string' then dropKeyNaming(deliveries .. trigger.deliveryId, id) end
  end
  dropKeyNaming(pendingSyncKey, id)
  redis.call('DEL', prefix .. id)
  redis.call('ZREM', envKey, id)
  redis.call('ZREM', allKey, id)
  redis.call('ZREM', quietKey, id)
end
return #drop
`;

/** Past this, a queued re-sync's place is taken as free whatever its holder. */
const QUEUED_RESYNC_HELD_MS = 24 * 3600_000;
/** A claim this recent whose record is not there yet is a re-sync being queued, not a lost one. */
const QUEUED_RESYNC_CLAIM_GRACE_MS = 30_000;
/** KEYS[1] to ARGV[2] (milliseconds ARGV[3]) if it still holds ARGV[1] ('' for nothing). */
const SWAP_IF_UNCHANGED_SCRIPT = `
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

/**
 * A Lua function reading a record's state: its third field, so the first bytes of each hold
 * it, however many objects the record lists (the whole record only past a very long trigger).
 */
const READ_STATE_LUA = `
local function stateOf(key)
  local head = redis.call('GETRANGE', key, 0, 511)
  local state = string.match(head, '"state":"(%a+)"')
  if not state and #head == 512 then state = string.match(redis.call('GET', key) or '', '"state":"(%a+)"') end
  return state
end`;

/**
 * The ids of the jobs in state `ARGV[2]` among ranks `ARGV[3]`..`ARGV[4]` of an index, newest
 * first, reading no record whole: a scan of an environment's history for its queued jobs is
 * then a few bytes per record, not its object list. KEYS: the index. ARGV: record key prefix,
 * state, first and last rank. Returns how many ids the range held, and those in the state.
 */
const IDS_IN_STATE_SCRIPT = `${READ_STATE_LUA}
local ids = redis.call('ZREVRANGE', KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4]))
local found = {}
for _, id in ipairs(ids) do
  if stateOf(ARGV[1] .. id) == ARGV[2] then found[#found + 1] = id end
end
return {#ids, found}
`;

/**
 * Counts the states of the `ARGV[2]` newest jobs. KEYS: all-jobs index. ARGV: record key
 * prefix, how many. Returns state, count, state, count...
 */
const COUNT_STATES_SCRIPT = `${READ_STATE_LUA}
local counts = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local state = stateOf(ARGV[1] .. id)
  if state then counts[state] = (counts[state] or 0) + 1 end
end
local flat = {}
for state, count in pairs(counts) do
  flat[#flat + 1] = state
  flat[#flat + 1] = count
end
return flat
`;

/**
 * A successful deploy's end on its environment, written only while its lock is still the
 * worker's, or is gone with no deploy of another commit started since (`deployingSha`, set
 * by every deploy as it starts, is still this one's): a lock that merely expired. Else a
 * deploy that took the lock since owns the environment's status, and nothing is written.
 * KEYS: environment, lock. ARGV: token, sha, field/value pairs. Returns 1 when written.
 */
const FENCED_LIVE_SCRIPT = `
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[1] and (holder or redis.call('HGET', KEYS[1], 'deployingSha') ~= ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
`;

/**
 * Undoes one claim unless its job was handed to another request meanwhile (the claim script
 * marks it): that request's 202 names the job, and its queue entry is repaired by whoever
 * meets the queued record next (DeployProducer.enqueue, or a worker's requeueLostJobs).
 * KEYS: shared mark, record, all-jobs index, environment index, delivery, sha, pending sync.
 */
const RELEASE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] ~= ARGV[2] then redis.call('DEL', KEYS[5]) end
if KEYS[6] ~= ARGV[2] then redis.call('DEL', KEYS[6]) end
if KEYS[7] ~= ARGV[2] and redis.call('GET', KEYS[7]) == ARGV[1] then redis.call('DEL', KEYS[7]) end
return 1
`;

/**
 * KEYS: the environment's pending-sync key. ARGV: a job id. Deletes the key if it names that
 * job: the job has started or ended, so a sync from now on gets a job of its own.
 */
const RELEASE_PENDING_SYNC_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

interface ClaimCommander {
  /** One array, which ioredis flattens: a large batch spread as call arguments could overflow the stack. */
  pushgateClaim(numberOfKeysKeysAndArgs: (string | number)[]): Promise<unknown>;
  pushgateRelease(...keysAndArgs: string[]): Promise<number>;
  pushgateReleasePendingSync(pendingSyncKey: string, jobId: string): Promise<number>;
  pushgateTrim(
    envJobsKey: string,
    allKey: string,
    quietKey: string,
    jobPrefix: string,
    justFinished: string,
    keepFinishedAfter: string,
    shaPrefix: string,
    githubDeliveryPrefix: string,
    gitlabDeliveryPrefix: string,
    pendingSyncKey: string,
  ): Promise<number>;
  pushgateCountStates(allKey: string, jobPrefix: string, limit: number): Promise<(string | number)[]>;
  pushgateIdsInState(
    indexKey: string,
    jobPrefix: string,
    state: JobState,
    first: number,
    last: number,
  ): Promise<[number, string[]]>;
}

function claimOutcome(reply: unknown): ClaimOutcome {
  const [id, how] = reply as [string, 'created' | 'delivery' | 'sha' | 'pendingSync'];
  return how === 'created' ? { id, created: true } : { id, created: false, matchedBy: how };
}

export function newJobRecord(request: ClaimRequest): JobRecord {
  return {
    id: request.id,
    environment: request.environment,
    state: 'queued',
    trigger: request.trigger,
    sha: null,
    attempts: 0,
    receivedAt: request.receivedAt,
    startedAt: null,
    finishedAt: null,
    resources: [],
    error: null,
    ...(request.statusUrl ? { statusUrl: request.statusUrl } : {}),
    ...(request.target ? { target: request.target } : {}),
  };
}

export class JobStore {
  /** The claim as a command of the connection: ioredis sends its text once, then EVALSHA. */
  private readonly commander: ClaimCommander;
  /** Which environments are suspended: kept with their records, read by the worker and the API. */
  readonly suspensions: SuspensionStore;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {
    this.suspensions = new SuspensionStore(redis, keys);
    // Defined up front: a pipeline built before a command exists lacks it.
    const commander = redis as unknown as ClaimCommander & RedisClient;
    if (typeof commander.pushgateClaim !== 'function') {
      // No numberOfKeys: a batch of claims passes seven keys per claim, counted at the call.
      commander.defineCommand('pushgateClaim', { lua: CLAIM_SCRIPT });
      commander.defineCommand('pushgateRelease', { lua: RELEASE_SCRIPT, numberOfKeys: 7 });
      commander.defineCommand('pushgateReleasePendingSync', {
        lua: RELEASE_PENDING_SYNC_SCRIPT,
        numberOfKeys: 1,
      });
      commander.defineCommand('pushgateTrim', { lua: TRIM_SCRIPT, numberOfKeys: 3 });
      commander.defineCommand('pushgateCountStates', { lua: COUNT_STATES_SCRIPT, numberOfKeys: 1 });
      commander.defineCommand('pushgateIdsInState', { lua: IDS_IN_STATE_SCRIPT, numberOfKeys: 1 });
    }
    this.commander = commander;
  }

  /** Appends one claim's seven keys to `keys` and its five arguments to `args`. */
  private addClaim(request: ClaimRequest, keys: string[], args: (string | number)[]): void {
    const { trigger, environment } = request;
    keys.push(
      trigger.deliveryId && trigger.provider
        ? this.keys.delivery(trigger.provider, trigger.deliveryId, environment)
        : this.keys.absent,
      trigger.sha ? this.keys.shaJob(environment, trigger.sha) : this.keys.absent,
      this.keys.environment(environment),
      this.keys.job(request.id),
      this.keys.jobsAll,
      this.keys.jobsByEnvironment(environment),
      this.pendingSyncKey(request),
    );
    args.push(
      request.id,
      JSON.stringify(newJobRecord(request)),
      Date.parse(request.receivedAt),
      trigger.sha ?? '',
      request.pendingSync ?? '',
    );
  }

  /** The environment's pending-sync key for a manual sync's claim; `absent` for any other. */
  private pendingSyncKey(request: Pick<ClaimRequest, 'environment' | 'trigger' | 'pendingSync'>): string {
    return request.pendingSync && request.trigger.kind === 'manual'
      ? this.keys.pendingSync(request.environment)
      : this.keys.absent;
  }

  /**
   * Claims in one script call, decided in the order given (a later one sees what an earlier
   * one created). The command is issued before the first await, so a caller that corks the
   * socket sends it with the commands it issues next.
   */
  async claimMany(requests: readonly ClaimRequest[]): Promise<ClaimOutcome[]> {
    const keys: string[] = [];
    const args: (string | number)[] = [this.keys.job(''), this.keys.absent];
    for (const request of requests) this.addClaim(request, keys, args);
    const replies = (await this.commander.pushgateClaim([keys.length, ...keys, ...args])) as unknown[];
    return replies.map(claimOutcome);
  }

  /**
   * The job's record, created (queued) when the job has none: jobs that did not come through
   * `claim`, such as those of a reconcile scheduler, get their record on first run.
   */
  async ensure(request: ClaimRequest): Promise<JobRecord> {
    await this.redis.set(this.keys.job(request.id), JSON.stringify(newJobRecord(request)), 'NX');
    // Indexed on every call, not only by the one that created it: a worker killed between the
    // two would leave a record no list shows and no trim removes. ZADD NX keeps the score it has.
    const score = Date.parse(request.receivedAt);
    await this.redis
      .multi()
      .zadd(this.keys.jobsAll, 'NX', score, request.id)
      .zadd(this.keys.jobsByEnvironment(request.environment), 'NX', score, request.id)
      .exec();
    const record = await this.get(request.id);
    if (!record) throw new Error(`job ${request.id} has no record`);
    return record;
  }

  /**
   * The one place for a re-sync queued behind the environment's running deploy: true when
   * `jobId` now holds it. False when another re-sync holds it and is still queued, or is about
   * to be (claimed within QUEUED_RESYNC_CLAIM_GRACE_MS, its record not written yet), or when
   * another run took it meanwhile: two re-syncs due at once, on one worker or two, both saw it
   * free. A holder that ran, finished or never came gives it up to the next.
   */
  async claimQueuedResync(environment: string, jobId: string): Promise<boolean> {
    const key = this.keys.queuedResync(environment);
    const [holder, leftMs] = await Promise.all([this.redis.get(key), this.redis.pttl(key)]);
    if (holder === jobId) return true;
    // Expired between the two reads: free.
    if (holder !== null && leftMs === -2) return (await this.swapQueuedResync(key, '', jobId)) === 1;
    if (holder !== null) {
      const record = await this.get(holder);
      const claimedAgoMs = QUEUED_RESYNC_HELD_MS - leftMs;
      if (record ? record.state === 'queued' : claimedAgoMs < QUEUED_RESYNC_CLAIM_GRACE_MS) return false;
    }
    return (await this.swapQueuedResync(key, holder ?? '', jobId)) === 1;
  }

  private swapQueuedResync(key: string, expected: string, jobId: string): Promise<unknown> {
    return this.redis.eval(SWAP_IF_UNCHANGED_SCRIPT, 1, key, expected, jobId, QUEUED_RESYNC_HELD_MS);
  }

  /**
   * Undoes a claim whose queue entry could not be written, so a redelivery starts afresh;
   * false (nothing undone) when the job was meanwhile handed to another request.
   */
  async release(request: ClaimRequest): Promise<boolean> {
    const { trigger, environment, id } = request;
    const undone = await this.commander.pushgateRelease(
      this.keys.job(id) + SHARED_SUFFIX,
      this.keys.job(id),
      this.keys.jobsAll,
      this.keys.jobsByEnvironment(environment),
      trigger.deliveryId && trigger.provider
        ? this.keys.delivery(trigger.provider, trigger.deliveryId, environment)
        : this.keys.absent,
      trigger.sha ? this.keys.shaJob(environment, trigger.sha) : this.keys.absent,
      this.pendingSyncKey(request),
      id,
      this.keys.absent,
    );
    return undone === 1;
  }

  async get(id: string): Promise<JobRecord | null> {
    // The shared mark sits beside the record under the same prefix: it is not a job.
    if (id.endsWith(SHARED_SUFFIX)) return null;
    const raw = await this.redis.get(this.keys.job(id));
    return raw === null ? null : jobRecordSchema.parse(JSON.parse(raw));
  }

  async getMany(ids: readonly string[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.keys.job(id)));
    return raws
      .filter((raw): raw is string => raw !== null)
      .map((raw) => jobRecordSchema.parse(JSON.parse(raw)));
  }

  /** Only the worker holding the job writes to it, so read-modify-write is safe. */
  async update(id: string, patch: Partial<Omit<JobRecord, 'id' | 'environment'>>): Promise<JobRecord> {
    const current = await this.get(id);
    if (!current) throw new Error(`job ${id} has no record`);
    const next: JobRecord = { ...current, ...patch };
    await this.redis.set(this.keys.job(id), JSON.stringify(next));
    if (patch.sha && patch.sha !== current.sha) {
      await this.redis.set(this.keys.shaJob(current.environment, patch.sha), id, 'EX', SHA_TTL_SECONDS);
    }
    // Started (or closed): the claim script no longer joins it, whatever the key says, so
    // taking the key back is bookkeeping, and must not fail the write that started the job.
    if (current.state === 'queued' && next.state !== 'queued')
      await this.releasePendingSync(current).catch(() => undefined);
    return next;
  }

  /** Takes back the environment's pending-sync key if it names this job (see CLAIM_SCRIPT). */
  private async releasePendingSync(record: JobRecord): Promise<void> {
    if (record.trigger.kind !== 'manual') return;
    await this.commander.pushgateReleasePendingSync(this.keys.pendingSync(record.environment), record.id);
  }

  /**
   * The environment's newest job, read up to its object list only: `GET /environments` shows
   * four fields of it for every environment, and a record of 1,000 objects is ~100 KB.
   */
  async latestSummary(environment: string): Promise<JobSummary | null> {
    const [id] = await this.redis.zrevrange(this.keys.jobsByEnvironment(environment), 0, 0);
    if (id === undefined) return null;
    return this.summary(id);
  }

  /**
   * The job an environment's `lastJob` shows: its newest (`newest`, when the caller has read it
   * already), or, when that one was superseded, the deploy that took its place, followed on as
   * `sync --wait` does. A superseded job tried no commit of its own: shown as it is, it would
   * hide that the job deploying its commit (or a newer one) failed.
   */
  async lastJob(environment: string, newest?: JobSummary): Promise<JobSummary | null> {
    let job = newest ?? (await this.latestSummary(environment));
    for (let hop = 0; hop < SUCCESSORS_MAX && job?.state === 'superseded' && job.supersededBy; hop++) {
      const id = await this.redis.get(this.keys.shaJob(environment, job.supersededBy));
      // Unknown any more (a week on): the superseded job is all there is to show.
      const next = id === null || id === job.id ? null : await this.summary(id);
      if (!next) break;
      job = next;
    }
    return job;
  }

  /** A job's fields before its object list (all of a superseded one's: supersededBy follows the list). */
  private async summary(id: string): Promise<JobSummary | null> {
    const head = await this.redis.getrangeBuffer(this.keys.job(id), 0, RECORD_HEAD_BYTES - 1);
    if (head.length === 0) return null;
    const cut = head.indexOf(RESOURCES_FIELD);
    const text =
      cut >= 0
        ? `${head.subarray(0, cut).toString('utf8')}}`
        : head.length < RECORD_HEAD_BYTES
          ? head.toString('utf8')
          : ((await this.redis.get(this.keys.job(id))) ?? '{}');
    const summary = jobSummarySchema.parse(JSON.parse(text));
    if (summary.state !== 'superseded' || cut < 0) return summary;
    // A superseded job has applied nothing, or a few objects before a health wait: small.
    const whole = await this.get(id);
    return whole ? jobSummarySchema.parse(whole) : summary;
  }

  /**
   * Newest first; a state filter scans at most the kept history, by the records' first bytes
   * (every worker's minute pass looks for each environment's queued jobs), in pages so that
   * no script holds Redis for long.
   */
  async list(filter: { environment?: string; state?: JobState; limit: number }): Promise<JobRecord[]> {
    const key = filter.environment ? this.keys.jobsByEnvironment(filter.environment) : this.keys.jobsAll;
    if (!filter.state) {
      const ids = await this.redis.zrevrange(key, 0, filter.limit - 1);
      return this.getMany(ids);
    }
    const found: string[] = [];
    const page = 500;
    for (let start = 0; found.length < filter.limit; start += page) {
      const [scanned, ids] = await this.commander.pushgateIdsInState(
        key,
        this.keys.job(''),
        filter.state,
        start,
        start + page - 1,
      );
      found.push(...ids.slice(0, filter.limit - found.length));
      if (scanned < page) break;
    }
    // A job may have moved on between the scan and the read.
    return (await this.getMany(found)).filter((record) => record.state === filter.state);
  }

  /** How many of the `limit` newest jobs are in each state, without reading their object lists. */
  async countStates(limit: number): Promise<Map<string, number>> {
    const flat = await this.commander.pushgateCountStates(this.keys.jobsAll, this.keys.job(''), limit);
    const counts = new Map<string, number>();
    for (let index = 0; index + 1 < flat.length; index += 2)
      counts.set(String(flat[index]), Number(flat[index + 1]));
    return counts;
  }

  /**
   * How the environment's last job that ended succeeded or failed ended, by when it ended
   * (superseded ones aside: the job that took its place decides). Null before any has, since
   * this version.
   */
  async lastOutcome(environment: string): Promise<'succeeded' | 'failed' | null> {
    const outcome = await this.redis.hget(this.keys.environment(environment), 'lastOutcome');
    return outcome === 'succeeded' || outcome === 'failed' ? outcome : null;
  }

  /**
   * What the commit status outbox holds for this commit: the state pushgate wants it to show
   * (from this job or a later one), whether that reached the provider, and the provider's last
   * refusal while it has not. Null when nothing was reported (no token, or a week passed).
   */
  async commitStatus(environment: string, sha: string): Promise<CommitStatusView | null> {
    const [state, seq, deliveredSeq, gaveUpSeq, lastError] = await this.redis.hmget(
      this.keys.commitStatus(environment, sha),
      'state',
      'seq',
      'deliveredSeq',
      'gaveUpSeq',
      'lastError',
    );
    if (!state) return null;
    const delivered = Number(deliveredSeq ?? 0) >= Number(seq ?? 0);
    const gaveUp = !delivered && Number(gaveUpSeq ?? 0) >= Number(seq ?? 0);
    return {
      state,
      delivered,
      ...(!delivered && lastError ? { error: gaveUp ? `given up: ${lastError}` : lastError } : {}),
    };
  }

  /**
   * The environment's other jobs still queued, among its `scan` newest: what would run once
   * the environment's lock is free.
   */
  async queuedJobIds(environment: string, except: string, scan = 50): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.keys.jobsByEnvironment(environment), 0, scan - 1);
    const records = await this.getMany(ids.filter((id) => id !== except));
    return records.filter((record) => record.state === 'queued').map((record) => record.id);
  }

  /**
   * When a worker first handed this job back for configuration skew: set by the first ask,
   * read by the later ones (milliseconds since the epoch). Kept a day, past any grace.
   */
  async skewSince(id: string, now = Date.now()): Promise<number> {
    const key = this.keys.jobSkewSince(id);
    const replies = await this.redis.multi().set(key, String(now), 'EX', 86_400, 'NX').get(key).exec();
    const since = Number(replies?.[1]?.[1]);
    return Number.isFinite(since) ? since : now;
  }

  /**
   * Each job's count of the requests answered with it since it was created (null: none): read
   * before a fetch of the head and again before a job is finished on that head, a change says
   * a push joined it meanwhile, maybe a force-push back to its commit the fetch did not see.
   */
  async claimMarks(ids: readonly string[]): Promise<(string | null)[]> {
    if (ids.length === 0) return [];
    return this.redis.mget(ids.map((id) => this.keys.job(id) + SHARED_SUFFIX));
  }

  /**
   * Seals a queued job that the deploy ahead of it is about to finish, if its claim mark is
   * still `expected` (claimMarks, read before that deploy fetched its head): true when sealed,
   * false when a request joined it meanwhile. A push of its commit claimed after the seal gets
   * a job of its own (CLAIM_SCRIPT), so none is answered with a job that is then finished on
   * a head older than its push.
   */
  async sealClaim(id: string, expected: string | null): Promise<boolean> {
    const markKey = this.keys.job(id) + SHARED_SUFFIX;
    const sealed = await this.redis.eval(
      SWAP_IF_UNCHANGED_SCRIPT,
      1,
      markKey,
      expected ?? '',
      SEALED,
      SHARED_TTL_SECONDS * 1000,
    );
    return sealed === 1;
  }

  /** The job for this commit of the environment, if one is known. */
  async jobForSha(environment: string, sha: string): Promise<JobRecord | null> {
    const id = await this.redis.get(this.keys.shaJob(environment, sha));
    return id === null ? null : this.get(id);
  }

  async environmentStatus(environment: string): Promise<EnvironmentStatus> {
    const [
      lastAppliedSha,
      lastAppliedAt,
      lastJobId,
      deployingSha,
      inventoryNamespaces,
      suspendedAt,
      suspendedReason,
      lastAppliedTarget,
    ] = await this.redis.hmget(
      this.keys.environment(environment),
      'lastAppliedSha',
      'lastAppliedAt',
      'lastJobId',
      'deployingSha',
      'inventoryNamespaces',
      'suspendedAt',
      'suspendedReason',
      'lastAppliedTarget',
    );
    const starting = deployingSha?.startsWith(DEPLOY_STARTING) ?? false;
    return {
      lastAppliedSha: lastAppliedSha ?? null,
      lastAppliedAt: lastAppliedAt ?? null,
      lastJobId: lastJobId ?? null,
      inventoryNamespaces: parseNamespaceList(inventoryNamespaces),
      liveSha: deployingSha === null || deployingSha === lastAppliedSha ? (lastAppliedSha ?? null) : null,
      deployingSha: starting ? null : (deployingSha ?? null),
      deployStarting: starting,
      suspended: suspensionFrom(suspendedAt, suspendedReason),
      lastAppliedTarget: parseTarget(lastAppliedTarget, lastAppliedAt),
    };
  }

  /**
   * The commit a deploy is about to write (under the environment's lock): until it succeeds,
   * the last success is no longer all the cluster holds.
   */
  async recordDeploying(environment: string, sha: string): Promise<void> {
    await this.redis.hset(this.keys.environment(environment), 'deployingSha', sha);
  }

  /**
   * A deploy run has started and is about to fetch: until it has chosen its commit, no commit
   * counts as live (a force-push back to the last success, made while it fetches, must get a
   * job of its own). Returns the run's own mark, for restoreDeploying: only this run takes it
   * back, not another run of the same job that took the lock over; and whether another job's
   * deploy of the environment has run since this job's previous run, now or between two of its
   * earlier ones (JobRun.deployRunStarted), until clearDeployRunDoubt.
   */
  async recordDeployStarting(
    environment: string,
    jobId: string,
  ): Promise<{ mark: string; afterOtherDeploy: boolean }> {
    const mark = `${DEPLOY_STARTING}${jobId}:${randomUUID()}`;
    const afterOther = await this.redis.eval(
      START_DEPLOYING_SCRIPT,
      2,
      this.keys.environment(environment),
      this.keys.jobDeployRun(jobId),
      mark,
      JOB_DEPLOY_RUN_TTL_SECONDS,
    );
    return { mark, afterOtherDeploy: afterOther === 1 };
  }

  /** The job moved to another commit: another deploy before it says nothing of what it writes now. */
  async clearDeployRunDoubt(jobId: string): Promise<void> {
    await this.redis.hdel(this.keys.jobDeployRun(jobId), 'afterOther');
  }

  /**
   * Puts back what recordDeployStarting replaced, unless the mark is no longer this run's: it
   * chose a commit (recordDeploying), or a worker that took the lock over has written since.
   */
  async restoreDeploying(environment: string, mark: string): Promise<void> {
    await this.redis.eval(RESTORE_DEPLOYING_SCRIPT, 1, this.keys.environment(environment), mark);
  }

  /**
   * This installation's id (one Redis, one prefix), made by whichever process asks first: it
   * tells this installation's inventories from those of another on the same cluster. Read
   * at each deploy, never kept in memory: after Redis lost its data (or an operator restored
   * the id, see the inventory refusal), every worker must use what Redis holds now.
   */
  async installationId(): Promise<string> {
    const id = await this.redis.get(this.keys.installation);
    if (id) return id;
    await this.redis.set(this.keys.installation, randomUUID(), 'NX');
    const made = await this.redis.get(this.keys.installation);
    if (!made) throw new Error('the installation id could not be read back from Redis');
    return made;
  }

  /**
   * Whether the Redis that holds pushgate's keys answers: a command on one of them, which a
   * cluster client sends to the node serving their slot (a PING goes to any node).
   */
  async answers(): Promise<boolean> {
    await this.redis.exists(this.keys.installation);
    return true;
  }

  /** The Redis key of the installation id, for the refusal that tells how to restore one. */
  get installationKey(): string {
    return this.keys.installation;
  }

  /** Under the environment's lock, before its deploy first writes an inventory in `namespace`. */
  async addInventoryNamespace(environment: string, namespace: string): Promise<void> {
    const namespaces = await this.inventoryNamespaces(environment);
    if (namespaces.includes(namespace)) return;
    await this.redis.hset(
      this.keys.environment(environment),
      'inventoryNamespaces',
      JSON.stringify([...namespaces, namespace]),
    );
  }

  /** Under the environment's lock, once no inventory of it is left in `namespace`. */
  async removeInventoryNamespace(environment: string, namespace: string): Promise<void> {
    const namespaces = await this.inventoryNamespaces(environment);
    if (!namespaces.includes(namespace)) return;
    const kept = namespaces.filter((recorded) => recorded !== namespace);
    await this.redis.hset(this.keys.environment(environment), 'inventoryNamespaces', JSON.stringify(kept));
  }

  private async inventoryNamespaces(environment: string): Promise<string[]> {
    return parseNamespaceList(
      await this.redis.hget(this.keys.environment(environment), 'inventoryNamespaces'),
    );
  }

  /**
   * The job's final record and the environment's last job (and commit, when applied), in one
   * transaction: whoever sees the record final sees the environment's status of it too; then
   * the history is trimmed. Only the worker holding the job writes to it (as update()).
   */
  async finish(
    id: string,
    patch: Partial<Omit<JobRecord, 'id' | 'environment'>>,
    applied?: AppliedCommit,
    options: { quietResync?: boolean } = {},
  ): Promise<{ record: JobRecord; recordedLive: boolean }> {
    const current = await this.get(id);
    if (!current) throw new Error(`job ${id} has no record`);
    // What its attempts were about to create or change is in `resources` now, whoever finishes the job.
    const { creating: _creating, configuring: _configuring, ...next }: JobRecord = { ...current, ...patch };
    const write = this.redis
      .multi()
      .set(this.keys.job(id), JSON.stringify(next))
      // Its runs are over: a re-sync every few minutes per environment would otherwise leave
      // thousands of these until they expire.
      .del(this.keys.jobDeployRun(id));
    if (patch.sha && patch.sha !== current.sha) {
      write.set(this.keys.shaJob(current.environment, patch.sha), id, 'EX', SHA_TTL_SECONDS);
    }
    if (options.quietResync) {
      write.zadd(
        this.keys.quietResyncs(current.environment),
        Date.parse(current.receivedAt) || Date.now(),
        id,
      );
    }
    const outcome = next.state === 'succeeded' || next.state === 'failed' ? next.state : undefined;
    const recordedLive = await this.writeFinished(write, current.environment, id, applied, outcome);
    // Bookkeeping: a job that ended is never joined anyway (CLAIM_SCRIPT reads its state).
    await this.releasePendingSync(current).catch(() => undefined);
    return { record: next, recordedLive };
  }

  /** finish()'s environment side alone: a job another worker or version finished (tests set that up). */
  async recordFinished(environment: string, jobId: string, applied?: AppliedCommit): Promise<void> {
    await this.writeFinished(this.redis.multi(), environment, jobId, applied);
  }

  /** False when nothing was recorded of the environment: `applied`'s fence was another deploy's (FENCED_LIVE_SCRIPT). */
  private async writeFinished(
    write: ChainableCommander,
    environment: string,
    jobId: string,
    applied: AppliedCommit | undefined,
    outcome?: 'succeeded' | 'failed',
  ): Promise<boolean> {
    const fields: Record<string, string> = { lastJobId: jobId };
    // In the order jobs end, not that of their receipt (a re-sync runs behind pushes); fenced
    // with a success, so a worker that lost its lock cannot cover a later deploy's failure.
    if (outcome) fields.lastOutcome = outcome;
    if (applied) {
      fields.lastAppliedSha = applied.sha;
      fields.lastAppliedAt = applied.at;
      // With the success it belongs to: one a version that kept no target recorded since
      // (a rolling upgrade) leaves it stale, and then it reads as unknown.
      if (applied.target) fields.lastAppliedTarget = JSON.stringify({ ...applied.target, at: applied.at });
      // Recorded under the lock: no other deploy has started since this one, whatever a
      // worker that lost its lock may have written meanwhile (it cannot have written the cluster).
      fields.deployingSha = applied.sha;
    }
    const envKey = this.keys.environment(environment);
    if (applied?.fence) {
      const { key, token } = applied.fence;
      write.eval(FENCED_LIVE_SCRIPT, 2, envKey, key, token, applied.sha, ...Object.entries(fields).flat());
    } else {
      write.hset(envKey, fields);
    }
    const replies = await write.exec();
    const failure = replies?.find(([error]) => error !== null)?.[0];
    if (!replies || failure) throw failure ?? new Error(`job ${jobId}: its end was not recorded`);
    const recordedLive = !applied?.fence || replies.at(-1)?.[1] === 1;
    // Housekeeping: a failure here must not fail the job that just finished; the next trims.
    await this.commander
      .pushgateTrim(
        this.keys.jobsByEnvironment(environment),
        this.keys.jobsAll,
        this.keys.quietResyncs(environment),
        this.keys.job(''),
        jobId,
        new Date(Date.now() - RECENTLY_FINISHED_MS).toISOString(),
        this.keys.shaJob(environment, ''),
        this.keys.delivery('github', '', environment),
        this.keys.delivery('gitlab', '', environment),
        this.keys.pendingSync(environment),
      )
      .catch(() => undefined);
    return recordedLive;
  }
}

/** An environment lock's key and its holder's token: a Redis script writes only while they match. */
export interface LockFence {
  key: string;
  token: string;
}

/** A successful deploy's commit, when, and where to (see environmentTarget). */
export interface AppliedCommit {
  sha: string;
  at: string;
  target?: EnvironmentTarget;
  /**
   * The environment lock the deploy held: the commit is recorded as live only while it is
   * still held, so a worker frozen past its lock after its last check cannot record its
   * commit over a deploy that took the lock since.
   */
  fence?: LockFence;
}

const appliedTargetSchema = environmentTargetSchema.extend({ at: z.string() });

/**
 * A target as finish() writes it, of the last success; anything else (none, another
 * success's, unreadable) counts as not known.
 */
function parseTarget(
  raw: string | null | undefined,
  lastAppliedAt: string | null | undefined,
): EnvironmentTarget | null {
  if (raw === null || raw === undefined) return null;
  try {
    const parsed = appliedTargetSchema.safeParse(JSON.parse(raw));
    if (!parsed.success || parsed.data.at !== lastAppliedAt) return null;
    const { at: _at, ...target } = parsed.data;
    return target;
  } catch {
    return null;
  }
}

/** A JSON list of namespaces, as addInventoryNamespace writes it; anything else counts as none. */
function parseNamespaceList(raw: string | null | undefined): string[] {
  if (raw === null || raw === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}
