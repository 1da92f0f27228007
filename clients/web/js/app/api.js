// The relay's HTTP API (docs/API.md) as seen from the page: same origin, JSON in and out, stable error codes.

/** An error answer of the relay: `code` is the stable code of docs/API.md, `status` the HTTP status. */
export class RelayError extends Error {
  /** @param {string} code @param {string} message @param {number} status */
  constructor(code, message, status) {
    super(message);
    this.name = "RelayError";
    this.code = code;
    this.status = status;
  }
}

/** The relay could not be reached at all (network down, relay stopped). */
export class RelayUnreachable extends Error {
  constructor(/** @type {string} */ message) {
    super(message);
    this.name = "RelayUnreachable";
    this.code = "unreachable";
    this.status = 0;
  }
}

/**
 * One request. `auth` is a bearer token or null.
 * @param {string} method
 * @param {string} path absolute path on this origin, e.g. /v1/relay
 * @param {{body?: unknown, token?: string | null, params?: Record<string, string | number>}} [options]
 * @returns {Promise<any>}
 */
export async function request(method, path, { body, token = null, params } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params ?? {})) url.searchParams.set(key, String(value));
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (err) {
    throw new RelayUnreachable(`the relay does not answer (${err instanceof Error ? err.message : err})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    throw new RelayError(
      typeof error?.code === "string" ? error.code : `http_${response.status}`,
      typeof error?.message === "string" ? error.message : `HTTP ${response.status}`,
      response.status,
    );
  }
  return data;
}

/** True for the relay's answer to a path it does not have (so a feature is simply not there yet). */
export function isMissingEndpoint(/** @type {unknown} */ err) {
  return err instanceof RelayError && (err.status === 404 || err.status === 405) && err.code !== "not_a_member";
}
