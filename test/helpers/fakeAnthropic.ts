// A local stand-in for the Anthropic Messages API (POST /v1/messages on 127.0.0.1, a free port): it
// checks each request the way the real API would (shape, roles alternating, every tool_use answered by
// a tool_result in the next user turn), answers from a script, and records the requests. The real SDK
// is pointed at it with `baseURL`, so retries, errors and aborts go through the SDK's own code.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface FakeReply {
  status?: number;
  headers?: Record<string, string>;
  body: unknown;
  /** Wait this long before answering (an abort from the client ends the wait). */
  delayMs?: number;
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** A scripted step: a reply, or a function of the request (and all requests so far) that makes one. */
export type Step = FakeReply | ((body: any, requests: RecordedRequest[]) => FakeReply);

let ids = 0;
export function toolUse(name: string, input: unknown, id = `toolu_${++ids}`): any {
  return { type: 'tool_use', id, name, input };
}

export function reply(
  content: any[],
  opts: { stop_reason?: string; usage?: Partial<Record<string, number>> } = {},
): FakeReply {
  return {
    body: {
      id: `msg_${++ids}`,
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content,
      stop_reason: opts.stop_reason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'),
      stop_sequence: null,
      usage: {
        input_tokens: 100,
        output_tokens: 50,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        ...opts.usage,
      },
    },
  };
}

export function apiError(
  status: number,
  type: string,
  message: string,
  headers: Record<string, string> = {},
): FakeReply {
  return { status, headers, body: { type: 'error', error: { type, message } } };
}

/** Why a request body would be refused by the real API (the subset that matters here), or undefined. */
export function requestProblem(body: any): string | undefined {
  if (typeof body !== 'object' || body === null) return 'body is not a JSON object';
  if (typeof body.model !== 'string' || !body.model) return 'model: required string';
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: required positive integer';
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'messages: required non-empty array';
  let breakpoints = 0;
  const count = (blocks: any) => Array.isArray(blocks) && blocks.forEach((b: any) => b?.cache_control && breakpoints++);
  count(body.system);
  count(body.tools);
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    const want = i % 2 === 0 ? 'user' : 'assistant';
    if (m?.role !== want) return `messages.${i}.role: expected ${want}, got ${m?.role}`;
    count(m.content);
    if (m.role === 'assistant' && Array.isArray(m.content)) {
      const uses = m.content.filter((b: any) => b.type === 'tool_use').map((b: any) => b.id);
      const next = body.messages[i + 1];
      if (uses.length && next) {
        const answered = new Set(
          (Array.isArray(next.content) ? next.content : [])
            .filter((b: any) => b.type === 'tool_result')
            .map((b: any) => b.tool_use_id),
        );
        const missing = uses.filter((id: string) => !answered.has(id));
        if (missing.length) return `messages.${i + 1}: tool_use ids ${missing.join(', ')} have no tool_result`;
      }
    }
  }
  if (breakpoints > 4) return `a maximum of 4 blocks with cache_control may be provided. Found ${breakpoints}.`;
  if (body.tools !== undefined && !Array.isArray(body.tools)) return 'tools: must be an array';
  for (const t of body.tools ?? [])
    if (typeof t.name !== 'string' || typeof t.input_schema !== 'object')
      return 'tools: each needs name and input_schema';
  return undefined;
}

export class FakeAnthropic {
  readonly requests: RecordedRequest[] = [];
  /** Requests refused as malformed (tests assert this stays empty). */
  readonly problems: string[] = [];
  private steps: Step[];
  private server: http.Server;
  url = '';

  private constructor(steps: Step[]) {
    this.steps = [...steps];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(steps: Step[]): Promise<FakeAnthropic> {
    const f = new FakeAnthropic(steps);
    await new Promise<void>((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    f.url = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
    return f;
  }

  /** Append more steps to the script. */
  push(...steps: Step[]): void {
    this.steps.push(...steps);
  }

  get remaining(): number {
    return this.steps.length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const send = (r: FakeReply) => {
        if (res.destroyed) return;
        res.writeHead(r.status ?? 200, {
          'content-type': 'application/json',
          'request-id': `req_${++ids}`,
          ...r.headers,
        });
        res.end(JSON.stringify(r.body));
      };
      if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
        send(apiError(404, 'not_found_error', `no route ${req.method} ${req.url}`));
        return;
      }
      const recorded: RecordedRequest = { method: req.method, url: req.url, headers: req.headers, body };
      this.requests.push(recorded);
      // count_tokens takes a message list without max_tokens (the cheap request the key check sends).
      const counting = req.url.startsWith('/v1/messages/count_tokens');
      const problem = !credential(req.headers)
        ? 'no credential (x-api-key or authorization: Bearer)'
        : !req.headers['anthropic-version']
          ? 'anthropic-version header missing'
          : requestProblem(counting && body && typeof body === 'object' ? { max_tokens: 1, ...body } : body);
      if (problem) {
        this.problems.push(problem);
        send(apiError(400, 'invalid_request_error', problem));
        return;
      }
      const step = this.steps.shift();
      if (!step) {
        this.problems.push('script exhausted');
        send(apiError(400, 'invalid_request_error', 'fake: script exhausted'));
        return;
      }
      const r = typeof step === 'function' ? step(body, this.requests) : step;
      if (r.delayMs) {
        const t = setTimeout(() => send(r), r.delayMs);
        res.on('close', () => clearTimeout(t));
      } else send(r);
    });
  }
}

/** The API key a request carried: `x-api-key`, or `authorization: Bearer` (what SDK 1.x sends). */
export function credential(headers: http.IncomingHttpHeaders): string | undefined {
  const key = headers['x-api-key'];
  if (typeof key === 'string' && key) return key;
  const m = /^Bearer (.+)$/.exec(String(headers.authorization ?? ''));
  return m?.[1];
}

/** The tool_result blocks of the last user turn of a request. */
export function lastToolResults(body: any): any[] {
  const last = body.messages[body.messages.length - 1];
  return Array.isArray(last.content) ? last.content.filter((b: any) => b.type === 'tool_result') : [];
}
