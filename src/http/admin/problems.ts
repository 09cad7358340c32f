/**
 * The problem codes the admin console's API mints, with their HTTP status (docs/errors.md,
 * "Admin console problems"; a test keeps the two in step). Shared codes (validation_failed,
 * malformed_json, stream_not_found, ...) come from the common mapping in ../problem.ts.
 */
import { HttpProblem } from '../problem.ts';

export const ADMIN_PROBLEM_CODES = {
  unknown_projection: 404,
  parked_not_found: 404,
  retry_failed: 409,
  rebuild_in_progress: 409,
  rebuild_not_found: 404,
  version_not_found: 404,
  state_not_available: 404,
  relay_not_configured: 404,
  cross_origin_refused: 403,
} as const;

export type AdminProblemCode = keyof typeof ADMIN_PROBLEM_CODES;

/** A problem to throw from a console route. */
export const adminProblem = (code: AdminProblemCode, title: string, detail: string) =>
  new HttpProblem(ADMIN_PROBLEM_CODES[code], code, title, detail);
