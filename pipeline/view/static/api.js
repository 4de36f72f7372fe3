// The JSON API (docs/view.md): one function per route, errors thrown as ApiError with the server's message.

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) q.set(key, value === true ? "1" : value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

const enc = encodeURIComponent;

export const api = {
  info: () => call("/api/info"),
  samples: (filters, offset, limit) => call(`/api/samples${query({ ...filters, offset, limit })}`),
  sample: (id) => call(`/api/samples/${enc(id)}`),
  stats: (filters) => call(`/api/stats${query(filters)}`),
  edits: (edits) => call("/api/edits", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ edits }),
  }),
  save: (name) => call("/api/save", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
  }),
  thumbUrl: (id) => `/api/thumb/${enc(id)}`,
  imageUrl: (id) => `/api/image/${enc(id)}`,
};
