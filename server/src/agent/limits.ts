// Hard caps on one agent session (the tuning agent in claude.ts, the advisor in advise.ts): API requests,
// tool calls per turn and in total, and bytes sent. They hold whatever the API reports as token usage —
// an API (or a proxy) that reports zero tokens, or a model that keeps calling info tools, still stops,
// and the session ends with outcome 'budget' and a reason naming the cap.

export interface AgentLimits {
  /** Messages API requests per session (each SDK retry of one request counts once). */
  requests: number;
  /** tool_use blocks in one assistant reply; a reply with more ends the session. */
  toolCallsPerTurn: number;
  /** tool_use blocks over the whole session. */
  toolCalls: number;
  /** Bytes of request bodies (the JSON the SDK sends) over the whole session. */
  bytesSent: number;
}

/** Defaults for a tuning session of `trials` trials: room for info tools, refusals and a final answer. */
export function tuningLimits(trials: number, given: Partial<AgentLimits> = {}): AgentLimits {
  return {
    requests: given.requests ?? 3 * trials + 10,
    toolCallsPerTurn: given.toolCallsPerTurn ?? 16,
    toolCalls: given.toolCalls ?? 8 * trials + 40,
    bytesSent: given.bytesSent ?? 32 * 2 ** 20,
  };
}

/** Defaults for an advisor session (no runs: a few turns). */
export function adviceLimits(given: Partial<AgentLimits> = {}): AgentLimits {
  return {
    requests: given.requests ?? 5,
    toolCallsPerTurn: given.toolCallsPerTurn ?? 16,
    toolCalls: given.toolCalls ?? 40,
    bytesSent: given.bytesSent ?? 8 * 2 ** 20,
  };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 3 : 1)} MiB`;

/** Counts a session against its limits; each check returns why the session must end, or undefined. */
export class SessionMeter {
  requests = 0;
  toolCalls = 0;
  bytesSent = 0;

  constructor(readonly limits: AgentLimits) {}

  /** Before sending a request body of `bytes` bytes. Counts it when it may go. */
  request(bytes: number): string | undefined {
    const l = this.limits;
    if (this.requests >= l.requests)
      return `request cap reached: ${this.requests} API requests (limit ${l.requests} per session)`;
    if (this.bytesSent + bytes > l.bytesSent) {
      return (
        `byte cap reached: ${mib(this.bytesSent)} sent, the next ` +
        `request is ${mib(bytes)} (limit ${mib(l.bytesSent)} per session)`
      );
    }
    this.requests++;
    this.bytesSent += bytes;
    return undefined;
  }

  /** After a reply with `n` tool calls. */
  reply(n: number): string | undefined {
    const l = this.limits;
    this.toolCalls += n;
    if (n > l.toolCallsPerTurn)
      return `tool-call cap reached: ${n} tool calls in one reply (limit ${l.toolCallsPerTurn} per turn)`;
    if (this.toolCalls > l.toolCalls)
      return `tool-call cap reached: ${this.toolCalls} tool calls (limit ${l.toolCalls} per session)`;
    return undefined;
  }

  /** Is any cap already used up (no further request could go)? */
  exhausted(): string | undefined {
    const l = this.limits;
    if (this.requests >= l.requests)
      return `request cap reached: ${this.requests} API requests (limit ${l.requests} per session)`;
    if (this.toolCalls >= l.toolCalls)
      return `tool-call cap reached: ${this.toolCalls} tool calls (limit ${l.toolCalls} per session)`;
    if (this.bytesSent >= l.bytesSent)
      return `byte cap reached: ${mib(this.bytesSent)} sent (limit ${mib(l.bytesSent)} per session)`;
    return undefined;
  }
}

/** Size of a request body as sent: the JSON of what is passed to messages.create. */
export function bodyBytes(body: unknown): number {
  return Buffer.byteLength(JSON.stringify(body), 'utf8');
}
