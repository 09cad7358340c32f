/**
 * Bearer authentication and role-based authorization for Tidemark's routes.
 *
 * A request carries `Authorization: Bearer <JWT>`; the token is verified with `jose` against a
 * JWKS URL (asymmetric keys) or a shared secret (HMAC), with the issuer, the audience, an expiry
 * and a subject required. Roles come from one claim (a list, or a space-separated string such as
 * OAuth's `scope`) and each kind of route accepts some of them: by default queries need `reader`,
 * commands `writer`, operations that change state (the admin console) `operator`; /health,
 * /ready, /metrics and /openapi.json stay open unless `routeRoles.operationalReads` names roles.
 *
 * Refusals answer before the body is read or any handler runs, so a refused request changes
 * nothing: 401 with an RFC 6750 `WWW-Authenticate: Bearer` challenge for a token that is missing
 * or cannot be trusted, 403 `insufficient_scope` for a trusted token without the role; both are
 * problem documents (`unauthenticated`, `forbidden`).
 *
 * `mode: 'off'` opens everything, for local development only, and says so at warn level.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import {
  AuthenticationError,
  AuthorizationError,
  InvalidArgumentError,
  UnavailableError,
  silentLogger,
  type AuthenticationFailure,
  type Logger,
} from '../core/index.ts';
import { problemForTidemarkError, sendProblem } from './problem.ts';

/**
 * A Fastify hook that refuses a request without the right token. Use it as `onRequest` (it then
 * runs before the body is read, so a refused request is not even parsed) or as `preHandler`.
 */
export type AuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** The roles Tidemark's defaults use. Any other role name works too. */
export const ROLES = { reader: 'reader', writer: 'writer', operator: 'operator' } as const;

/**
 * Kinds of route, each guarded by a set of roles (a token needs one of them):
 * `queries` and `commands` (the plugin's routes), `operations` (routes that change operational
 * state: the admin console's actions, rebuilds, dead-letter retries), `operationalReads`
 * (/ready, /metrics, /openapi.json; /health is always open for liveness probes).
 */
export type RouteKind = 'queries' | 'commands' | 'operations' | 'operationalReads';

/** Which roles each kind of route accepts; `'open'` lets every request in. */
export type RouteRoles = Partial<Record<RouteKind, readonly string[] | 'open'>>;

/** The default mapping of route kinds to roles. */
export const DEFAULT_ROUTE_ROLES: Readonly<Record<RouteKind, readonly string[] | 'open'>> = {
  queries: [ROLES.reader],
  commands: [ROLES.writer],
  operations: [ROLES.operator],
  operationalReads: 'open',
};

/** Algorithms a JWKS may sign with. HMAC and `none` are never accepted from a JWKS. */
const ASYMMETRIC: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
const SYMMETRIC: readonly string[] = ['HS256', 'HS384', 'HS512'];

/** Verifies tokens: bearer JWTs signed by the keys of a JWKS URL, or with a shared secret. */
export interface JwtAuthOptions {
  mode: 'jwt';
  /** Where the issuer publishes its public keys (JWKS). Exactly one of `jwksUrl` and `secret`. */
  jwksUrl?: string | URL;
  /** A shared HMAC secret, at least 32 bytes (RFC 7518 §3.2). */
  secret?: string | Uint8Array;
  /** The `iss` every token must carry (one of them, when a list). */
  issuer: string | readonly string[];
  /** The `aud` every token must carry (one of them, when a list). */
  audience: string | readonly string[];
  /**
   * Accepted algorithms. Default: every asymmetric one for a JWKS (RS*, PS*, ES*, EdDSA), HS256
   * for a secret. Pinned per key kind: a JWKS never accepts HMAC, a secret never anything else.
   */
  algorithms?: readonly string[];
  /** Slack for `exp` and `nbf` between clocks, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /**
   * The claim that lists the subject's roles: an array of strings, or a space-separated string
   * (`scope`). A dotted path reaches into objects (`realm_access.roles`). Default `roles`.
   */
  rolesClaim?: string;
  /** Roles per kind of route; merged over {@link DEFAULT_ROUTE_ROLES}. */
  routeRoles?: RouteRoles;
  /** How long a fetch of the JWKS may take, in ms. Default 5000. */
  jwksTimeoutMs?: number;
  logger?: Logger;
}

/** No authentication: every route is open. For local development only; warns when created. */
export interface OffAuthOptions {
  mode: 'off';
  logger?: Logger;
}

export type AuthOptions = JwtAuthOptions | OffAuthOptions;

/** Who made a request, from a verified token. */
export interface Principal {
  /** The token's `sub`: it goes into the metadata of the events the request causes (`actor`). */
  subject: string;
  roles: readonly string[];
  /** Every claim of the verified token. */
  claims: JWTPayload;
}

/**
 * Guards routes. One authenticator serves the Tidemark plugin (`auth` option) and any other
 * plugin of the same service (the admin console), so all of them verify tokens the same way.
 */
export interface Authenticator {
  readonly mode: 'jwt' | 'off';
  /**
   * A hook that lets a request through only with a valid token carrying one of `roles`:
   * 401 (`unauthenticated`) or 403 (`forbidden`) otherwise, before any handler runs. In mode
   * `off` it lets everything through.
   */
  requireRole(...roles: string[]): AuthHook;
  /**
   * The hook for a kind of route, as configured (`routeRoles`); undefined when that kind is
   * open. `guard('operations')` is what an admin surface puts in front of its routes.
   */
  guard(kind: RouteKind): AuthHook | undefined;
  /** The roles a kind of route accepts (one is enough); undefined when it is open. */
  rolesFor(kind: RouteKind): readonly string[] | undefined;
  /** Verifies the request's bearer token (once per request); undefined in mode `off`. */
  authenticate(request: FastifyRequest): Promise<Principal | undefined>;
}

const principals = new WeakMap<FastifyRequest, Principal>();

/** The verified principal of a request that passed a guard; undefined when none ran (or `off`). */
export function principalOf(request: FastifyRequest): Principal | undefined {
  return principals.get(request);
}

/** Builds an {@link Authenticator}. Options are checked here, once: a bad one throws. */
export function createAuthenticator(options: AuthOptions): Authenticator {
  const logger = options.logger ?? silentLogger;
  if (options.mode === 'off') {
    logger.warn(
      { auth: 'off' },
      'authentication is OFF: every route, commands and operations included, is open to anyone; for local development only',
    );
    const pass: AuthHook = async () => undefined;
    return {
      mode: 'off',
      requireRole: () => pass,
      guard: () => undefined,
      rolesFor: () => undefined,
      authenticate: async () => undefined,
    };
  }
  if (options.mode !== 'jwt') {
    throw new InvalidArgumentError('auth.mode', `must be 'jwt' or 'off'`);
  }
  return new JwtAuthenticator(options, logger);
}

class JwtAuthenticator implements Authenticator {
  readonly mode = 'jwt' as const;
  readonly #key: Uint8Array | JWTVerifyGetKey;
  readonly #issuer: string[];
  readonly #audience: string[];
  readonly #algorithms: string[];
  readonly #clockTolerance: number;
  readonly #rolesPath: string[];
  readonly #routeRoles: Record<RouteKind, readonly string[] | 'open'>;
  readonly #jwksUrl: string | undefined;

  constructor(options: JwtAuthOptions, logger: Logger) {
    const { jwksUrl, secret } = options;
    if ((jwksUrl === undefined) === (secret === undefined)) {
      throw new InvalidArgumentError('auth', 'give exactly one of jwksUrl and secret');
    }
    const allowed = jwksUrl !== undefined ? ASYMMETRIC : SYMMETRIC;
    const algorithms = [
      ...(options.algorithms ?? (jwksUrl !== undefined ? ASYMMETRIC : ['HS256'])),
    ];
    if (algorithms.length === 0) throw new InvalidArgumentError('auth.algorithms', 'is empty');
    // Pinning by key kind closes algorithm confusion: a public key is never taken for an HMAC
    // secret, and `none` is in neither list.
    for (const alg of algorithms) {
      if (!allowed.includes(alg)) {
        throw new InvalidArgumentError(
          'auth.algorithms',
          `'${alg}' cannot be used with ${jwksUrl !== undefined ? 'a JWKS' : 'a shared secret'} (use ${allowed.join(', ')})`,
        );
      }
    }
    this.#algorithms = algorithms;
    this.#issuer = required(options.issuer, 'issuer');
    this.#audience = required(options.audience, 'audience');
    this.#clockTolerance = options.clockToleranceSeconds ?? 30;
    if (!(Number.isFinite(this.#clockTolerance) && this.#clockTolerance >= 0)) {
      throw new InvalidArgumentError('auth.clockToleranceSeconds', 'must be 0 or more');
    }
    if (secret !== undefined) {
      const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
      if (bytes.byteLength < 32) {
        throw new InvalidArgumentError('auth.secret', 'must be at least 32 bytes (256 bits)');
      }
      this.#key = bytes;
      this.#jwksUrl = undefined;
    } else {
      let url: URL;
      try {
        url = new URL(jwksUrl!);
      } catch (error) {
        throw new InvalidArgumentError('auth.jwksUrl', 'is not a URL', { cause: error });
      }
      this.#jwksUrl = url.href;
      this.#key = createRemoteJWKSet(url, { timeoutDuration: options.jwksTimeoutMs ?? 5000 });
    }
    const rolesClaim = options.rolesClaim ?? 'roles';
    this.#rolesPath = rolesClaim.split('.');
    if (this.#rolesPath.some((part) => part === '')) {
      throw new InvalidArgumentError('auth.rolesClaim', `'${rolesClaim}' is not a claim path`);
    }
    this.#routeRoles = { ...DEFAULT_ROUTE_ROLES, ...options.routeRoles };
    for (const [kind, roles] of Object.entries(this.#routeRoles)) {
      if (roles !== 'open' && (!Array.isArray(roles) || roles.length === 0)) {
        throw new InvalidArgumentError(
          `auth.routeRoles.${kind}`,
          `must be 'open' or a list of roles`,
        );
      }
    }
    logger.info(
      {
        auth: 'jwt',
        keys: this.#jwksUrl ?? 'shared secret',
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms,
        rolesClaim,
        routeRoles: this.#routeRoles,
      },
      'bearer authentication on',
    );
  }

  async authenticate(request: FastifyRequest): Promise<Principal> {
    const known = principals.get(request);
    if (known) return known;
    const token = bearerToken(request.headers.authorization);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#key as Uint8Array, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#clockTolerance,
        // A token without an expiry would be good forever; one without a subject names nobody.
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (error) {
      throw this.#refusal(error);
    }
    const principal: Principal = {
      subject: payload.sub!,
      roles: rolesIn(payload, this.#rolesPath),
      claims: payload,
    };
    principals.set(request, principal);
    return principal;
  }

  requireRole(...roles: string[]): AuthHook {
    if (roles.length === 0) throw new InvalidArgumentError('roles', 'name at least one role');
    const wanted = [...roles];
    return async (request, reply) => {
      try {
        const principal = await this.authenticate(request);
        if (!principal.roles.some((role) => wanted.includes(role))) {
          throw new AuthorizationError(principal.subject, wanted);
        }
      } catch (error) {
        if (error instanceof AuthenticationError || error instanceof AuthorizationError) {
          return refuse(reply, error, request.url);
        }
        throw error;
      }
      return undefined;
    };
  }

  guard(kind: RouteKind): AuthHook | undefined {
    const roles = this.rolesFor(kind);
    return roles ? this.requireRole(...roles) : undefined;
  }

  rolesFor(kind: RouteKind): readonly string[] | undefined {
    const roles = this.#routeRoles[kind];
    return roles === 'open' ? undefined : roles;
  }

  /** Turns what `jose` throws into a refusal (the client's fault) or `unavailable` (ours). */
  #refusal(error: unknown): Error {
    if (error instanceof AuthenticationError) return error;
    const fail = (reason: AuthenticationFailure, message: string) =>
      new AuthenticationError(reason, message, { cause: error });
    if (error instanceof joseErrors.JWTExpired) return fail('expired', 'the token has expired');
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') return fail('not_yet_valid', 'the token is not valid yet');
      const what = error.reason === 'missing' ? 'missing' : 'not accepted';
      return fail('claim_mismatch', `the token's ${error.claim} claim is ${what}`);
    }
    if (error instanceof joseErrors.JOSEAlgNotAllowed) {
      return fail('algorithm_not_allowed', 'the token is signed with an algorithm not accepted');
    }
    if (
      error instanceof joseErrors.JWSSignatureVerificationFailed ||
      error instanceof joseErrors.JWKSNoMatchingKey ||
      error instanceof joseErrors.JWKSMultipleMatchingKeys
    ) {
      return fail('bad_signature', 'the token signature does not verify');
    }
    if (
      error instanceof joseErrors.JWSInvalid ||
      error instanceof joseErrors.JWTInvalid ||
      error instanceof joseErrors.JOSENotSupported
    ) {
      return fail('malformed', 'the token is not a well-formed signed JWT');
    }
    // Anything else comes from fetching or reading the JWKS: not the client's fault, and no
    // reason to let the request in. 503 tells it to come back.
    return new UnavailableError(
      'jwks',
      `cannot read the keys at ${this.#jwksUrl ?? '(shared secret)'}: ${(error as Error)?.message ?? String(error)}`,
      { cause: error },
    );
  }
}

function required(value: string | readonly string[] | undefined, name: string): string[] {
  const values = (typeof value === 'string' ? [value] : [...(value ?? [])]).filter(Boolean);
  if (values.length === 0) throw new InvalidArgumentError(`auth.${name}`, 'is required');
  return values;
}

function bearerToken(header: string | undefined): string {
  if (header === undefined || header === '') {
    throw new AuthenticationError('missing', 'send Authorization: Bearer <token>');
  }
  // RFC 6750 §2.1: the scheme (case-insensitive), one or more spaces, then a token68.
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!match) {
    throw new AuthenticationError('malformed', 'the Authorization header is not Bearer <token>');
  }
  return match[1]!;
}

function rolesIn(payload: JWTPayload, path: readonly string[]): string[] {
  let value: unknown = payload;
  for (const part of path) {
    value =
      value !== null && typeof value === 'object'
        ? (value as Record<string, unknown>)[part]
        : undefined;
  }
  if (typeof value === 'string') return value.split(' ').filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/**
 * RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E inside these quoted values (no quote, no
 * backslash, nothing outside visible ASCII). A token's subject can hold anything, and a header
 * value Node refuses would turn a 403 into a 500.
 */
const quotable = (text: string) => text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?');

/** Answers a refusal: problem+json with the RFC 6750 challenge. */
function refuse(
  reply: FastifyReply,
  error: AuthenticationError | AuthorizationError,
  instance: string,
) {
  const challenge =
    error instanceof AuthorizationError
      ? // §3: `scope` names what would be enough (here: any one of these roles).
        `Bearer error="insufficient_scope", error_description="${quotable(error.message)}", scope="${quotable(error.required.join(' '))}"`
      : error.reason === 'missing'
        ? // §3.1: a request without credentials gets a challenge without an error code.
          'Bearer'
        : `Bearer error="invalid_token", error_description="${quotable(error.message)}"`;
  const body = problemForTidemarkError(error, false);
  return sendProblem(reply.header('www-authenticate', challenge), { ...body, instance });
}
