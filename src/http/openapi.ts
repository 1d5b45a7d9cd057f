import { z } from 'zod';
import { type ContentKind, errorStatuses, OPERATIONS, type Operation } from './operations.js';
import { errorSchema } from './schemas.js';

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the operations and their zod schemas
 * (`npm run build && npm run openapi` writes docs/openapi.json; a test fails when it is stale, and
 * another checks the running server against it).
 */

type Json = Record<string, unknown>;

const MEDIA: Record<ContentKind, string> = {
  json: 'application/json',
  prometheus: 'text/plain; version=0.0.4',
  sse: 'text/event-stream',
  ndjson: 'application/x-ndjson',
};

const REASONS: Record<number, string> = {
  400: 'bad_json or bad_request, with every problem',
  401: 'unauthorized: no token, or not one of daemon.http.tokens',
  403: 'forbidden: the token lacks the scope',
  404: 'unknown_session or not_found',
  409: 'the session id or idempotency key is taken (duplicate_session, key_conflict)',
  413: 'payload_too_large: the body is over daemon.http.body_limit',
  415: 'unsupported_media_type: the body is not application/json, or names a charset other than UTF-8',
  422: 'the trigger was rejected (unknown_agent, no_repo, bad_repo, bad_timeout, bad_input, repo_token_withheld)',
  500: 'internal',
  503: 'not now (not_accepting, state_dir_full, state_dir_unwritable, queue_full, busy); retryable',
};

export function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

function parameters(op: Operation): Json[] {
  const of = (where: 'path' | 'query', object: z.ZodObject | undefined) =>
    Object.entries(object?.shape ?? {}).map(([name, schema]) => ({
      name,
      in: where,
      required: where === 'path' || !(schema as z.ZodType).safeParse(undefined).success,
      schema: schemaOf(schema as z.ZodType, 'input'),
    }));
  return [...of('path', op.params), ...of('query', op.query)];
}

function operation(op: Operation): Json {
  const responses: Json = {};
  for (const [status, spec] of Object.entries(op.responses)) {
    // An operation's own answer in the error shape (its description says which) is the one Error schema.
    const schema =
      spec.schema === errorSchema
        ? { $ref: '#/components/schemas/Error' }
        : spec.schema
          ? schemaOf(spec.schema, 'output')
          : { type: 'string' };
    const content: Json = {};
    for (const kind of [spec.content, ...(spec.alsoAs ?? [])]) content[MEDIA[kind]] = { schema };
    responses[status] = { description: spec.description, content };
  }
  for (const status of errorStatuses(op)) {
    responses[String(status)] = {
      description: REASONS[status] ?? 'error',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  const params = parameters(op);
  return {
    operationId: op.id,
    summary: op.summary,
    ...(op.description === undefined ? {} : { description: op.description }),
    security: op.scope === undefined ? [] : [{ bearer: [] }],
    ...(op.scope === undefined ? {} : { 'x-agentd-scope': op.scope }),
    ...(params.length === 0 ? {} : { parameters: params }),
    ...(op.body === undefined
      ? {}
      : {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(op.body, 'input') } },
          },
        }),
    responses,
  };
}

export function openApiDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const op of OPERATIONS) paths[op.path] = { ...(paths[op.path] ?? {}), [op.method]: operation(op) };
  return {
    openapi: '3.1.0',
    info: {
      title: 'agentd HTTP API',
      version: '1',
      description:
        "The socket protocol's operations over HTTP (`daemon.http`). Every /v1 request and /metrics need `Authorization: Bearer TOKEN` with the scope named by x-agentd-scope (admin covers all). Errors have one shape with the socket protocol's codes. A /v1 operation refuses (400 `bad_request`) what it would not read: a query parameter it does not take, and any body when it has no requestBody (problem path `body`). Generated from src/http/operations.ts; do not edit.",
    },
    paths,
    components: {
      schemas: { Error: schemaOf(errorSchema, 'output') },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A token of daemon.http.tokens' },
      },
    },
  };
}

/** The document as committed: stable key order, two-space indent, final newline. */
export function renderOpenApi(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
