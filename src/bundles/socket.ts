import type { Namespace, Socket } from 'socket.io';
import { z } from 'zod';
import { HubError, isHubError } from '../errors.js';
import { tokenMatcher } from '../http/auth.js';
import type { Logger } from '../logger.js';
import type { Realtime } from '../realtime/socket-server.js';
import { handshakeError, originCheck } from '../realtime/socket-server.js';
import { TokenBucket } from '../streams/token-bucket.js';
import { bundleIdParams, executionIdParams } from './payloads.js';
import {
  type BundleService,
  type ExecutionResult,
  type ExecutionUpdate,
  executionUpdateTypes,
} from './service.js';

/** The live executions namespace: its name and the events of its contract, named once here. */
export const BUNDLES_NAMESPACE = '/mcp-bundles';

/** client → hub */
export const BundleClientEvents = {
  follow: 'follow-execution',
  unfollow: 'unfollow-execution',
} as const;

/** hub → client: the snapshot sent on each follow, then the updates of executionUpdateTypes. */
export const BundleServerEvents = {
  state: 'execution-state',
  ...executionUpdateTypes,
} as const;

/** What to follow: one execution, or every execution of a bundle. */
export const followTargetSchema = z
  .strictObject({
    executionId: executionIdParams.shape.executionId.optional(),
    bundleId: bundleIdParams.shape.bundleId.optional(),
  })
  .refine((t) => (t.executionId === undefined) !== (t.bundleId === undefined), {
    message: 'give exactly one of executionId and bundleId',
  });
export type FollowTarget = z.infer<typeof followTargetSchema>;

/** The handshake: the API token, and optionally what to follow from the start. */
const authSchema = z.object({
  token: z.string(),
  executionId: executionIdParams.shape.executionId.optional(),
  bundleId: bundleIdParams.shape.bundleId.optional(),
});

/** The state of an execution when a client starts following it (a late joiner misses nothing). */
export interface ExecutionStatePayload {
  type: typeof BundleServerEvents.state;
  executionId: string;
  bundleId: string;
  state: ExecutionResult;
}

/** Acks of follow and unfollow, in the REST API's shape. */
export type FollowAck =
  | { success: true; following: FollowTarget }
  | { success: false; error: ReturnType<HubError['toJSON']> };

type UpdateOf<T extends ExecutionUpdate['type']> = Extract<ExecutionUpdate, { type: T }>;

export interface BundlesServerToClient {
  [BundleServerEvents.state]: (payload: ExecutionStatePayload) => void;
  [BundleServerEvents.started]: (update: UpdateOf<'execution-started'>) => void;
  [BundleServerEvents.stepStarted]: (update: UpdateOf<'step-started'>) => void;
  [BundleServerEvents.stepProgress]: (update: UpdateOf<'step-progress'>) => void;
  [BundleServerEvents.stepFinished]: (update: UpdateOf<'step-finished'>) => void;
  [BundleServerEvents.finished]: (update: UpdateOf<'execution-finished'>) => void;
}

export interface BundlesClientToServer {
  [BundleClientEvents.follow]: (target: FollowTarget, ack?: (reply: FollowAck) => void) => void;
  [BundleClientEvents.unfollow]: (target: FollowTarget, ack?: (reply: FollowAck) => void) => void;
}

/** Follows and unfollows per second and socket (a burst of twice that): a follow may read the database. */
export const FOLLOWS_PER_SECOND = 50;

/** A follow whose database reads are done: what is left is synchronous (see deliver). */
interface PreparedFollow {
  target: FollowTarget;
  /** The state of an execution not running in this hub when prepared. */
  stored?: ExecutionResult;
}

interface SocketData {
  follow: PreparedFollow[];
}

type BundlesSocket = Socket<BundlesClientToServer, BundlesServerToClient, Record<string, never>, SocketData>;

const executionRoom = (executionId: string) => `execution:${executionId}`;
const bundleRoom = (bundleId: string) => `bundle:${bundleId}`;
// followTargetSchema lets through exactly one of the two ids.
const roomOf = (t: FollowTarget) =>
  t.executionId !== undefined ? executionRoom(t.executionId) : bundleRoom(t.bundleId!);

function validation(error: z.ZodError): HubError {
  const issues = error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  const first = issues[0];
  const detail = first ? `${first.path || '(value)'}: ${first.message}` : 'invalid';
  return new HubError('SB_ERR_VALIDATION', detail, { issues });
}

/**
 * `/mcp-bundles`: executions followed live. The handshake carries the API token (`auth: { token }`) and may
 * name an execution or a bundle to follow at once; `follow-execution` / `unfollow-execution` change that
 * later. Each follow first sends an `execution-state` snapshot, then the updates, each once and in order.
 * Updates come from the hub process running the execution.
 */
export function registerBundleNamespace(
  realtime: Realtime,
  service: BundleService,
  options: { apiToken: string; allowedOrigins: readonly string[]; log: Logger },
): void {
  const ns = realtime.io.of(BUNDLES_NAMESPACE) as Namespace<
    BundlesClientToServer,
    BundlesServerToClient,
    Record<string, never>,
    SocketData
  >;
  const matches = tokenMatcher(options.apiToken);

  /** The asynchronous part of a follow; an unknown execution or bundle throws SB_ERR_NOT_FOUND. */
  async function prepare(target: FollowTarget): Promise<PreparedFollow> {
    if (target.executionId !== undefined) {
      // Read from the database only when not running here: then it has ended, or runs in another hub, and
      // this hub publishes nothing more of it (an execution runs here from before its id is known).
      if (service.liveExecution(target.executionId)) return { target };
      return { target, stored: await service.getExecution(target.executionId) };
    }
    await service.get(target.bundleId!);
    return { target };
  }

  /**
   * Sends the snapshot and joins the room in one go: updates are published synchronously, so none can fall
   * between the two (missed) or precede the snapshot (repeated). False when the execution ended here since
   * it was prepared (its end must then be read from the database).
   */
  function deliver(socket: BundlesSocket, { target, stored }: PreparedFollow): boolean {
    const send = (state: ExecutionResult) =>
      socket.emit(BundleServerEvents.state, {
        type: BundleServerEvents.state,
        executionId: state.executionId,
        bundleId: state.bundleId,
        state,
      });
    if (target.executionId !== undefined) {
      const state = service.liveExecution(target.executionId) ?? stored;
      if (!state) return false;
      send(state);
    } else {
      for (const state of service.liveExecutionsOf(target.bundleId!)) send(state);
    }
    socket.join(roomOf(target));
    return true;
  }

  async function follow(socket: BundlesSocket, target: FollowTarget): Promise<void> {
    while (!deliver(socket, await prepare(target)));
  }

  ns.use(originCheck(options.allowedOrigins));
  ns.use((socket, next) => {
    const raw = (socket.handshake.auth ?? {}) as { token?: unknown };
    if (!matches(typeof raw.token === 'string' ? raw.token : undefined)) {
      next(handshakeError(new HubError('SB_ERR_UNAUTHORIZED', 'a valid API token in auth.token')));
      return;
    }
    const auth = authSchema.safeParse(raw);
    if (!auth.success) {
      next(handshakeError(validation(auth.error)));
      return;
    }
    const targets: FollowTarget[] = [];
    if (auth.data.executionId !== undefined) targets.push({ executionId: auth.data.executionId });
    if (auth.data.bundleId !== undefined) targets.push({ bundleId: auth.data.bundleId });
    Promise.all(targets.map(prepare)).then(
      (prepared) => {
        socket.data.follow = prepared;
        next();
      },
      (err: unknown) =>
        next(handshakeError(isHubError(err) ? err : new HubError('SB_ERR_INTERNAL', String(err)))),
    );
  });

  ns.on('connection', (socket) => {
    const reply = (ack: unknown, value: FollowAck) => {
      if (typeof ack === 'function') ack(value);
    };
    const bucket = new TokenBucket(FOLLOWS_PER_SECOND, 2 * FOLLOWS_PER_SECOND);
    const limited = (): HubError | undefined =>
      bucket.take()
        ? undefined
        : new HubError('SB_ERR_RATE_LIMITED', `at most ${FOLLOWS_PER_SECOND} follows per second`, {
            retryAfterSeconds: bucket.retryAfterSeconds(),
          });
    const failure = (err: unknown): FollowAck => ({
      success: false,
      error: (isHubError(err) ? err : new HubError('SB_ERR_INTERNAL', String(err))).toJSON(),
    });
    // A socket's follows and unfollows take effect in the order sent: an unfollow must not be overtaken by
    // a follow still reading the database.
    let previous: Promise<unknown> = Promise.resolve();
    const inTurn = (run: () => Promise<void>): Promise<void> => {
      const next = previous.then(run);
      previous = next.catch(() => {});
      return next;
    };
    // In the turn that sends the connect packet: once a client is connected, what it named is followed.
    for (const prepared of socket.data.follow) {
      if (deliver(socket, prepared)) continue;
      inTurn(() => follow(socket, prepared.target)).catch((err: unknown) => {
        options.log.warn({ err, target: prepared.target }, 'could not follow what the handshake named');
        socket.disconnect(true);
      });
    }
    /** Both events: limited, validated, acknowledged in one shape. */
    const handle = (event: keyof BundlesClientToServer, run: (target: FollowTarget) => Promise<void>) =>
      socket.on(event, (payload: unknown, ack?: unknown) => {
        const refused = limited();
        if (refused) return reply(ack, failure(refused));
        const target = followTargetSchema.safeParse(payload);
        if (!target.success) return reply(ack, failure(validation(target.error)));
        inTurn(() => run(target.data)).then(
          () => reply(ack, { success: true, following: target.data }),
          (err: unknown) => reply(ack, failure(err)),
        );
      });
    handle(BundleClientEvents.follow, (target) => follow(socket, target));
    handle(BundleClientEvents.unfollow, async (target) => {
      await socket.leave(roomOf(target));
    });
  });

  // A follower of the execution and of its bundle is in both rooms and still gets each update once.
  const unsubscribe = service.subscribe((update) => {
    if (!realtime.mayHaveListeners(ns)) return;
    (
      ns.to([executionRoom(update.executionId), bundleRoom(update.bundleId)]).emit as (
        e: string,
        u: unknown,
      ) => boolean
    )(update.type, update);
  });
  realtime.beforeClose(async () => {
    unsubscribe();
  });
}
