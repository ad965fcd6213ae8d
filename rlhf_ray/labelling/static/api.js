// The labelling API as the pages call it: the token (from the address' #token=..., kept for this tab)
// on every request, errors as exceptions carrying the HTTP status.
"use strict";

const labellingApi = (() => {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("rlhf_ray.token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }

  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem("rlhf_ray.token");
    if (token) headers["X-Label-Token"] = token;
    const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  return { get: (path) => call("GET", path), post: (path, body) => call("POST", path, body) };
})();
