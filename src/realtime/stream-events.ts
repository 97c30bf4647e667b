/**
 * The contract of the `/mcp-stream/<streamId>` namespaces: event names (named once, here) and the event
 * maps both ends are typed with. Shared by the hub (src/streams/socket.ts) and the client helper
 * (src/client/stream-client.ts), so it imports types only.
 */
import type { CancelPayload, ClientMessagePayload, PublishPayload, TopicName } from '../streams/payloads.js';

export const streamNamespacePattern = /^\/mcp-stream\/stream-.+$/;
export const streamNamespace = (streamId: string): string => `/mcp-stream/${streamId}`;

/** client → hub */
export const ClientEvents = {
  message: 'client-message',
  subscribe: 'subscribe-topic',
  unsubscribe: 'unsubscribe-topic',
  publish: 'publish',
  cancel: 'cancel',
} as const;

/** hub → client */
export const ServerEvents = {
  response: 'server-response',
  progress: 'server-progress',
  notification: 'server-notification',
  topicMessage: 'topic-message',
  gap: 'stream-gap',
  error: 'stream-error',
  stopped: 'stream-stopped',
} as const;

export interface WireError {
  code: string;
  message: string;
  details?: unknown;
}

export interface ServerResponse {
  id: string | number;
  type: string;
  ok: boolean;
  result?: unknown;
  error?: WireError;
  durationMs: number;
  seq: number;
}

export interface ServerProgress {
  id: string | number;
  progress: number;
  total?: number;
  message?: string;
  seq: number;
}

export interface ServerNotification {
  method: string;
  params?: unknown;
  seq: number;
}

export interface TopicMessage {
  topic: string;
  data: unknown;
  from: string;
  seq: number;
}

/** What a reconnecting client missed is older than the replay buffer. */
export interface StreamGap {
  lastSeq: number;
  /** Oldest seq still in the buffer (what follows is replayed); the messages in between are lost. */
  firstAvailableSeq: number;
  currentSeq: number;
}

/** An event other than a client-message was refused (bad payload, limits); client-messages get a server-response. */
export interface StreamErrorPayload {
  event: string;
  error: WireError;
  seq: number;
}

export interface StreamStopped {
  streamId: string;
  reason: string;
  seq: number;
}

/** Acknowledgement of subscribe/unsubscribe/publish/cancel when the client passes a callback. */
export type Ack = { ok: true; seq?: number } | { ok: false; error: WireError };

export interface StreamServerToClient {
  'server-response': (payload: ServerResponse) => void;
  'server-progress': (payload: ServerProgress) => void;
  'server-notification': (payload: ServerNotification) => void;
  'topic-message': (payload: TopicMessage) => void;
  'stream-gap': (payload: StreamGap) => void;
  'stream-error': (payload: StreamErrorPayload) => void;
  'stream-stopped': (payload: StreamStopped) => void;
}

export interface StreamClientToServer {
  'client-message': (payload: ClientMessagePayload, ack?: (response: ServerResponse) => void) => void;
  'subscribe-topic': (topic: TopicName, ack?: (ack: Ack) => void) => void;
  'unsubscribe-topic': (topic: TopicName, ack?: (ack: Ack) => void) => void;
  publish: (payload: PublishPayload, ack?: (ack: Ack) => void) => void;
  cancel: (payload: CancelPayload, ack?: (ack: Ack) => void) => void;
}

/** Handshake `auth` of a stream socket. */
export interface StreamAuth {
  token: string;
  lastSeq?: number;
}

/** Every hub → client event but stream-gap (which describes the sequence itself) is numbered and buffered. */
export type SequencedEvent = Exclude<keyof StreamServerToClient, 'stream-gap'>;
