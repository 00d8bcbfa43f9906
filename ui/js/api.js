// The bridge to the Rust side: commands (errors normalized to {code, message}), events, image URLs.

const T = window.__TAURI__;

/** Whether the page runs inside the Shoebox app (it is useless in a plain browser). */
export const inApp = Boolean(T && T.core);

/** Normalize anything thrown into {code, message}. */
export function toError(e) {
  if (e && typeof e === 'object' && 'message' in e && 'code' in e) return e;
  if (e instanceof Error) return { code: 'ui', message: e.message };
  return { code: 'unknown', message: String(e) };
}

/** Call a command; rejects with {code, message}. */
export async function call(cmd, args = {}) {
  try {
    return await T.core.invoke(cmd, args);
  } catch (e) {
    throw toError(e);
  }
}

/** Listen to an app event; the handler gets the payload. */
export function on(event, handler) {
  return T.event.listen(event, (e) => handler(e.payload));
}

/** URL of a library photo (or dropped file) through the app's `photo:` protocol. */
export function imageUrl(path, kind = 'thumb') {
  return `${T.core.convertFileSrc(path, 'photo')}?kind=${kind}`;
}
