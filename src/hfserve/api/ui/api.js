// Talking to this server: the API key (session storage, sent as Bearer), JSON calls whose
// errors carry the server's message, and Server-Sent Events read from a fetch body (the
// browser's EventSource cannot POST or send headers).

const KEY = "hfserve-api-key";

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

function headers(json) {
  const out = {};
  if (json) out["content-type"] = "application/json";
  const k = key.get();
  if (k) out.authorization = `Bearer ${k}`;
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let type;
  try {
    const body = await response.json();
    const error = body.error;
    if (error && typeof error === "object") {
      message = error.message || message;
      type = error.type;
    } else if (typeof error === "string") {
      message = error;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, type);
}

async function send(method, path, json, body) {
  const response = await fetch(path, { method, headers: headers(json), body });
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export const call = (method, path, body) => send(method, path, body !== undefined,
  body === undefined ? undefined : JSON.stringify(body));
export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
// A multipart form (the browser sets its content type and boundary).
export const postForm = (path, form) => send("POST", path, false, form);

// POST ``body`` and call ``onEvent`` with each JSON ``data:`` of the event stream until
// [DONE]; an ``error`` event throws. Aborting ``signal`` closes the connection, which the
// server takes as the client leaving (the generation stops and frees its slot).
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, {
    method: "POST", headers: headers(true), body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(0, event.error.message || String(event.error));
      onEvent(event);
    }
  }
}
