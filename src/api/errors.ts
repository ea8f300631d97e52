/**
 * An error with an HTTP status that maps onto LXD's error envelope. Domain code throws these
 * with a message a user can act on; the server renders them once.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (msg: string) => new ApiError(400, msg);
export const forbidden = (msg: string) => new ApiError(403, msg);
export const notFound = (what: string) => new ApiError(404, what);
export const conflict = (msg: string) => new ApiError(409, msg);
export const preconditionFailed = (msg: string) => new ApiError(412, msg);

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}
